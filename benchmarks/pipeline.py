"""The whole recommended graph on a 6000x4000 RGB narrow and a 3300x2200 RGB wide image: cold time,
peak resident memory, and the time of a re-run after editing one parameter of the model step.

    python benchmarks/pipeline.py [--graph msgr_additive.json] [--workdir DIR]

The pair comes from make_pairs.py (rcw32, ratio 2) at full size; colour is made by scaling the
mono frames per channel (0.85, 1.0, 1.15), which keeps the stars and the gradients real.
The edited parameter is the model step's: gradient_model's smoothing for msgr_additive.json,
mmt_model's number of removed layers for msgr.json.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).parent))
from _measure import PeakRSS  # noqa: E402
from pairs import make_pair  # noqa: E402
from quality import load_score  # noqa: E402

from msgr_nodes.stock import stock_graph  # noqa: E402
from msgr_nodes.executor import Executor  # noqa: E402
from msgr_nodes.graph import Graph  # noqa: E402


def rgb_copy(src: Path, dst: Path) -> None:
    with fits.open(src) as h:
        d, hdr = h[0].data.astype(np.float32), h[0].header.copy()
    fits.writeto(dst, np.stack([d * 0.85, d, np.minimum(d * 1.15, 1.0)]).astype(np.float32), hdr, overwrite=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graph", default="msgr_additive.json")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "msgr-bench-pairs")
    a = ap.parse_args()
    pair = make_pair(a.workdir / "pipeline_6000", "--narrow-size", "6000", "4000", "--ratio", "2",
                     "--wide-fov", "1.1", "--seed", "9")
    # the RGB copies and outputs are 0.9 GB: removed at the end, also after a failure
    with tempfile.TemporaryDirectory(prefix="msgr-pipeline-") as tmp:
        return run(a, pair, Path(tmp))


def run(a, pair: Path, work: Path) -> int:
    """Cold run, re-run after one edit, and the score, in the folder ``work``."""
    rgb_copy(pair / "narrow.fits", work / "narrow.fits")
    rgb_copy(pair / "wide.fits", work / "wide.fits")
    g = Graph.load(stock_graph(a.graph))
    g.set("narrow.path", str(work / "narrow.fits"))
    g.set("wide.path", str(work / "wide.fits"))
    g.set("save.path", str(work / "out.fits"))
    g.set("save_model.path", str(work / "model.fits"))
    g.set("save.overwrite", True)
    g.set("save_model.overwrite", True)
    times = {}
    ex = Executor(jobs=2, on_event=lambda e: e.kind == "finished" and not e.cached and times.__setitem__(e.node, e.seconds))
    with PeakRSS() as mem:
        t = time.perf_counter()
        res = ex.run(g)
        cold = time.perf_counter() - t
    if not res.ok:
        print("failed:", res.errors)
        return 1
    if a.graph == "msgr.json":
        g.set("mmt_model.remove_layers", 8)
        edited = "mmt_model.remove_layers 9 -> 8"
    else:
        g.set("gradient_model.smoothing", 0.2)
        edited = "gradient_model.smoothing 0.1 -> 0.2"
    t = time.perf_counter()
    res2 = ex.run(g)
    rerun = time.perf_counter() - t
    print(f"{a.graph} on 6000x4000 RGB narrow + 3300x2200 RGB wide, 2 threads")
    print(f"cold run: {cold:.1f} s, peak RSS {mem.peak / 1e9:.2f} GB")
    print("per node (s): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(times.items(), key=lambda kv: -kv[1])))
    print(f"re-run after {edited}: {rerun:.1f} s = {100 * rerun / cold:.0f} % of cold; recomputed "
          f"{', '.join(res2.computed)}")
    score_mod = load_score()
    sky = json.loads((pair / "truth.json").read_text())["narrow"]["sky_e"] / 65535.0
    before = score_mod.score(score_mod.load(work / "narrow.fits"), pair, sky)
    after = score_mod.score(score_mod.load(work / "out.fits"), pair, sky)
    fit = ex.cached_result(res2.keys["detail_fit"]) if "detail_fit" in res2.keys else None
    checks = {c["check"].split(":")[0] for c in fit.metadata["channels"]} if fit else {"-"}
    print(f"resid_rms (% of sky, channel mean against the truth): {before['resid_rms']:.2f} uncorrected, "
          f"{after['resid_rms']:.2f} corrected; gain_spread {after['gain_spread']:.2f} %; self-check: "
          f"{', '.join(sorted(checks))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
