"""Drives the real editor window (run under Xvfb by tests/test_gui_window.py).

    python tests/gui/driver.py OUT_DIR GRAPH [DATA_FITS]

Opens GRAPH, takes a screenshot of the canvas; then builds a small graph on DATA_FITS (a good
chain and a Load of a missing file), runs it in the background thread while frames keep being
drawn, previews a node and takes more screenshots. Writes OUT_DIR/report.json with what it saw.
"""
import json
import sys
import time
from pathlib import Path

import dearpygui.dearpygui as dpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout under test, as pytest imports it

from msgr_nodes.gui.app import EditorApp  # noqa: E402
from msgr_nodes.gui.state import AddLink, EditorState  # noqa: E402


def rect(item):
    x, y = dpg.get_item_rect_min(item)
    w, h = dpg.get_item_rect_size(item)
    return [int(x), int(y), int(w), int(h)]


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
        app.new()
        s = app.state
        good = s.add_node("Load", (40, 60), {"path": data})
        mmt = s.add_node("MMT", (380, 60), {"remove_layers": 5, "layers": 5, "method": "exact"})
        s.apply(AddLink(good, "image", mmt, "image"))
        bad = s.add_node("Load", (40, 330), {"path": str(out / "missing.fits")})
        pm = s.add_node("PixelMath", (380, 330), {"expression": "$T * 2"})
        s.apply(AddLink(bad, "image", pm, "image"))
        app.rebuild_canvas()
        app.frames(10)
        t0 = time.perf_counter()
        app.run_graph()
        app.wait_run(120)
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
        app.wait_run(120)
        res = app.last_result
        report["rerun"] = {"computed": sorted(res.computed), "cached": sorted(res.cached)}
        # the stock graph (msgr.json) on the bundled sample, as a user would from the File menu
        app.open(graph)
        app.open_sample()
        app.state.graph.set("save.path", str(out / "sample_msgr.fits"))
        app.state.graph.set("save_model.path", str(out / "sample_model.fits"))
        app.run_graph()
        app.wait_run(300)
        app.select("remove_model")
        dpg.set_value("side_tabs", "tab_preview")
        app.frames(10)
        report["sample"] = {"status": app.status, "preview": dpg.get_value("preview_title"),
                            "states": {nid: r.state for nid, r in app.state.runs.items()}}
        app.screenshot(out / "sample.png")
    app.close()
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
