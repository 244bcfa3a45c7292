"""Generate benchmark pairs with ../shared/data/make_pairs.py into a temporary folder (cached per run)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MSGR_SHARED", ROOT.parent / "shared"))


def make_pair(out: Path, *args: str) -> Path:
    if (out / "truth.json").is_file():
        return out
    script = SHARED / "data" / "make_pairs.py"
    if not script.is_file():
        sys.exit(f"make_pairs.py not found at {script}: set MSGR_SHARED to the shared/ folder")
    subprocess.run([sys.executable, str(script), "--out", str(out), *args], check=True, capture_output=True)
    return out


# (name, make_pairs arguments): several scenes and seeds, simple and complex gradients
SCENES = [
    ("rcw32_s1", ["--preset", "rcw32", "--seed", "1"]),
    ("rcw32_s2_complex", ["--preset", "rcw32", "--seed", "2", "--gradient-kind", "complex"]),
    ("virgo_s3", ["--preset", "virgo", "--seed", "3", "--ratio", "4"]),
    ("virgo_s4_complex_x2", ["--preset", "virgo", "--seed", "4", "--gradient-kind", "complex",
                             "--gradient-strength", "2"]),
]
