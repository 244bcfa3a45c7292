"""ABE benchmark: model error against the true gradient, ours (degrees 1-4, and rbf) beside a plain
least-squares polynomial on a grid of box medians (the textbook baseline), in one run.

    python benchmarks/abe.py [--workdir DIR] [--size 2000 1500]

For each pair made with make_pairs.py: the RMS of (model - true gradient), constant removed, in
% of the sky level; how much of the nebula the correction removes (the regression of the model's
error on the true nebula, in %: 0 = none, 100 = all of it); and the time per image.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).parent))
from pairs import SCENES, make_pair  # noqa: E402

from msgr_nodes.ops.abe import ABEParams, polynomial_design, fit_background  # noqa: E402


def plain_polynomial(plane, degree, box=10, step=20):
    """The textbook baseline: least squares on the medians of a regular grid of boxes (no rejection)."""
    from msgr_nodes.ops.abe import Surface
    h, w = plane.shape
    ys = np.arange(box // 2, h - box, step)
    xs = np.arange(box // 2, w - box, step)
    med = np.array([[np.median(plane[y:y + box, x:x + box]) for x in xs] for y in ys])
    gy, gx = np.meshgrid(ys + (box - 1) / 2, xs + (box - 1) / 2, indexing="ij")
    A = polynomial_design(gx.ravel(), gy.ravel(), plane.shape, degree)
    coef, *_ = np.linalg.lstsq(A, med.ravel(), rcond=None)
    return Surface("polynomial", plane.shape, coef, degree).evaluate()


def rms_pct(model, grad, sky):
    e = model.astype(np.float64) - grad
    e -= e.mean()
    return 100 * np.sqrt(np.mean(e ** 2)) / sky


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "msgr-bench-pairs")
    ap.add_argument("--size", nargs=2, default=["2000", "1500"])
    a = ap.parse_args()
    print(f"{'scene':22s} {'image':6s} {'method':12s} {'model err % sky':>15s} {'nebula removed %':>16s} {'s':>6s}")
    ratios = []
    for name, args in SCENES:
        pair = make_pair(a.workdir / f"{name}_{a.size[0]}", *args, "--narrow-size", *a.size)
        import json
        truth = json.loads((pair / "truth.json").read_text())
        for img in ("wide", "narrow"):
            data = fits.getdata(pair / f"{img}.fits").astype(np.float32)
            grad = fits.getdata(pair / f"{img}_gradient.fits").astype(np.float64)
            neb = fits.getdata(pair / f"{img}_nebula.fits").astype(np.float64)
            sky = truth[img].get("sky_e", 1000.0) / 65535.0
            rows = {}
            for deg in (1, 2, 3, 4):
                t = time.perf_counter()
                model = plain_polynomial(data, deg)
                rows[f"plain d{deg}"] = (model, time.perf_counter() - t)
                t = time.perf_counter()
                surf, _ = fit_background(data, ABEParams(degree=deg))
                rows[f"ABE d{deg}"] = (surf.evaluate(), time.perf_counter() - t)
            t = time.perf_counter()
            surf, _ = fit_background(data, ABEParams(method="rbf"))
            rows["ABE rbf"] = (surf.evaluate(), time.perf_counter() - t)
            nb = neb - neb.mean()
            for method, (model, dt) in rows.items():
                # nebula removed: how much of the true nebula's shape the model copied (regression of the
                # model's error on the nebula, in %): 0 = none, 100 = the correction takes the nebula away
                excess = model.astype(np.float64) - grad
                removed = 100 * float(np.dot((excess - excess.mean()).ravel(), nb.ravel()) / np.dot(nb.ravel(), nb.ravel()))
                print(f"{name:22s} {img:6s} {method:12s} {rms_pct(model, grad, sky):15.2f} {removed:16.2f} {dt:6.2f}")
            if img == "wide":
                ratios.append(rms_pct(rows["ABE d2"][0], grad, sky) / rms_pct(rows["plain d2"][0], grad, sky))
    print(f"\nwide images, degree 2: ABE / plain polynomial error ratio per scene: "
          f"{', '.join(f'{r:.2f}' for r in ratios)} (max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
