"""The README works as written: its command and code blocks, pasted in order into an empty folder."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lines the test does not run, and what covers them instead.
NOT_RUN = {
    "pip install": "the plain-install test in test_cli.py, and CI's own install",
    "python -m pytest": "this very test suite",
    "msgr-nodes gui": "the editor's tests in a real window (test_gui_window.py)",
}


def readme_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block of README.md that holds commands or code."""
    text = (ROOT / "README.md").read_text("utf-8")
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(sh|python)\n(.*?)```", text, re.S)]


def test_the_readme_has_the_two_commands():
    commands = [l.split("#")[0].strip() for lang, b in readme_blocks() if lang == "sh" for l in b.splitlines()]
    assert "msgr-nodes demo" in commands and "python -m pytest" in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert "msgr-nodes demo" in ci and "python -m pytest" in ci  # CI runs the README's two commands


@pytest.mark.slow
def test_every_readme_block_runs_in_order_in_an_empty_folder(tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MSGR_NODES_CACHE": str(tmp_path / "cache"),
           "HOME": str(tmp_path)}
    # the commands run against this checkout (as the rest of the suite does), not an older install
    prelude = f'msgr-nodes() {{ "{sys.executable}" -m msgr_nodes "$@"; }}\nset -e\n'
    ran = 0
    for lang, block in readme_blocks():
        if lang == "python":
            proc = subprocess.run([sys.executable, "-c", block], cwd=work, env=env, capture_output=True, text=True)
            assert proc.returncode == 0, f"README python block failed:\n{block}\n{proc.stderr[-3000:]}"
            ran += 1
            continue
        for line in block.splitlines():
            command = line.split("  #")[0].strip()
            if not command or any(command.startswith(skip) for skip in NOT_RUN):
                continue
            proc = subprocess.run(["bash", "-c", prelude + command], cwd=work, env=env, capture_output=True,
                                  text=True, timeout=600)
            assert proc.returncode == 0, f"README command failed: {command}\n{proc.stderr[-3000:]}"
            ran += 1
    assert ran >= 10
    for name in ("narrow_msgr.fits", "narrow_msgr_model.fits", "recipe.fits", "narrow_msgr_recipe_model.fits",
                 "made_it.json", "msgr-demo/before_after.png"):
        assert (work / name).is_file(), name
