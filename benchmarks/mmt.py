"""MMT benchmark: c_8 and c_9 of one channel with each method, errors against exact, peak memory,
and one scipy.ndimage.median_filter(size=9) of the same image as the yardstick, in one run.

    python benchmarks/mmt.py                 # 2000x1500 and 6000x4000
    python benchmarks/mmt.py --sizes 2000x1500

Errors are max |method - exact| / background (background = median of the image). At 6000x4000
the exact chain (minutes) runs on a 6000x1200 crop: every method is compared with exact on that
same crop, and exact's time is scaled to the full height. Peak memory is the resident set above
the start of each call, sampled every 20 ms.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))
from _measure import PeakRSS  # noqa: E402
from _sky import make_sky  # noqa: E402

from msgr_nodes.ops import mmt  # noqa: E402


def timed(fn):
    with PeakRSS() as mem:
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
    return out, dt, mem.mb


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", nargs="+", default=["2000x1500", "6000x4000"])
    p.add_argument("--methods", nargs="+", default=["accurate", "preview", "pixinsight", "exact"])
    a = p.parse_args()
    # warm the JIT (compiled once per machine, then cached)
    warm = make_sky(300, 300, 1)
    for m in a.methods:
        mmt.smooth(warm, 5, m)
    for size in a.sizes:
        w, h = (int(v) for v in size.split("x"))
        img = make_sky(h, w)
        bg = float(np.median(img))
        _, t_scipy, _ = timed(lambda: ndimage.median_filter(img, size=9, mode="reflect"))
        print(f"\n{w}x{h} one channel, background {bg:.4f}; yardstick scipy median_filter(size=9): {t_scipy:.2f} s")
        big = w * h > 5e6
        if big:  # exact reference on a crop of full width (the windows see the same content as in the image)
            crop = img[: min(h, 1200)]
            ref = {K: mmt.smooth(crop, K, "exact") for K in (8, 9)}
        results = {}
        for method in a.methods:
            for K in (8, 9):
                if method == "exact" and big:
                    out, dt, mb = timed(lambda: mmt.smooth(crop, K, "exact"))
                    dt *= h / crop.shape[0]
                    results[(method, K)] = (dt, mb, 0.0, "crop, time scaled")
                    continue
                out, dt, mb = timed(lambda: mmt.smooth(img, K, method))
                results[(method, K)] = (dt, mb, out, "")
            if not big and method == "exact":
                ref = {K: results[("exact", K)][2] for K in (8, 9)}
        print(f"{'method':12s} {'K':>2s} {'seconds':>8s} {'x scipy9':>9s} {'peak MB':>8s} {'max err/bg':>11s}")
        for (method, K), (dt, mb, out, note) in results.items():
            if method == "exact":
                err = 0.0
            elif big:
                err = float(np.max(np.abs(mmt.smooth(crop, K, method) - ref[K]))) / bg
            else:
                err = float(np.max(np.abs(out - ref[K]))) / bg
            print(f"{method:12s} {K:2d} {dt:8.2f} {dt / t_scipy:9.2f} {mb:8.0f} {err:11.2e} {note}")


if __name__ == "__main__":
    main()
