"""The editor in a real window under Xvfb: screenshots are taken by tests/gui/driver.py and checked here."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image as PILImage

from msgr_nodes.stock import stock_graph

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def driven(tmp_path_factory, rng_module):
    if shutil.which("xvfb-run") is None:
        pytest.fail("xvfb-run is not installed: apt-get install xvfb (the CI script installs it)")
    out = tmp_path_factory.mktemp("gui")
    yy, xx = np.mgrid[0:300, 0:400]
    sky = 0.1 + 0.03 * np.exp(-((xx - 200) ** 2 + (yy - 150) ** 2) / 5000.0) + rng_module.normal(0, 0.003, (300, 400))
    fits.writeto(out / "sky.fits", sky.astype(np.float32))
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable,
                           str(HERE / "gui" / "driver.py"), str(out / "shots"), str(stock_graph("msgr.json")),
                           str(out / "sky.fits")], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "HOME": str(out)})  # the sample's output folder goes here
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "shots" / "report.json").read_text())
    return out / "shots", report


@pytest.fixture(scope="module")
def rng_module():
    return np.random.default_rng(7)


def _pixels(png, rect):
    img = np.asarray(PILImage.open(png).convert("RGB")).astype(int)
    x, y, w, h = rect
    return img[max(y, 0):y + h, max(x, 0):x + w]


def _has_colour(region, colour, tol=12, min_count=200):
    d = np.abs(region - np.array(colour)).max(axis=2)
    return int((d <= tol).sum()) >= min_count


def test_stock_graph_is_drawn_with_nodes_links_and_problems(driven):
    shots, report = driven
    stock = report["stock"]
    assert report["stock"]["links"] == 16
    assert set(stock["problems"]) == {"narrow", "wide"}
    # the two Load nodes without a path are drawn with the problem colour, the others are not
    assert _has_colour(_pixels(shots / "stock.png", stock["nodes"]["narrow"]), (200, 120, 20))
    assert not _has_colour(_pixels(shots / "stock.png", stock["nodes"]["abe"]), (200, 120, 20))
    # links are drawn: bright curve pixels on the canvas outside every node
    img = np.asarray(PILImage.open(shots / "stock.png").convert("RGB")).astype(int)
    outside = np.ones(img.shape[:2], bool)
    for x, y, w, h in stock["nodes"].values():
        outside[max(y, 0):y + h, max(x, 0):x + w] = False
    canvas = np.zeros_like(outside)
    canvas[40:880, 10:1040] = True
    bright = (img.min(axis=2) > 180) & outside & canvas
    assert bright.sum() > 300


def test_run_colours_nodes_and_preview_shows_a_stretched_image(driven):
    shots, report = driven
    run = report["run"]
    ids = run["ids"]
    assert run["states"][ids["good"]] == "done" and run["states"][ids["mmt"]] == "done"
    assert run["states"][ids["bad"]] == "failed" and run["states"][ids["pm"]] == "skipped"
    png = shots / "run.png"
    assert _has_colour(_pixels(png, run["nodes"][ids["bad"]]), (190, 40, 40))      # failed: red
    assert _has_colour(_pixels(png, run["nodes"][ids["mmt"]]), (40, 130, 60))      # done: green
    assert report["preview"]["title"].startswith(f"{ids['mmt']}: 400x300 mono, auto-stretched")
    region = _pixels(png, report["preview"]["plot"])
    grey = region.mean(axis=2)
    assert grey.std() > 10 and grey.max() - grey.min() > 60  # a stretched image, not an empty plot


def test_rerun_after_a_parameter_edit_uses_the_cache(driven):
    _, report = driven
    ids = report["run"]["ids"]
    # the edit resets only the edited node's cone: the Load upstream stays shown as done
    assert report["after_edit"][ids["good"]] == "done" and ids["mmt"] not in report["after_edit"]
    assert report["rerun"]["computed"] == [ids["mmt"]]
    assert report["rerun"]["cached"] == [ids["good"]]


def test_the_stock_graph_runs_on_the_bundled_sample_and_previews_the_result(driven):
    shots, report = driven
    sample = report["sample"]
    assert sample["status"].startswith("done:"), sample["status"]
    assert set(sample["states"].values()) == {"done"}
    assert sample["preview"].startswith("remove_model: 1000x750 mono, auto-stretched")


def _drive(args, screen, out, timeout=900):
    proc = subprocess.run(["xvfb-run", "-a", "-s", f"-screen 0 {screen}x24", sys.executable,
                           str(HERE / "gui" / "driver.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HOME": str(out)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "leaked" not in proc.stderr, proc.stderr[-2000:]  # the worker and its semaphores are stopped
    return json.loads((Path(args[1]) / "report.json").read_text())


@pytest.fixture(scope="module")
def editing(tmp_path_factory):
    out = tmp_path_factory.mktemp("editing")
    yy, xx = np.mgrid[0:300, 0:400]
    # a checkerboard of 1 px cells on a left-to-right ramp: the ramp shows in a thumbnail, the cells at 1:1
    fits.writeto(out / "checker.fits", (np.where((xx + yy) % 2 == 0, 0.2, 0.5) + 0.3 * xx / 400).astype(np.float32))
    shots = out / "shots"
    return shots, _drive(["--editing", str(shots), str(out / "checker.fits")], "1600x1000", out)


def _boxes_overlap(rects):
    boxes = list(rects.items())
    return [(a, b) for i, (a, (ax, ay, aw, ah)) in enumerate(boxes) for b, (bx, by, bw, bh) in boxes[i + 1:]
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah]


def test_an_edit_leaves_the_node_tab_on_the_edited_node(editing):
    _, report = editing
    for nid, header in report["edits"]["shown"]:
        assert header.startswith(f"{nid}  ("), (nid, header)
    # small numbers show with their digits, and what is stored is what was typed
    assert report["edits"]["smoothing_format"] == "%.6g"
    assert report["edits"]["smoothing_value"] == 0.0004


def test_ctrl_s_on_a_stock_graph_asks_for_a_file_and_leaves_the_stock_file_alone(editing):
    _, report = editing
    assert report["ctrl_s"]["stock_unchanged"] and report["ctrl_s"]["dialog"]
    assert "stock graph" in report["ctrl_s"]["status"]
    saved = report["saved"]
    assert saved["stock_unchanged"] and saved["mode"] == "0o644"  # the user's umask (022 in the test)
    data = json.loads(saved["text"])
    assert data["nodes"]["narrow"]["params"]["path"] == "data/N.fits"  # relative to the graph file
    assert '"smoothing": 0.0004,' in saved["text"]
    assert data["nodes"]["gradient_model"]["params"]["layers"] == 7
    assert report["command"].startswith("msgr-nodes run ") and report["command"].endswith("mine.json")


def test_a_path_typed_without_enter_is_used_by_the_run(editing):
    _, report = editing
    typed = report["typed"]
    load, mmt, missing, pm = typed["ids"]
    assert typed["path"].endswith("checker.fits")
    assert typed["states"][load] == "done" and typed["states"][mmt] == "done"
    # the failure is named on its node in one line, in full in the tooltip, and first in the status
    assert typed["states"][missing] == "failed" and typed["states"][pm] == "skipped"
    assert typed["status"].startswith(f"failed: {missing} (Load): ") and "no such file" in typed["status"]
    assert len(typed["runinfo"]) <= 44 and typed["runinfo_full"].endswith("missing.fits: no such file")


def test_image_nodes_show_a_thumbnail_after_a_run(editing):
    shots, report = editing
    x, y, w, h = report["thumbnail"]
    assert 48 <= max(w, h) <= 64 and abs(w / h - 4 / 3) < 0.05  # the Load's 400 x 300 image, scaled down
    node = report["arranged"][report["typed"]["ids"][0]]
    assert node[0] <= x and x + w <= node[0] + node[2] and node[1] <= y and y + h <= node[1] + node[3]
    grey = np.asarray(PILImage.open(shots / "arranged.png").convert("L")).astype(float)[y:y + h, x:x + w]
    assert np.corrcoef(np.arange(w), grey.mean(axis=0))[0, 1] > 0.9  # the ramp, drawn on the node


def test_arrange_and_the_stock_graph_leave_no_two_nodes_overlapping(editing):
    _, report = editing
    assert _boxes_overlap(report["arranged"]) == []
    assert _boxes_overlap(report["stock"]["nodes"]) == []
    assert report["stock"]["minimap"] is False
    # the stock graph is as wide as the canvas it opens in (its bands continue below)
    cx, cy, cw, ch = report["stock"]["canvas"]
    assert all(x >= cx and x + w <= cx + cw for x, y, w, h in report["stock"]["nodes"].values())


def test_the_large_view_at_1_to_1_shows_the_images_own_pixels(editing):
    shots, report = editing
    x, y, w, h = report["large"]["image"]
    x0, y0, bw, bh = report["large"]["box"]
    assert (w, h) == (bw, bh) and "1:1" in report["large"]["title"]
    grey = np.asarray(PILImage.open(shots / "large.png").convert("L")).astype(int)[y:y + h, x:x + w]
    rows, cols = np.mgrid[0:h, 0:w - 1]
    # the checkerboard, FITS row 0 at the bottom: each pixel brighter than its right neighbour where
    # the image says so; one resampled pixel would break the alternation
    brighter = ((x0 + cols) + (y0 + h - 1 - rows)) % 2 == 1
    assert ((grey[:, :-1] > grey[:, 1:]) == brighter).mean() > 0.99


def test_the_log_and_the_help_cut_no_line_off(editing):
    _, report = editing
    assert report["log_overflow"] <= 0 and report["help_overflow"] <= 0


@pytest.mark.parametrize("screen", ["1280x800", "1600x1000"])
def test_the_window_fits_the_screen_it_opens_on(tmp_path, screen):
    report = _drive(["--fit", str(tmp_path / "shots")], screen, tmp_path, timeout=300)
    sw, sh = (int(v) for v in screen.split("x"))
    x, y, w, h = report["viewport"]
    assert x >= 0 and y >= 0 and x + w <= sw and y + h <= sh, report
    assert w >= min(1500, sw - 40) - 1  # as large as the screen allows, up to 1500 x 900


def test_the_readme_picture_is_the_recommended_graph_after_a_run(editing):
    """docs/editor.png comes from this run: MSGR_UPDATE_DOCS=1 copies it into the checkout."""
    shots, report = editing
    assert report["sample"]["status"].startswith("done:"), report["sample"]
    assert report["sample"]["preview"].startswith("remove_model: 1000x750 mono, auto-stretched")
    assert _boxes_overlap(report["sample"]["nodes"]) == []  # the thumbnails found the room left for them
    with PILImage.open(shots / "editor.png") as shot:
        assert shot.size == (1500, 900)
    if os.environ.get("MSGR_UPDATE_DOCS"):
        shutil.copy(shots / "editor.png", HERE.parent / "docs" / "editor.png")


def test_the_file_menu_imports_and_exports_pixinsight_icons(editing):
    shots, report = editing
    x = report["xpsm"]
    assert x["status"].startswith("imported ") and "Foraxx.xpsm: 9 nodes" in x["status"]
    assert {"SHO", "ForaxX_SHO", "sii", "ha", "oiii", "save"} <= set(x["nodes"])
    assert x["path"] == "None"  # a new, unsaved graph: Save asks for a file
    assert x["exported"] and x["export_status"].startswith(f"wrote {shots / 'exported.xpsm'} (9 icons)")
