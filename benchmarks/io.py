"""Read and write times of a 6000x4000 RGB float32 image in each format, through Load/Save's readers
and writers and, in the same run, through astropy / tifffile / xisf / imagecodecs called directly.

    python benchmarks/io.py [--size 6000 4000] [--repeat 3]
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).parent))
from _measure import best  # noqa: E402

from msgr_nodes.image import Image  # noqa: E402
from msgr_nodes.io.formats import read_image, write_image  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, nargs=2, default=[6000, 4000])
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    w, h = a.size
    rng = np.random.default_rng(0)
    data = rng.random((3, h, w), dtype=np.float32)
    img = Image(data.copy())
    keep = tempfile.TemporaryDirectory(prefix="msgr-io-")  # removed when main returns
    d = Path(keep.name)
    import imagecodecs
    import tifffile
    from xisf import XISF

    hwc = np.ascontiguousarray(np.moveaxis(data, 0, -1))
    u16 = np.ascontiguousarray(np.moveaxis((data * 65535).astype(np.uint16), 0, -1))
    direct = {
        "fits float32": (lambda p: fits.writeto(p, data, overwrite=True), lambda p: np.array(fits.getdata(p))),
        "xisf float32": (lambda p: XISF.write(str(p), hwc), lambda p: XISF.read(str(p))),
        "tiff float32": (lambda p: tifffile.imwrite(p, hwc, photometric="rgb"), lambda p: tifffile.imread(p)),
        "tiff uint16": (lambda p: tifffile.imwrite(p, u16, photometric="rgb"), lambda p: tifffile.imread(p)),
        "png uint16": (lambda p: Path(p).write_bytes(imagecodecs.png_encode(u16, level=6)),
                       lambda p: imagecodecs.png_decode(Path(p).read_bytes())),
    }
    ours = {"fits float32": (".fits", "float32"), "xisf float32": (".xisf", "float32"),
            "tiff float32": (".tif", "float32"), "tiff uint16": (".tif", "uint16"), "png uint16": (".png", "uint16")}
    print(f"{w}x{h} RGB, best of {a.repeat}")
    print(f"{'format':14s} {'write ours':>10s} {'write lib':>10s} {'read ours':>10s} {'read lib':>10s}")
    for name, (suffix, depth) in ours.items():
        p_ours, p_lib = d / f"ours{suffix}", d / f"lib{suffix}"
        w_ours = best(lambda: write_image(p_ours, img, bit_depth=depth, overwrite=True), a.repeat)[0]
        w_lib = best(lambda: direct[name][0](p_lib), a.repeat)[0]
        r_ours = best(lambda: read_image(p_ours), a.repeat)[0]
        r_lib = best(lambda: direct[name][1](p_lib), a.repeat)[0]
        print(f"{name:14s} {w_ours:10.2f} {w_lib:10.2f} {r_ours:10.2f} {r_lib:10.2f}")


if __name__ == "__main__":
    main()
