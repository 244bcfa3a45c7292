"""PixelMath throughput on a 6000x4000 RGB image, next to plain numpy doing the same, in one run.

    python benchmarks/pixelmath.py [--size 6000 4000] [--repeat 3]

Expression (5 operators): Narrow * med(Wide) / Wide + 0.1 * Narrow - 0.01
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _measure import best  # noqa: E402

from msgr_nodes.ops.pixelmath import compile_program, evaluate  # noqa: E402

EXPR = "Narrow * med(Wide) / Wide + 0.1 * Narrow - 0.01"


def numpy_float64(n, w):
    med = np.median(w, axis=(1, 2), keepdims=True).astype(np.float64)
    out = n.astype(np.float64) * med / w + 0.1 * n - 0.01
    return np.clip(out, 0, 1).astype(np.float32)


def numpy_float32(n, w):
    med = np.median(w, axis=(1, 2), keepdims=True)
    out = n * med / w + np.float32(0.1) * n - np.float32(0.01)
    return np.clip(out, 0, 1, out=out)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, nargs=2, default=[6000, 4000])
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    w_, h_ = a.size
    rng = np.random.default_rng(1)
    n = (rng.random((3, h_, w_), dtype=np.float32) * 0.5 + 0.05)
    w = (rng.random((3, h_, w_), dtype=np.float32) * 0.5 + 0.05)
    mpx = w_ * h_ / 1e6
    prog = compile_program([EXPR], ["Narrow", "Wide"])
    t_pm, out = best(lambda: evaluate(prog, {"Narrow": n, "Wide": w})[0], a.repeat)
    t_64, ref64 = best(lambda: numpy_float64(n, w), a.repeat)
    t_32, _ = best(lambda: numpy_float32(n, w), a.repeat)
    err = float(np.max(np.abs(out - ref64)))
    print(f"image {w_}x{h_} RGB ({mpx:.0f} Mpx per channel), expression: {EXPR}")
    print(f"{'method':34s} {'seconds':>8s} {'Mpx/s':>8s} {'vs numpy f64':>12s}")
    for name, t in [("msgr-nodes PixelMath (float64)", t_pm), ("plain numpy, float64", t_64),
                    ("plain numpy, float32", t_32)]:
        print(f"{name:34s} {t:8.2f} {mpx / t:8.1f} {t_64 / t:11.2f}x")
    print(f"max |PixelMath - numpy float64| = {err:.2e}")


if __name__ == "__main__":
    main()
