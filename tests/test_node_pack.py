"""The node API as a pack author meets it: the example pack in tests/example_pack, found through
its entry point, run with msgr_nodes.testing.run_node and in graphs, with its own wire type, a
fingerprint hook and the version rule."""
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

import nodepack

from msgr_nodes.api import Image, NodeSpec, Param, Port, PortType, register_wire_type
from msgr_nodes.errors import MsgrError
from msgr_nodes.executor import Executor
from msgr_nodes.graph import Graph
from msgr_nodes.registry import Registry, discover
from msgr_nodes.testing import run_node

PACK = Path(__file__).parent / "example_pack"


@pytest.fixture
def pack(tmp_path, monkeypatch):
    """The example pack installed the way pip would leave it: importable, with an entry point."""
    entry = 'example = "msgr_example_pack"'
    assert entry in (PACK / "pyproject.toml").read_text()  # what pip would write from it
    nodepack.fake_install(tmp_path, "msgr_example_pack", entry.replace('"', ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PACK))
    yield discover()
    sys.modules.pop("msgr_example_pack", None)


def _sky(rng, h=40, w=50):
    return Image((0.2 + 0.02 * rng.standard_normal((1, h, w))).astype(np.float32))


def test_the_example_pack_is_found_by_its_entry_point(pack):
    assert not pack.load_errors
    for t in ("Gain", "Histogram", "HistogramPeak", "Pedestal", "Load", "DetailFit"):
        assert t in pack


def test_run_node_runs_a_pack_node_with_checked_parameters(pack, rng):
    img = _sky(rng)
    out = run_node(pack.get("Gain"), {"image": img}, {"gain": 3.0})
    np.testing.assert_allclose(out["image"].data, img.data * 3.0, rtol=1e-6)
    with pytest.raises(MsgrError, match=r"node.gain: 500.0 is out of range: float in \[0, 100\]"):
        run_node(pack.get("Gain"), {"image": img}, {"gain": 500.0})
    with pytest.raises(MsgrError, match="Gain has no parameter 'gian'"):
        run_node(pack.get("Gain"), {"image": img}, {"gian": 2.0})
    with pytest.raises(MsgrError, match=r"input 'image' \(image\) is not given"):
        run_node(pack.get("Gain"), {}, {"gain": 2.0})
    with pytest.raises(MsgrError, match="input 'image' takes image, got ndarray"):
        run_node(pack.get("Gain"), {"image": img.data})


def test_run_node_checks_what_a_node_returns(rng):
    broken = NodeSpec(type="Broken", version=1, category="Test", help="forgets its output",
                      run=lambda ctx, i, p: {}, outputs=(Port(name="image", type="image"),))
    with pytest.raises(RuntimeError, match="Broken returned no value for output"):
        run_node(broken)


def test_a_pack_wire_type_links_only_to_itself_and_is_disk_cached(pack, rng, tmp_path):
    g = Graph(pack)
    g.add_node("Gain", "g")
    g.add_node("Histogram", "h", {"bins": 10})
    g.add_node("HistogramPeak", "peak")
    g.link("g", "image", "h", "image")
    g.link("h", "histogram", "peak", "histogram")
    with pytest.raises(MsgrError, match="type mismatch: h.histogram gives histogram, g.image takes image"):
        g.link("h", "histogram", "g", "image")
    g.add_node("Load", "src", {"path": str(tmp_path / "in.fits")})
    from msgr_nodes.io.formats import write_image
    write_image(tmp_path / "in.fits", _sky(rng), "auto", "auto", False)
    g.link("src", "image", "g", "image")
    first = Executor(cache_dir=tmp_path / "cache").run(g)
    assert first.ok, first.errors
    assert first.output("peak") == pytest.approx(0.25)  # the bin [0.2, 0.3) holds the sky
    again = Executor(cache_dir=tmp_path / "cache").run(g, ["h"])  # a new process would see this
    assert again.cached == ["src", "g", "h"]
    assert again.output("h")["counts"] == first.output("h")["counts"]


def test_a_taken_wire_type_name_is_refused():
    image_again = PortType(name="image", description="not an image", check=lambda v: True)
    with pytest.raises(ValueError, match="wire type 'image' is taken"):
        register_wire_type(image_again)


def test_the_fingerprint_hook_recomputes_when_outside_state_changes(pack, rng, monkeypatch):
    from nodepack import SPECS
    reg = Registry([*pack, *SPECS])
    g = Graph(reg)
    g.add_node("Const", "c", {"value": 0.5})
    g.add_node("Pedestal", "p")
    g.link("c", "image", "p", "image")
    ex = Executor()
    monkeypatch.setenv("MSGR_EXAMPLE_PEDESTAL", "0.1")
    assert float(ex.run(g).output("p").data.mean()) == pytest.approx(0.4)
    assert ex.run(g).cached == ["c", "p"]
    monkeypatch.setenv("MSGR_EXAMPLE_PEDESTAL", "0.2")
    res = ex.run(g)
    assert res.computed == ["p"] and float(res.output("p").data.mean()) == pytest.approx(0.3)


def test_a_new_node_version_misses_the_disk_cache(tmp_path):
    """The rule: bump version when a node's output changes; results of the old version are not reused."""
    from nodepack import SPECS
    old = {s.type: s for s in SPECS}

    def graph(scale_spec):
        reg = Registry([old["Const"], scale_spec])
        g = Graph(reg)
        g.add_node("Const", "c", {"value": 0.5})
        g.add_node("Scale", "s", {"factor": 2.0})
        g.link("c", "image", "s", "image")
        return g

    cache = tmp_path / "cache"
    assert Executor(cache_dir=cache).run(graph(old["Scale"])).computed == ["c", "s"]
    assert Executor(cache_dir=cache).run(graph(old["Scale"])).computed == []
    fixed = dataclasses.replace(old["Scale"], version=2,
                                run=lambda ctx, i, p: {"image": i["image"].derive(i["image"].data * 4)})
    res = Executor(cache_dir=cache).run(graph(fixed))
    assert res.computed == ["s"] and res.cached == ["c"]
    assert float(res.output("s").data.mean()) == pytest.approx(2.0)


def test_specs_ports_and_params_take_keywords_only():
    with pytest.raises(TypeError):
        NodeSpec("Const", 1, "Test", "help", lambda c, i, p: {})
    with pytest.raises(TypeError):
        Param("gain", "float", 1.0)
    with pytest.raises(TypeError):
        Port("image", "image")
