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


from pathlib import Path

from synthpair import make_pair

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def small_pair(tmp_path_factory):
    """A 400x300 narrow / 240x180 wide generated pair (seed 2), made once per test session."""
    return make_pair(tmp_path_factory.mktemp("pair") / "small", narrow_size=(400, 300), seed=2)


@pytest.fixture(scope="session")
def medium_pair(tmp_path_factory):
    """An 800x600 narrow / 480x360 wide generated pair (seed 7): enough stars to register."""
    return make_pair(tmp_path_factory.mktemp("pair") / "medium", narrow_size=(800, 600), seed=7)
