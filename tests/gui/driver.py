"""Drives the real editor window (run under Xvfb by tests/test_gui_window.py).

    python tests/gui/driver.py OUT_DIR GRAPH [DATA_FITS]
    python tests/gui/driver.py --editing OUT_DIR CHECKERBOARD_FITS
    python tests/gui/driver.py --fit OUT_DIR

The first opens GRAPH, takes a screenshot of the canvas; then builds a small graph on DATA_FITS
(a good chain and a Load of a missing file), runs it in the background thread while frames keep
being drawn, previews a node and takes more screenshots. ``--editing`` does what a new user
does: edits on a stock graph, Ctrl+S on it, Save As, Copy as command, a path typed without
Enter, Arrange, the large view at 1:1, the Log and the help. ``--fit`` opens the window and
reports its geometry. Each writes OUT_DIR/report.json with what it saw.
"""
import json
import sys
import time
from pathlib import Path

import dearpygui.dearpygui as dpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout under test, as pytest imports it

from msgr_nodes.gui.app import EditorApp  # noqa: E402
from msgr_nodes.gui.commands import AddLink  # noqa: E402
from msgr_nodes.gui.state import EditorState  # noqa: E402


def rect(item):
    """[x, y, w, h] of an item on the screen (child windows report no rect_min: their position)."""
    state = dpg.get_item_state(item)
    x, y = state["rect_min"] if "rect_min" in state else dpg.get_item_pos(item)
    w, h = state["rect_size"] if "rect_size" in state else (dpg.get_item_width(item), dpg.get_item_height(item))
    return [int(x), int(y), int(w), int(h)]


def run_on_sample(app, graph, settings=None) -> dict:
    """Open a graph, put the bundled sample pair in (File > Use the bundled sample pair), run it and
    preview remove_model, as a user would; the status line and the preview's title."""
    app.open(graph)
    app.open_sample()
    for target, value in (settings or {}).items():
        app.state.graph.set(target, value)
    app.run_graph()
    app.wait_run(600)
    app.select("remove_model")
    dpg.set_value("side_tabs", "tab_preview")
    app.frames(10)
    return {"status": app.status, "preview": dpg.get_value("preview_title")}


def two_chains(app, out, load_params, layers, positions):
    """A new graph: Load -> MMT (a good chain) and a Load of a missing file -> PixelMath; the ids."""
    app.new()
    s = app.state
    good = s.add_node("Load", positions[0], load_params)
    mmt = s.add_node("MMT", positions[1], {"remove_layers": layers, "layers": layers, "method": "exact"})
    s.apply(AddLink(good, "image", mmt, "image"))
    bad = s.add_node("Load", positions[2], {"path": str(out / "missing.fits")})
    pm = s.add_node("PixelMath", positions[3], {"expression": "$T * 2"})
    s.apply(AddLink(bad, "image", pm, "image"))
    app.rebuild_canvas()
    return s, (good, mmt, bad, pm)


def main():
    out, graph = Path(sys.argv[1]), sys.argv[2]
    data = sys.argv[3] if len(sys.argv) > 3 else None
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    app = EditorApp(EditorState.open(graph, settings_dir=out / "settings"), width=1500, height=900)
    app.build()
    app.frames(20)
    report["stock"] = {"nodes": {nid: rect(item) for nid, item in app.node_item.items()},
                       "links": len(app.link_item), "status": app.status,
                       "problems": {k: v for k, v in app.state.problems_by_node().items()}}
    app.screenshot(out / "stock.png")
    if data:
        s, (good, mmt, bad, pm) = two_chains(app, out, {"path": data}, 5, [(40, 60), (380, 60), (40, 330), (380, 330)])
        app.frames(10)
        t0 = time.perf_counter()
        app.run_graph()
        app.wait_run(600)
        report["run"] = {"seconds": time.perf_counter() - t0,
                         "fps_min": min(app.fps_during_run) if app.fps_during_run else None,
                         "fps_median": sorted(app.fps_during_run)[len(app.fps_during_run) // 2]
                         if app.fps_during_run else None,
                         "states": {nid: r.state for nid, r in s.runs.items()},
                         "nodes": {nid: rect(item) for nid, item in app.node_item.items()},
                         "ids": {"good": good, "mmt": mmt, "bad": bad, "pm": pm}}
        app.select(mmt)
        dpg.set_value("side_tabs", "tab_preview")
        app.frames(10)
        report["preview"] = {"title": dpg.get_value("preview_title"), "plot": rect("preview_plot")}
        app.screenshot(out / "run.png")
        # re-run after a parameter edit: only the downstream cone is recomputed
        app.set_param(mmt, "remove_layers", 4)
        app.frames(3)
        report["after_edit"] = {nid: r.state for nid, r in s.runs.items()}
        app.run_graph()
        app.wait_run(600)
        res = app.last_result
        report["rerun"] = {"computed": sorted(res.computed), "cached": sorted(res.cached)}
        # the stock graph (msgr.json) on the bundled sample, as a user would from the File menu
        report["sample"] = run_on_sample(app, graph, {"save.path": str(out / "sample_msgr.fits"),
                                                      "save_model.path": str(out / "sample_model.fits")})
        report["sample"]["states"] = {nid: r.state for nid, r in app.state.runs.items()}
        app.screenshot(out / "sample.png")
    app.close()
    (out / "report.json").write_text(json.dumps(report, indent=1))


def header(app) -> str:
    """The Node tab's first line: the node it shows."""
    children = dpg.get_item_children("inspector", 1)
    return dpg.get_value(children[0]) if children else ""


def field(app, nid, name):
    return next(w for w, n, p, _ in app.inspector.fields if n == nid and p == name)


def text_overflow(container) -> int:
    """How many px the widest visible text of a window is wider than the window (0: nothing cut)."""
    width = dpg.get_item_state(container).get("rect_size", [dpg.get_item_width(container)])[0]
    worst = 0
    stack = [container]
    while stack:
        item = stack.pop()
        for slot in (0, 1, 2, 3):
            stack += dpg.get_item_children(item, slot) or []
        if dpg.get_item_type(item).endswith("mvText") and dpg.is_item_visible(item):
            worst = max(worst, dpg.get_item_rect_size(item)[0] - width)
    return int(worst)


def fit(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    app = EditorApp(EditorState(settings_dir=out / "settings"))
    app.build()
    app.frames(10)
    x, y = dpg.get_viewport_pos()
    report = {"viewport": [int(x), int(y), dpg.get_viewport_width(), dpg.get_viewport_height()],
              "side": rect("side"), "canvas": rect("canvas_panel")}
    app.screenshot(out / "fit.png")
    app.close()
    (out / "report.json").write_text(json.dumps(report, indent=1))


def editing(out: Path, data: str) -> None:
    import hashlib

    from msgr_nodes.stock import stock_graph

    out.mkdir(parents=True, exist_ok=True)
    report = {}
    stock = stock_graph("msgr_additive.json")
    stock_hash = hashlib.sha256(stock.read_bytes()).hexdigest()
    app = EditorApp(EditorState.open("msgr_additive", settings_dir=out / "settings"))
    app.build()
    app.frames(10)
    report["stock"] = {"nodes": {nid: rect(item) for nid, item in app.node_item.items()},
                       "minimap": dpg.get_item_configuration("editor")["minimap"], "canvas": rect("canvas_panel")}
    app.screenshot(out / "stock.png")
    # three edits in a row, each on the node shown; the Node tab must stay on it
    shown = []
    for nid, name, value in (("gradient_model", "layers", 7), ("star_align", "smoothing", 0.0004),
                             ("detail_fit", "detail_sigma", 6.0)):
        app.select(nid)
        app.frames(3)
        app.set_param(nid, name, value)  # what the field does when it loses focus
        app.frames(5)
        shown.append([nid, header(app)])
    app.select("star_align")
    app.frames(3)
    w = field(app, "star_align", "smoothing")
    report["edits"] = {"shown": shown, "smoothing_format": dpg.get_item_configuration(w)["format"],
                       "smoothing_value": app.state.graph.get("star_align.smoothing")}
    # Ctrl+S on a stock graph: the stock file is left alone and a file is asked for
    app.save_or_ask()
    app.frames(3)
    report["ctrl_s"] = {"stock_unchanged": hashlib.sha256(stock.read_bytes()).hexdigest() == stock_hash,
                        "dialog": dpg.is_item_shown("save_dialog"), "status": app.status}
    dpg.hide_item("save_dialog")
    (out / "project" / "data").mkdir(parents=True)
    app.state.graph.set("narrow.path", str(out / "project" / "data" / "N.fits"))
    app.save(str(out / "project" / "mine.json"))
    report["saved"] = {"text": (out / "project" / "mine.json").read_text(),
                       "mode": oct((out / "project" / "mine.json").stat().st_mode & 0o777),
                       "stock_unchanged": hashlib.sha256(stock.read_bytes()).hexdigest() == stock_hash}
    app.copy_as("command")
    report["command"] = app.copied
    # a new graph: a path typed without Enter, then F5
    s, (load, mmt, missing, pm) = two_chains(app, out, {}, 3, [(0, 0)] * 4)  # all on one spot: Arrange sorts them
    app.select(load)
    app.frames(5)
    dpg.set_value(field(app, load, "path"), data)  # typed, no Enter, the field still has the focus
    app.run_graph()
    app.wait_run(600)
    report["typed"] = {"status": app.status, "path": s.graph.get(f"{load}.path"),
                       "states": {nid: r.state for nid, r in s.runs.items()}, "ids": [load, mmt, missing, pm],
                       "runinfo": dpg.get_value(f"runinfo_{missing}"),
                       "runinfo_full": dpg.get_value(f"runinfo_full_{missing}")}
    app.frames(5)
    app.arrange()
    app.frames(5)
    report["arranged"] = {nid: rect(item) for nid, item in app.node_item.items()}
    report["thumbnail"] = rect(f"thumb_{load}") if dpg.does_item_exist(f"thumb_{load}") else None
    app.screenshot(out / "arranged.png")
    # the large view at 1:1 on the Load's image (a checkerboard of 1 px cells)
    app.select(load)
    app.frames(3)
    app.large_view.show()
    app.frames(3)
    app.large_view.set_scale(True)
    app.frames(5)
    report["large"] = {"image": rect("big_image"), "box": list(app.large_view.window_box),
                       "title": dpg.get_value("big_title")}
    app.screenshot(out / "large.png")
    dpg.hide_item("big_preview")
    # the Log and the help cut no line off
    dpg.set_value("side_tabs", "tab_log")
    s.log.append("a long line " * 30)
    app.frames(5)
    report["log_overflow"] = text_overflow("log_panel")
    app.dialogs.show("help")
    app.frames(5)
    report["help_overflow"] = text_overflow("help")
    app.screenshot(out / "help.png")
    dpg.hide_item("help")
    # the README's picture: the recommended graph after a run on the bundled sample
    report["sample"] = run_on_sample(app, "msgr_additive")
    report["sample"]["nodes"] = {nid: rect(item) for nid, item in app.node_item.items()}
    app.screenshot(out / "editor.png")
    # File > Import PixInsight icons... and Export PixInsight icons...
    icons = Path(__file__).resolve().parents[1] / "data" / "pixinsight-icons" / "Foraxx.xpsm"
    app.import_xpsm(str(icons))
    app.frames(5)
    imported = {"status": app.status, "nodes": sorted(app.state.graph.nodes), "path": str(app.state.path)}
    app.export_xpsm(str(out / "exported.xpsm"))
    imported.update(export_status=app.status, exported=(out / "exported.xpsm").is_file())
    report["xpsm"] = imported
    app.quit()
    app.frames(3)
    app.close()
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "--editing":
        editing(Path(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "--fit":
        fit(Path(sys.argv[2]))
    else:
        main()
