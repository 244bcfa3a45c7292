import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from msgr_nodes.cli import main
from msgr_nodes.graph import Graph

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def load_save(tmp_path, rng):
    fits.writeto(tmp_path / "in.fits", rng.random((3, 40, 50), dtype=np.float32))
    g = Graph(base_dir=tmp_path)
    g.add_node("Load", "narrow", {"path": "in.fits"})
    g.add_node("Save", "save", {"path": "out.fits"})
    g.link("narrow", "image", "save", "image")
    g.save(tmp_path / "g.json")
    return tmp_path / "g.json"


def test_run_writes_and_prints_the_output(load_save, tmp_path, capsys):
    assert main(["run", str(load_save), "--cache-dir", str(tmp_path / "c")]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "out.fits")
    assert "[save] done" in err
    assert np.array_equal(fits.getdata(tmp_path / "out.fits"), fits.getdata(tmp_path / "in.fits"))


def test_set_resolves_relative_paths_against_the_current_folder(load_save, tmp_path, monkeypatch, capsys):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert main(["run", str(load_save), "--no-cache", "-s", "save.path=result.tif"]) == 0
    assert (tmp_path / "here" / "result.tif").is_file()


def test_bad_graph_exits_1_with_one_line_per_problem(load_save, capsys):
    rc = main(["validate", str(load_save), "-s", "save.format=bmp"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("error: save.format: 'bmp' is not allowed")
    assert "Traceback" not in err


def test_failed_node_exits_1_without_traceback(load_save, tmp_path, capsys):
    (tmp_path / "in.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    rc = main(["run", str(load_save), "--no-cache"])
    err = capsys.readouterr().err
    assert rc == 1
    lines = [l for l in err.splitlines() if l.startswith("error:")]
    assert lines[0].startswith("error: narrow (Load): ") and "in.fits" in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "out.fits").exists()


def test_missing_graph_file_exits_1(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.json")]) == 1
    assert "no such graph file" in capsys.readouterr().err


def test_bad_usage_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run"])
    assert e.value.code == 2


def test_nodes_json_lists_ports_parameters_and_help(capsys):
    assert main(["nodes", "--json"]) == 0
    specs = {s["type"]: s for s in json.loads(capsys.readouterr().out)}
    load = specs["Load"]
    assert load["outputs"][0]["type"] == "image"
    path = next(p for p in load["params"] if p["name"] == "path")
    assert path["kind"] == "path" and path["help"]


def test_script_api_in_three_lines(load_save, tmp_path):
    g = Graph.load(load_save)
    g.set("save.path", str(tmp_path / "api.fits"))
    assert g.run().ok and (tmp_path / "api.fits").is_file()


@pytest.mark.slow
def test_plain_pip_install_gives_command_nodes_and_graphs(tmp_path):
    """`pip install .` (not editable) into a fresh venv: the command, the built-in nodes and graphs.

    The wheel is built by the interpreter running the tests (it has the build backend: the test
    extra asks for it), and the new venv sees this one's packages as its dependencies only."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(ROOT)], check=True, cwd=tmp_path, env=env)
    wheel = next((tmp_path / "dist").glob("msgr_nodes-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_msgr_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    # --ignore-installed: this environment's own msgr-nodes, seen through the .pth, must not count
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
                   check=True, cwd=tmp_path, env=env)
    out = subprocess.run([str(venv / "bin" / "msgr-nodes"), "nodes", "--json"], capture_output=True,
                         text=True, check=True, cwd=tmp_path)
    types = {s["type"] for s in json.loads(out.stdout)}
    assert {"Load", "Save"} <= types
    code = ("import msgr_nodes, msgr_nodes.nodes, importlib.resources as r; "
            "print(msgr_nodes.__file__); print(sorted(p.name for p in r.files('msgr_nodes.graphs').iterdir()))")
    info = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert str(venv) in info.stdout.splitlines()[0]
    assert not (site / "nodes").exists(), "a generic top-level 'nodes' package must not be installed"
    assert (site / "msgr_nodes" / "nodes" / "load.py").is_file()
    # the README's main command works from the plain install (sample data shipped as package data)
    demo = subprocess.run([str(venv / "bin" / "msgr-nodes"), "demo", "--out", str(tmp_path / "demo"), "--no-cache"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert (tmp_path / "demo" / "before_after.png").is_file()
    # beside the plain install, the checkout (where the tests run) imports the same way
    code = "import msgr_nodes.nodes as n, msgr_nodes.demo as d; print(n.__file__); print(d.stock_graph('msgr.json'))"
    here = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert here.returncode == 0, here.stderr[-2000:]
    assert here.stdout.splitlines() == [str(ROOT / "nodes" / "__init__.py"), str(ROOT / "graphs" / "msgr.json")]
