"""Register benchmark: error of the narrow -> wide mapping against the truth (from the pair's WCS,
SIP distortion included) in wide pixels, success and time, for our Register (from the WCS headers,
and by star search without them) and astroalign's plain similarity registration, in one run.

    python benchmarks/register.py [--workdir DIR]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

sys.path.insert(0, str(Path(__file__).parent))
from pairs import make_pair  # noqa: E402

from msgr_nodes.ops import register as R  # noqa: E402

CASES = [
    ("ratio 1.5, rot 2.5", ["--ratio", "1.5", "--wide-fov", "1.4"]),
    ("ratio 3, rot 2.5, barrel", ["--ratio", "3"]),
    ("ratio 6, rot 2.5", ["--ratio", "6", "--wide-fov", "1.6"]),
    ("ratio 3, rot 0", ["--ratio", "3", "--rotation", "0"]),
    ("ratio 3, rot 90", ["--ratio", "3", "--rotation", "90"]),
    ("ratio 3, rot 180", ["--ratio", "3", "--rotation", "180"]),
    ("ratio 3, rot -120", ["--ratio", "3", "--rotation", "-120"]),
    ("ratio 3, pincushion", ["--ratio", "3", "--distortion", "-2"]),
    ("ratio 4, strong barrel", ["--ratio", "4", "--distortion", "4"]),
]


def truth_error(pair, fn):
    nh, wh = fits.getheader(pair / "narrow.fits"), fits.getheader(pair / "wide.fits")
    h, w = nh["NAXIS2"], nh["NAXIS1"]
    gy, gx = np.mgrid[0:h:h // 40, 0:w:w // 50]
    ra, dec = WCS(nh).all_pix2world(gx.ravel(), gy.ravel(), 0)
    u, v = WCS(wh).all_world2pix(ra, dec, 0)
    uu, vv = fn(gx.ravel().astype(float), gy.ravel().astype(float))
    e = np.hypot(uu - u, vv - v)
    return float(np.sqrt(np.mean(e ** 2))), float(e.max())


def astroalign_mapping(n, w):
    import astroalign as aa
    T, _ = aa.find_transform(w, n)  # the plain astroalign registration of wide onto narrow
    inv = np.linalg.inv(T.params)
    return lambda x, y: ((inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]), (inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "msgr-bench-pairs")
    a = ap.parse_args()
    print(f"{'case (2000x1500 narrow)':28s} {'method':22s} {'rms wide px':>11s} {'max wide px':>11s} {'s':>6s}  note")
    ok = {}
    for name, args in CASES:
        pair = make_pair(a.workdir / ("reg_" + "_".join(args).replace("-", "m")), *args, "--seed", "11")
        n = fits.getdata(pair / "narrow.fits").astype(np.float32)
        w = fits.getdata(pair / "wide.fits").astype(np.float32)
        nh, wh = fits.getheader(pair / "narrow.fits"), fits.getheader(pair / "wide.fits")
        for method in ("Register (WCS)", "Register (search)", "astroalign"):
            t = time.perf_counter()
            try:
                if method == "astroalign":
                    fn = astroalign_mapping(n, w)
                    note = "similarity"
                else:
                    reg = R.register(n, w, nh if "WCS" in method else None, wh if "WCS" in method else None)
                    R.coordinate_maps(reg)  # the map a resampling needs, included in the time
                    fn = reg
                    note = f"{reg.stats.get('inliers', '-')} stars"
                dt = time.perf_counter() - t
                rms, peak = truth_error(pair, fn)
                good = rms <= 0.1 and peak <= 0.3
                ok.setdefault(method, []).append(good)
                print(f"{name:28s} {method:22s} {rms:11.3f} {peak:11.3f} {dt:6.2f}  {note}")
            except Exception as exc:
                ok.setdefault(method, []).append(False)
                print(f"{name:28s} {method:22s} {'failed':>11s} {'':>11s} {time.perf_counter() - t:6.2f}  "
                      f"{str(exc)[:60]}")
    for method, flags in ok.items():
        print(f"{method}: {sum(flags)} of {len(flags)} within rms 0.1 / max 0.3 wide px")


if __name__ == "__main__":
    main()
