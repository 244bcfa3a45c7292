import json
import sys

import pytest

import nodepack

from msgr_nodes import graphfile
from msgr_nodes.errors import FormatError, MsgrError
from msgr_nodes.graph import Graph


def test_validation_reports_every_problem_at_once_naming_each_node(reg):
    g = Graph(reg)
    g.add_node("Const", "c")
    g.add_node("Scale", "s")
    g.add_node("Add", "add")
    g.add_node("Stars", "st")
    g.link("c", "image", "s", "image")
    g.link("s", "image", "add", "a")
    g.nodes["s"].params["factor"] = 500.0          # out of range
    g.nodes["s"].params["gain"] = 1.0              # unknown parameter
    g.nodes["c"].params["width"] = "wide"          # wrong type
    g.links.append(graphfile.Link("st", "stars", "add", "b"))  # type mismatch
    g.nodes["ghost"] = graphfile.Node("ghost", "NoSuchNode")  # unknown type
    problems = g.validate()
    text = [str(p) for p in problems]
    assert any(t.startswith("s.factor: 500.0 is out of range") for t in text)
    assert any(t.startswith("s.gain: Scale has no parameter 'gain'") for t in text)
    assert any(t.startswith("c.width: must be a number") for t in text)
    assert any(t.startswith("add: input 'b' takes image but is linked to st.stars, which gives stars") for t in text)
    assert any(t.startswith("ghost: unknown node type 'NoSuchNode'") for t in text)
    assert len(problems) == 5


def test_missing_input_and_cycle_are_named(reg):
    g = Graph(reg)
    g.add_node("Scale", "a")
    g.add_node("Scale", "b")
    g.add_node("Add", "sum")
    g.link("a", "image", "b", "image")
    g.links.append(graphfile.Link("b", "image", "a", "image"))  # a file can hold a cycle
    text = [str(p) for p in g.validate()]
    cycles = [t for t in text if "cycle" in t]
    assert cycles in (["a: is on a cycle a -> b -> a: remove one of these links"],
                      ["b: is on a cycle b -> a -> b: remove one of these links"]), cycles
    assert "sum: input 'a' (image) is not connected: link an output to it" in text
    assert "sum: input 'b' (image) is not connected: link an output to it" in text


def test_link_refuses_type_mismatch_and_cycles_with_a_reason(reg):
    g = Graph(reg)
    g.add_node("Stars", "st")
    g.add_node("Scale", "a")
    g.add_node("Scale", "b")
    with pytest.raises(MsgrError, match="type mismatch: st.stars gives stars, b.image takes image"):
        g.link("st", "stars", "b", "image")
    g.link("a", "image", "b", "image")
    with pytest.raises(MsgrError, match="would make a cycle"):
        g.link("b", "image", "a", "image")
    with pytest.raises(MsgrError, match="has no output 'nope'"):
        g.link("a", "nope", "b", "image")


def test_set_parses_command_line_text_and_checks_ranges(reg):
    g = Graph(reg)
    g.add_node("Scale", "s")
    g.set("s.factor", "7.5", parse=True)
    assert g.get("s.factor") == 7.5
    with pytest.raises(MsgrError, match=r"s.factor: 700.0 is out of range: float in \[0, 100\]"):
        g.set("s.factor", "700", parse=True)
    with pytest.raises(MsgrError, match="no node 'zz'"):
        g.set("zz.factor", 1.0)


def test_round_trip_is_byte_stable_and_keeps_unknown_fields(chain, tmp_path):
    path = tmp_path / "g.json"
    chain.meta["title"] = "Ünïcode title"
    chain.save(path)
    data = json.loads(path.read_text("utf-8"))
    data["x-editor"] = {"zoom": 1.5}
    data["nodes"]["s1"]["color"] = "#ff0000"
    data["links"][0]["style"] = "curved"
    path.write_text(graphfile.dumps(data), "utf-8")
    original = path.read_bytes()
    g = Graph.load(path, chain.registry)
    g.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == original
    assert g.nodes["s1"].extra == {"color": "#ff0000"}


def test_parameters_are_stored_by_name(chain, tmp_path):
    chain.save(tmp_path / "g.json")
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["nodes"]["s1"]["params"] == {"factor": 2.0}
    assert data["format"] == "msgr-nodes/graph" and data["format_version"] == 1


def test_newer_format_is_refused_with_a_clear_message(reg):
    text = json.dumps({"format": "msgr-nodes/graph", "format_version": 99, "nodes": {}, "links": []})
    with pytest.raises(FormatError, match="newer msgr-nodes \\(graph format 99\\).*upgrade msgr-nodes"):
        Graph.loads(text, reg)


def test_older_format_goes_through_the_migration_hook(reg, monkeypatch):
    def v0_to_v1(d):
        d["nodes"] = {nid: {**n, "params": n.pop("settings")} for nid, n in d["nodes"].items()}
        return d

    monkeypatch.setitem(graphfile.MIGRATIONS, 0, v0_to_v1)
    text = json.dumps({"format": "msgr-nodes/graph", "format_version": 0,
                       "nodes": {"c": {"type": "Const", "settings": {"value": 0.75}}}, "links": []})
    g = Graph.loads(text, reg)
    assert g.get("c.value") == 0.75


def test_unknown_node_type_is_kept_not_dropped(reg, tmp_path):
    text = json.dumps({"format": "msgr-nodes/graph", "format_version": 1,
                       "nodes": {"x": {"type": "FancyPlugin", "version": 3, "params": {"k": 1}}}, "links": []})
    g = Graph.loads(text, reg)
    assert [str(p).split(":")[0] for p in g.validate()] == ["x"]
    g.save(tmp_path / "out.json")
    assert json.loads((tmp_path / "out.json").read_text())["nodes"]["x"]["params"] == {"k": 1}


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ("[]", "must hold a JSON object"),
    ('{"format": "other"}', "not a msgr-nodes graph"),
    ('{"format": "msgr-nodes/graph", "format_version": 1, "nodes": {"a": {"type": "Const", "value": NaN}}}',
     "NaN is not allowed"),
    ('{"format": "msgr-nodes/graph", "format_version": 1, "nodes": {"a": {"type": "Const", "params": [1]}}}',
     "'params' must be an object"),
    ('{"format": "msgr-nodes/graph", "format_version": 1, "nodes": {}, "links": [{"from": "a"}]}',
     "link 0 must look like"),
])
def test_malformed_files_get_one_clear_error(reg, text, message):
    with pytest.raises(FormatError, match=message):
        Graph.loads(text, reg)


def test_loading_a_graph_runs_no_code(reg, tmp_path):
    marker = tmp_path / "pwned"
    text = json.dumps({"format": "msgr-nodes/graph", "format_version": 1,
                       "nodes": {"c": {"type": "Const", "params": {"value": f"__import__('os').system('touch {marker}')"}}},
                       "links": []})
    g = Graph.loads(text, reg)
    assert any("must be a number" in str(p) for p in g.validate())
    assert not marker.exists()


def test_relative_paths_resolve_against_the_graph_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    g = Graph(base_dir=tmp_path)
    g.add_node("Load", "narrow", {"path": "data/n.fits"})
    g.save(tmp_path / "sub" / "g.json")
    loaded = Graph.load(tmp_path / "sub" / "g.json")
    assert loaded.effective_params("narrow")["path"] == str(tmp_path / "sub" / "data" / "n.fits")


def test_entry_point_node_pack_is_discovered(tmp_path, monkeypatch):
    from msgr_nodes.registry import discover

    pack = tmp_path / "tinypack"
    pack.mkdir()
    (pack / "__init__.py").write_text(
        "from msgr_nodes.api import NodeSpec, Port\n"
        "SPEC = NodeSpec(type='Tiny', version=1, category='Packs', help='a third-party node',\n"
        "                run=lambda c, i, p: {'image': i['image']},\n"
        "                inputs=(Port(name='image', type='image'),), outputs=(Port(name='image', type='image'),))\n")
    nodepack.fake_install(tmp_path, "tinypack", "tiny = tinypack")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = discover()
    assert "Tiny" in reg and "Load" in reg
    assert reg.get("Tiny").help == "a third-party node"
    assert not reg.load_errors
    sys.modules.pop("tinypack", None)


def test_broken_node_pack_does_not_break_the_builtins(tmp_path, monkeypatch):
    from msgr_nodes.registry import discover

    nodepack.fake_install(tmp_path, "brokenpack", "broken = no_such_module_xyz")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = discover()
    assert "Load" in reg
    assert reg.load_errors == ["node pack 'broken' (no_such_module_xyz) failed to load: "
                               "No module named 'no_such_module_xyz'"]
