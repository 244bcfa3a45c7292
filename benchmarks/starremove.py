"""StarRemove benchmark: star flux left, mean change in star-free regions and time, next to a grey
morphological opening (the baseline), in one run; plus RGB timings at 2000x1500 and 6000x4000.

    python benchmarks/starremove.py [--workdir DIR]

Truth from make_pairs.py: *_nebula.fits (starless) and *_clean.fits (with stars).
"flux left" = sum over star pixels of (result - true starless - gradient) / total star flux;
"star-free change" = mean of (result - input) where the true stars are below 0.1 % of the sky,
in % of the sky level (signed: a fill that darkens the sky shows as negative).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))
from _sky import make_sky  # noqa: E402
from pairs import make_pair  # noqa: E402

from msgr_nodes.ops.stars import remove_stars  # noqa: E402

SCENES = [("rcw32 (dense Milky Way)", ["--preset", "rcw32", "--seed", "1"]),
          ("virgo (galaxies)", ["--preset", "virgo", "--seed", "3", "--ratio", "4"])]


def metrics(out, img, neb, clean, grad, sky):
    stars = clean - neb
    left = (out - neb - grad)[stars > 1e-3 * sky].sum() / stars.sum()
    free = stars < 1e-3 * sky
    return 100 * left, 100 * (out - img)[free].mean() / sky


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "msgr-bench-pairs")
    a = ap.parse_args()
    remove_stars(make_sky(200, 200, 1)[None])  # JIT warm-up
    print(f"{'scene':26s} {'image':6s} {'method':14s} {'flux left %':>11s} {'star-free change % sky':>22s} {'s':>6s}")
    for name, args in SCENES:
        pair = make_pair(a.workdir / f"sr_{args[1]}_{args[3]}", *args)
        truth = json.loads((pair / "truth.json").read_text())
        for img_name in ("narrow", "wide"):
            get = lambda s: fits.getdata(pair / f"{img_name}{s}.fits").astype(np.float32)  # noqa: E731
            img, neb, clean, grad = get(""), get("_nebula"), get("_clean"), get("_gradient")
            sky = truth[img_name]["sky_e"] / 65535.0
            t = time.perf_counter()
            out, _, n = remove_stars(img[None])
            dt = time.perf_counter() - t
            left, change = metrics(out[0], img, neb, clean, grad, sky)
            print(f"{name:26s} {img_name:6s} {'StarRemove':14s} {left:11.2f} {change:22.3f} {dt:6.2f}")
            t = time.perf_counter()
            opened = ndimage.grey_opening(img, size=(9, 9))
            dt = time.perf_counter() - t
            left, change = metrics(opened, img, neb, clean, grad, sky)
            print(f"{name:26s} {img_name:6s} {'opening 9x9':14s} {left:11.2f} {change:22.3f} {dt:6.2f}")
    for h, w in ((1500, 2000), (4000, 6000)):
        rgb = np.stack([make_sky(h, w, s) for s in (1, 2, 3)])
        t = time.perf_counter()
        remove_stars(rgb)
        print(f"RGB {w}x{h}: {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
