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
