"""Editor state and commands, without a window."""
import json

import numpy as np
import pytest

from msgr_nodes.stock import stock_graph
from msgr_nodes.errors import MsgrError
from msgr_nodes.executor import Event
from msgr_nodes.gui.commands import AddLink, MoveNodes, RemoveLink, SetLabel, SetParam
from msgr_nodes.gui.state import EditorState


@pytest.fixture
def st(tmp_path):
    return EditorState(settings_dir=tmp_path / "settings")


def test_every_edit_undoes_and_redoes(st):
    before = st.graph.to_json()
    a = st.add_node("Load", (10, 20), {"path": "n.fits"})
    b = st.add_node("MMT", (300, 20))
    st.apply(AddLink(a, "image", b, "image"))
    st.apply(SetParam(b, "remove_layers", 5))
    st.apply(MoveNodes({b: (400, 50)}))
    st.apply(SetLabel(b, "Large scales"))
    after = st.graph.to_json()
    for _ in range(6):
        st.undo()
    assert st.graph.to_json() == before
    for _ in range(6):
        st.redo()
    assert st.graph.to_json() == after
    st.apply(RemoveLink(b, "image"))
    assert st.graph.links == []
    st.undo()
    assert len(st.graph.links) == 1


def test_invalid_link_is_refused_with_a_reason_and_changes_nothing(st):
    a = st.add_node("Register", (0, 0))
    b = st.add_node("MMT", (0, 0))
    with pytest.raises(MsgrError, match="type mismatch: .*transform.*image"):
        st.apply(AddLink(a, "transform", b, "image"))
    assert st.graph.links == [] and len(st.undo_stack) == 2


def test_bad_parameter_is_refused(st):
    b = st.add_node("MMT", (0, 0))
    with pytest.raises(MsgrError, match="out of range"):
        st.apply(SetParam(b, "remove_layers", 99))
    assert st.graph.get(f"{b}.remove_layers") == 8


def test_delete_restores_node_order_and_links_on_undo(tmp_path):
    st = EditorState.open(stock_graph("msgr.json"), settings_dir=tmp_path)
    original = st.graph.to_json()
    st.selection = ["linear_fit", "mmt_wide"]
    st.delete_selection()
    assert "linear_fit" not in st.graph.nodes
    assert not any("linear_fit" in (l.src, l.dst) for l in st.graph.links)
    st.undo()
    assert st.graph.to_json() == original


def test_copy_paste_and_duplicate_keep_inner_links(tmp_path):
    st = EditorState.open(stock_graph("msgr.json"), settings_dir=tmp_path)
    st.selection = ["mmt_narrow", "linear_fit"]
    new = st.duplicate_selection()
    assert sorted(new) == ["linear_fit_2", "mmt_narrow_2"]
    assert any(l.src == "mmt_narrow_2" and l.dst == "linear_fit_2" for l in st.graph.links)
    assert st.graph.node("mmt_narrow_2").pos[0] == st.graph.node("mmt_narrow").pos[0] + 40
    st.undo()
    assert "mmt_narrow_2" not in st.graph.nodes


def test_open_and_save_is_byte_stable_and_tracks_recent_files(tmp_path):
    src = tmp_path / "g.json"
    src.write_bytes(stock_graph("msgr.json").read_bytes())
    st = EditorState.open(src, settings_dir=tmp_path / "s")
    assert not st.dirty
    mtime = src.stat().st_mtime_ns
    st.save()
    assert src.stat().st_mtime_ns == mtime  # unchanged graph: file not rewritten
    st.apply(MoveNodes({"narrow": (1, 2)}))
    assert st.dirty
    st.save(tmp_path / "copy.json")
    assert not st.dirty and st.recent()[0] == str((tmp_path / "copy.json").resolve())


def test_graph_with_problems_opens_and_lists_them_per_node(tmp_path):
    st = EditorState.open(stock_graph("msgr.json"), settings_dir=tmp_path)
    problems = st.problems_by_node()
    assert set(problems) == {"narrow", "wide"}
    assert "path" in problems["narrow"][0]


def test_executor_events_drive_node_states_and_log(st):
    a = st.add_node("Load", (0, 0))
    st.mark_queued([a])
    assert st.runs[a].state == "queued"
    st.on_event(Event("started", a))
    st.on_event(Event("progress", a, fraction=0.5, message="half"))
    assert st.runs[a].state == "running" and st.runs[a].fraction == 0.5
    st.on_event(Event("failed", a, message="no such file"))
    assert st.runs[a].state == "failed" and st.runs[a].message == "no such file"
    assert st.log[-1].endswith("failed: no such file")


def test_sample_state_is_the_recommended_graph_on_the_bundled_pair(tmp_path):
    st = EditorState.sample(settings_dir=tmp_path)
    assert st.graph.validate() == []
    assert st.graph.get("narrow.path").endswith("narrow.fits.fz")
    assert "remove_model" in st.graph.nodes and st.path is None


def test_sample_pair_goes_into_an_open_stock_graph(tmp_path):
    st = EditorState.open(stock_graph("msgr.json"), settings_dir=tmp_path)
    sample = EditorState.sample(tmp_path, st.graph, st.path)
    assert set(sample.graph.nodes) == set(st.graph.nodes)  # the recipe graph, not another one
    assert sample.graph.validate() == []
    assert sample.graph.get("wide.path").endswith("wide.fits.fz")


def test_a_stock_graph_opens_as_a_template_and_is_never_written(tmp_path):
    from msgr_nodes.stock import stock_graph

    stock = stock_graph("msgr_additive.json")
    before = stock.read_bytes()
    st = EditorState.open("msgr_additive", settings_dir=tmp_path)
    assert st.path is None and st.template == "msgr_additive" and not st.dirty
    st.apply(SetParam("gradient_model", "smoothing", 0.2))
    with pytest.raises(MsgrError, match="msgr_additive is a stock graph .a template.: use Save As"):
        st.save()
    with pytest.raises(MsgrError, match="is the stock graph 'msgr_additive'.*save under another name"):
        st.save(stock)
    assert stock.read_bytes() == before
    st.save(tmp_path / "mine.json")
    assert st.path == tmp_path / "mine.json" and st.template is None and not st.dirty
    assert stock.read_bytes() == before


def test_saved_paths_are_relative_to_the_graph_file_where_they_can_be(tmp_path):
    st = EditorState.open("msgr_additive", settings_dir=tmp_path)
    (tmp_path / "project" / "data").mkdir(parents=True)
    st.apply(SetParam("narrow", "path", str(tmp_path / "project" / "data" / "N.fits")))
    st.apply(SetParam("wide", "path", "/elsewhere/W.fits"))
    st.save(tmp_path / "project" / "g.json")
    params = {nid: n["params"] for nid, n in json.loads((tmp_path / "project" / "g.json").read_text())["nodes"].items()}
    assert params["narrow"]["path"] == "data/N.fits"
    assert params["wide"]["path"] == "/elsewhere/W.fits"            # outside the folder: kept absolute
    assert params["save"]["path"] == "{source_dir}/{source_stem}_msgr.fits"  # a template: as it was
    again = EditorState.open(tmp_path / "project" / "g.json", settings_dir=tmp_path)
    assert again.graph.effective_params("narrow")["path"] == str(tmp_path / "project" / "data" / "N.fits")


def test_copy_as_command_repeats_the_edits_headless(tmp_path):
    import shlex

    from msgr_nodes.cli import main
    from msgr_nodes.graph import Graph

    st = EditorState.open("msgr_additive", settings_dir=tmp_path)
    st.apply(SetParam("gradient_model", "smoothing", 0.0004))
    st.apply(SetParam("narrow", "path", str(tmp_path / "N.fits")))
    command = st.as_command()
    assert command == (f"msgr-nodes run msgr_additive -s narrow.path={tmp_path / 'N.fits'} "
                       f"-s gradient_model.smoothing=0.0004")
    args = shlex.split(command)[1:]
    assert main(["validate", *args[1:]]) == 1  # the same graph: only wide.path is missing
    script = st.as_python()
    assert script.startswith("from msgr_nodes import Graph\n\ng = Graph.load('msgr_additive')\n")
    g = Graph.load("msgr_additive")
    for line in script.splitlines():
        if line.startswith("g.set("):
            eval(line, {"g": g})
    assert g.get("gradient_model.smoothing") == 0.0004 and g.get("narrow.path") == str(tmp_path / "N.fits")
    st.apply(RemoveLink("save", "image"))
    with pytest.raises(MsgrError, match="nodes or links were added or removed"):
        st.as_command()


def test_layered_layout_never_overlaps_and_keeps_links_left_to_right(tmp_path):
    from msgr_nodes.gui.layout import estimated_size, layered_positions, overlaps

    for name in ("msgr", "msgr_additive", "msgr_cascade"):
        st = EditorState.open(name, settings_dir=tmp_path)
        g = st.graph
        sizes = {nid: estimated_size(g, nid) for nid in g.nodes}
        pos = layered_positions(g, sizes, max_width=10_000)
        assert overlaps({n: (*pos[n], *sizes[n]) for n in g.nodes}) == []
        assert all(pos[l.src][0] < pos[l.dst][0] for l in g.links)  # one band: every link goes right
        wrapped = layered_positions(g, sizes, max_width=1000)
        assert overlaps({n: (*wrapped[n], *sizes[n]) for n in g.nodes}) == []
        assert max(wrapped[n][0] + sizes[n][0] for n in g.nodes) <= 1000


def test_a_typed_float_is_stored_as_typed():
    from msgr_nodes.gui.inspector import as_typed, digits_for
    from msgr_nodes.registry import discover

    smoothing = discover(entry_points=False).get("Register").param("smoothing")
    digits = digits_for(smoothing)
    assert digits >= 4 and f"{0.0005:.{digits}g}" == "0.0005"
    assert as_typed(float(np.float32(0.0004)), digits) == 0.0004  # float32 noise from a widget is gone
    assert as_typed(0.1 + 0.2, 6) == 0.3
