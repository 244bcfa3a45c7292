"""The editor's frame rate while the recommended graph runs on the bundled sample (thumbnails
included). Needs a display: run it under Xvfb. (The README's picture comes from the editor test:
MSGR_UPDATE_DOCS=1 python -m pytest tests/test_gui_window.py.)

    xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/gui.py [--shot FILE.png]
"""
import argparse
import time

import dearpygui.dearpygui as dpg

from msgr_nodes.stock import asset, stock_graph
from msgr_nodes.gui.app import EditorApp
from msgr_nodes.gui.state import EditorState


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shot", default=None, help="also save a screenshot after the run")
    a = ap.parse_args()
    import tempfile
    from pathlib import Path
    keep = tempfile.TemporaryDirectory(prefix="msgr-gui-")  # removed when main returns
    tmp = Path(keep.name)
    state = EditorState.open(stock_graph("msgr_additive.json"), settings_dir=tmp)
    state.graph.set("narrow.path", str(asset("narrow.fits.fz")))
    state.graph.set("wide.path", str(asset("wide.fits.fz")))
    state.graph.set("save.path", str(tmp / "out.fits"))
    state.graph.set("save_model.path", str(tmp / "model.fits"))
    app = EditorApp(state, 1500, 900)
    app.build()
    app.frames(60)  # the window settles and the processing process has started
    app.frames(60)
    idle = [f for f in app.frame_times]
    t0 = time.perf_counter()
    app.run_graph()
    app.wait_run()
    dt = time.perf_counter() - t0
    fps = sorted(app.fps_during_run)
    app.select("remove_model")
    dpg.set_value("side_tabs", "tab_preview")
    app.frames(20)
    if a.shot:
        app.screenshot(a.shot)
    idle_fps = (len(idle) - 1) / (idle[-1] - idle[0]) if len(idle) > 1 else float("nan")
    print(f"run of msgr_additive.json on the sample: {dt:.1f} s; frame rate during the run: "
          f"min {fps[0]:.1f}, median {fps[len(fps) // 2]:.1f} fps (idle {idle_fps:.1f} fps); {app.status}")
    if a.shot:
        print(f"screenshot: {a.shot}")
    app.close()


if __name__ == "__main__":
    main()
