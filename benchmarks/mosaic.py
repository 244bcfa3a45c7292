"""Mosaic seams: a 2x2 mosaic of overlapping panels, each with its own gradient, made three ways.

    python benchmarks/mosaic.py [--workdir DIR] [--workers 2]

Four panels (800x600 each, 25 % overlap) are made with make_pairs.py at four offsets of one
field, each with its own gradient and noise (seeds 21-24) on one sky (the stars of seed 20 in
every image; --seed 30 takes 31-34 and 30), plus one wide image of the whole field (a run at the
centre, --wide-fov 3.5). Then:

- uncorrected: the panels coadded as they are (reproject_and_coadd);
- reproject matching: reproject_and_coadd(match_background=True), the offsets it applies;
- MSGR: every panel corrected against the same wide image with msgr_additive.json, run as
  ``msgr_nodes.batch`` with the settings of ``msgr-nodes batch --mosaic`` (``mosaic_settings``:
  one slope b for every panel, the median of their own, and no pedestal of their own), then
  coadded (the panels -> batch -> mosaic recipe). ``-s`` adds settings (gradient_model.layers=6).

Reported: the seam step (median difference of two panels where they overlap, % of sky; the
largest over the overlapping pairs, and their mean) and the mosaic's large-scale residual against
the truth (the coadd of the gradient-free, star-free panels; RMS of 32 px block medians after
removing the median, % of sky).
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pairs import make_pair  # noqa: E402

from msgr_nodes import Graph, batch  # noqa: E402
from msgr_nodes.batchrun import jobs_from_each, mosaic_settings  # noqa: E402
from msgr_nodes.ops.mosaic import coadd  # noqa: E402

SIZE = (800, 600)
SCALE_ARCMIN = 3.5 / 60  # rcw32's narrow scale, arcmin per px
OVERLAP = 0.25


def write_like(path: Path, data: np.ndarray, header_from: Path):
    with fits.open(header_from) as hdul:
        fits.PrimaryHDU(data.astype(np.float32), hdul[0].header).writeto(path, overwrite=True)


def panels(work: Path, seed: int = 20):
    """Four panels (panel0-3.fits, gradients and noise of seeds seed+1 to seed+4) and one wide image,
    all with the stars of ``seed``: (clean panel paths, wide path, sky level in e-).

    make_pairs.py moves its faint stars by up to 0.3 texture px (1.2 narrow px here) with the seed,
    so runs with other seeds put them in other places on the sky, which panels and a wide image of
    one sky never do (a star left in both images would not cancel)."""
    dx = SIZE[0] * SCALE_ARCMIN * (1 - OVERLAP) / 2
    dy = SIZE[1] * SCALE_ARCMIN * (1 - OVERLAP) / 2
    geometry = ["--preset", "rcw32", "--narrow-size", str(SIZE[0]), str(SIZE[1]), "--narrow-rotation", "0"]
    clean = []
    for k, (sx, sy) in enumerate([(-1, -1), (1, -1), (-1, 1), (1, 1)]):
        at = ["--offset", f"{sx * dx:.3f}", f"{sy * dy:.3f}", "--gradient-kind", "complex"]
        own = make_pair(work / f"pair{k}", *geometry, "--seed", str(seed + 1 + k), *at)
        stars = make_pair(work / f"stars{k}", *geometry, "--seed", str(seed), *at)
        assert fits.getheader(own / "narrow.fits")["CRVAL1"] == fits.getheader(stars / "narrow.fits")["CRVAL1"]
        # the panel: the common sky with its stars, plus this panel's own gradient and noise
        observed = fits.getdata(stars / "narrow_clean.fits") + (fits.getdata(own / "narrow.fits") -
                                                                fits.getdata(own / "narrow_clean.fits"))
        write_like(work / f"panel{k}.fits", observed, own / "narrow.fits")
        clean.append(stars / "narrow_clean.fits")
    wide = make_pair(work / "wide", *geometry, "--seed", str(seed), "--wide-fov", "3.5")
    return clean, wide / "wide.fits", json.loads((work / "pair0" / "truth.json").read_text())["narrow"]["sky_e"]


def load(path):
    with fits.open(path) as hdul:
        return hdul[0].data.astype(np.float32)[None] if hdul[0].data.ndim == 2 else hdul[0].data.astype(np.float32), \
            WCS(hdul[0].header, naxis=2)


def seams(parts, sky):
    from reproject import reproject_interp

    steps = []
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            on_i, foot = reproject_interp((parts[j][0][0], parts[j][1]), parts[i][1], shape_out=parts[i][0].shape[1:])
            both = (foot > 0.99) & np.isfinite(on_i)
            if both.sum() > 1000:
                steps.append(abs(float(np.median(parts[i][0][0][both] - on_i[both]))) / sky * 100)
    return max(steps), float(np.mean(steps)), len(steps)


def residual(mosaic, truth, footprint, sky, block=32):
    h, w = (s // block * block for s in mosaic.shape[1:])
    d = np.where(footprint[:h, :w] > 0, mosaic[0, :h, :w] - truth[0, :h, :w], np.nan)
    blocks = np.nanmedian(d.reshape(h // block, block, w // block, block), axis=(1, 3))
    blocks = blocks[np.isfinite(blocks)]
    return float(np.sqrt(np.mean((blocks - np.median(blocks)) ** 2))) / sky * 100


def matched_panels(parts, mosaic_plain, mosaic_matched, wcs_out):
    """The panels as reproject matched them: each is offset by a constant, read where only it covers."""
    from reproject import reproject_interp

    feet = [reproject_interp((np.ones(p[0].shape[1:]), p[1]), wcs_out, shape_out=mosaic_plain.shape[1:])[1] > 0.5
            for p in parts]
    count = np.sum(feet, axis=0)
    out = []
    for k, p in enumerate(parts):
        alone = feet[k] & (count == 1)
        offset = float(np.median(mosaic_plain[0][alone] - mosaic_matched[0][alone]))
        out.append((p[0] - np.float32(offset), p[1]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20, help="the stars' seed; the panels' gradients: seed+1 to seed+4")
    ap.add_argument("-s", "--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                    help="more settings for the MSGR panels (e.g. gradient_model.layers=6)")
    a = ap.parse_args()
    # without --workdir, the 0.2 GB of panels, outputs and cache go when main returns
    keep = None if a.workdir else tempfile.TemporaryDirectory(prefix="msgr-mosaic-")
    work = a.workdir or Path(keep.name)
    work.mkdir(parents=True, exist_ok=True)
    clean_paths, wide, sky_e = panels(work, a.seed)
    sky = sky_e / 65535.0
    raw = [load(work / f"panel{k}.fits") for k in range(4)]
    clean = [(load(p)[0], raw[k][1]) for k, p in enumerate(clean_paths)]
    truth, wcs_out, footprint = coadd(clean)

    graph = Graph.load("msgr_additive")
    graph.set("wide.path", str(wide))
    jobs = jobs_from_each([("narrow.path", str(work / "panel?.fits"))])
    overwrite = [("save.overwrite", "true"), ("save_model.overwrite", "true")]
    extra = [tuple(x.split("=", 1)) for x in a.set]
    # what msgr-nodes batch --mosaic does: a first pass measures each panel's slope, and every panel
    # then gets their median and no pedestal of its own (DetailFit's first results come from the cache)
    settings = mosaic_settings(graph, jobs, workers=a.workers, cache_dir=work / "cache", shared=extra)
    slope = float(dict(settings)["detail_fit.slope"])
    results = batch(graph, jobs, workers=a.workers, cache_dir=work / "cache", shared=overwrite + extra + settings)
    slopes = [b for r in results for b in r.slopes]
    verdicts = {r.job: r.verdict for r in results}
    if any(r.status != "ok" for r in results):
        sys.exit("MSGR failed: " + "; ".join(f"{r.job}: {r.error}" for r in results if r.status != "ok"))
    corrected = [load(work / f"panel{k}_msgr.fits") for k in range(4)]

    plain, _, _ = coadd(raw)
    matched, _, _ = coadd(raw, match_background=True)
    rows = [("uncorrected", raw, plain), ("reproject match_background", matched_panels(raw, plain, matched, wcs_out),
                                          matched), ("MSGR (msgr_additive, one wide image)", corrected, coadd(corrected)[0])]
    print(f"2x2 mosaic of {SIZE[0]}x{SIZE[1]} panels ({100 * OVERLAP:.0f} % overlap, rcw32, complex gradients, "
          f"seeds {a.seed + 1}-{a.seed + 4}, stars of {a.seed}), one wide image; % of sky")
    print("| method | seam step, largest | seam step, mean | residual vs truth |")
    print("| --- | --- | --- | --- |")
    figures = {}
    for name, parts, mosaic in rows:
        worst, mean, n = seams(parts, sky)
        figures[name] = worst
        print(f"| {name} | {worst:.3f} | {mean:.3f} | {residual(mosaic, truth, footprint, sky):.3f} |")
    ratio = figures["reproject match_background"] / max(figures["MSGR (msgr_additive, one wide image)"], 1e-9)
    print(f"overlapping pairs: {n}; panel slopes {', '.join(f'{b:.4f}' for b in slopes)} -> {slope:.4f} for all; "
          f"MSGR verdicts: {verdicts}; reproject's largest seam / MSGR's: {ratio:.1f}x")


if __name__ == "__main__":
    main()
