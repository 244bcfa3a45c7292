import numpy as np
import pytest

import nodepack
from msgr_nodes.graph import Graph


@pytest.fixture
def reg():
    return nodepack.registry()


@pytest.fixture
def chain(reg):
    """c1 -> s1 -> s2, c1 -> s3; c2 independent: a small graph with a known shape."""
    g = Graph(reg)
    g.add_node("Const", "c1", {"value": 0.25})
    g.add_node("Scale", "s1", {"factor": 2.0})
    g.add_node("Scale", "s2", {"factor": 3.0})
    g.add_node("Scale", "s3", {"factor": 4.0})
    g.add_node("Const", "c2", {"value": 0.1})
    g.link("c1", "image", "s1", "image")
    g.link("s1", "image", "s2", "image")
    g.link("c1", "image", "s3", "image")
    return g


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The steering repo's shared/ folder (beside the project in dev and in CI)."""
    return Path(os.environ.get("MSGR_SHARED", ROOT.parent / "shared"))


def make_pair(out: Path, *args: str) -> Path:
    """Generate a narrow/wide pair with shared/data/make_pairs.py (real textures and Gaia stars)."""
    script = shared_dir() / "data" / "make_pairs.py"
    if not script.is_file():
        pytest.skip(f"test data generator not found at {script} (set MSGR_SHARED)")
    subprocess.run([sys.executable, str(script), "--out", str(out), *args], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="session")
def small_pair(tmp_path_factory):
    """A 400x300 narrow / 240x180 wide pair (rcw32, seed 2), generated once per test session."""
    return make_pair(tmp_path_factory.mktemp("pair") / "rcw32", "--narrow-size", "400", "300", "--seed", "2")


@pytest.fixture(scope="session")
def medium_pair(tmp_path_factory):
    """An 800x600 narrow / 480x360 wide pair (rcw32, seed 3): enough stars to register."""
    return make_pair(tmp_path_factory.mktemp("pair") / "rcw32m", "--narrow-size", "800", "600", "--seed", "3")
