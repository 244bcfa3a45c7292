"""``msgr-nodes demo``: the recommended MSGR graph on the bundled sample pair."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from .io.atomic import make_folder
from .stock import asset, stock_graph


def before_after_png(before: np.ndarray, after: np.ndarray, model: np.ndarray, path: Path) -> None:
    """One PNG: before | after (both with the after image's AutoSTF) | model (min-max)."""
    from .image import Image
    from .io.formats import write_image
    from .ops.stretch import apply_stf, auto_stf

    stf = auto_stf(after)
    lo, hi = float(model.min()), float(model.max())
    m = (model - lo) / (hi - lo) if hi > lo else np.zeros_like(model)
    gap = np.ones((before.shape[0], before.shape[1], 8), np.float32)
    panel = np.concatenate([apply_stf(before, stf), gap, apply_stf(after, stf), gap, m.astype(np.float32)], axis=2)
    write_image(path, Image(panel), "png", "uint8", overwrite=True)


def self_check(result) -> str:
    """The verdict of the graph's self-checking fit (DetailFit: the one of id ``detail_fit`` where a
    cascade has several), or "-" for a graph without one."""
    nodes = list(result.results.values())
    if "detail_fit" in result.results:
        nodes.insert(0, result.results["detail_fit"])
    for node in nodes:
        channels = node.metadata.get("channels") or [{}]
        if "check" in channels[0]:
            return channels[0]["check"]
    return "-"


def run_demo(out: Path, jobs: int = 2, cache_dir: Path | None = None, graph: str = "msgr_additive.json",
             debug: bool = False) -> int:
    """Run the recommended graph on the sample pair into ``out``; print where the results are and the score."""
    from .executor import Executor
    from .graph import Graph
    from .io.formats import read_image
    from .ops.score import score
    from .progress import make_progress, print_failures

    t0 = time.perf_counter()
    # the folder is the user's (command line: relative to the current folder), not the graph file's
    out = Path(out).resolve()
    make_folder(out, "demo --out", "give another folder for the demo's outputs")
    g = Graph.load(stock_graph(graph))
    g.set("narrow.path", str(asset("narrow.fits.fz")))
    g.set("wide.path", str(asset("wide.fits.fz")))
    corrected, model_path = out / "narrow_msgr.fits", out / "narrow_msgr_model.fits"
    g.set("save.path", str(corrected))
    g.set("save_model.path", str(model_path))
    g.set("save.overwrite", True)  # the demo's own folder: rerunning it replaces its outputs
    g.set("save_model.overwrite", True)
    labels = {nid: (n.label or nid) for nid, n in g.nodes.items()}
    with make_progress(labels) as progress:
        result = Executor(jobs=jobs, memory_bytes=0, cache_dir=cache_dir, on_event=progress).run(g)
    if not result.ok:
        print_failures(result, debug)
        return 1
    before = read_image(asset("narrow.fits.fz")).data
    after = read_image(corrected).data
    model = read_image(model_path).data
    png = out / "before_after.png"
    before_after_png(before, after, model, png)
    truth = json.loads(asset("truth.json").read_text())
    sky = truth["narrow"]["sky_e"] / 65535.0
    neb, clean, grad = (read_image(asset(f"narrow_{n}.fits.fz")).data[0] for n in ("nebula", "clean", "gradient"))
    s_before = score(before[0], neb, clean, grad, sky)
    s_after = score(after[0], neb, clean, grad, sky)
    check = self_check(result)
    print(f"corrected image: {corrected}")
    print(f"gradient model:  {model_path}")
    print(f"before | after | model: {png}")
    print(f"self-check: {check}")
    print(f"large-scale residual against the bundled truth (% of sky): {s_before['resid_rms']:.2f} before, "
          f"{s_after['resid_rms']:.2f} after; gradient left {s_after['grad_left']:.1f} %")
    print(f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0
