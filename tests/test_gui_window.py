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
                           str(out / "sky.fits")], capture_output=True, text=True, timeout=300,
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
