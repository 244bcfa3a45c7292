"""A wide lens's falloff, measured on the stars both images hold.

A lens without flats dims the wide image towards its corners, stars and sky alike; the narrow
image's stars are not dimmed that way. So the ratio of a star's flux in the wide image to its flux
in the narrow one falls with the star's distance from the wide frame's centre as 1 - k r^2 (r in
half-diagonals of the wide frame). A nebula does not change that ratio (the flux is measured above
the local background), which is what ABE's sample boxes cannot tell apart from a lens: a bright
nebula in the frame's middle. Measured on the held-out benchmark's pairs: k 0.33-0.36 through a
lens of -35 % (true 0.35), -0.05 to 0.04 without one.

Planes are float32 (H, W), values nominally in [0, 1]; positions are 0-based (x, y) pixels.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import sep

from ..errors import MsgrError
from .abe import FALLOFF_MIN, ABEParams, BoxSamples, Surface, fit_samples, radius2

# Fewest matched, unsaturated stars with a clear flux in both images for a measurement
MIN_STARS = 30
# Stars whose peak reaches this in either image are left out (saturated cores keep no flux ratio)
MAX_PEAK = 0.8
# Fluxes below this many of their errors are left out
MIN_SNR = 10.0
CLIP_SIGMA = 3.0
# The stars confirm the falloff ABE's boxes prefer when theirs is at least this share of it, 3 of
# its errors above 0 (lens-free pairs: -0.05 to 0.04, the largest 2.5 errors; -35 % lenses: 0.33-0.36
# against ABE's 0.35-0.37)
CONFIRM_SHARE = 0.5
CONFIRM_SIGMA = 3.0
# Where ABE's boxes keep no falloff (a nebula over most of the wide frame hides a lens from them),
# the stars alone are trusted for a falloff of at least ABE's FALLOFF_MIN at the corners, this many of
# its errors above 0, known to ALONE_MAX_ERROR (the flat made of it is that far off at the corners).
# Measured on the quality and held-out benchmarks' pairs (83 with enough stars): -35 % lenses
# 0.33-0.37 +- 0.010-0.031 (11-36 errors); lens-free wide images -0.43 to 0.09 (at most 4.3 errors,
# a single frame); a stretched wide image, whose stars' fluxes the stretch compresses, 0.26-1.03
# but +- 0.08-0.28 (2.3-3.7 errors)
ALONE_SIGMA = 5.0
ALONE_MAX_ERROR = 0.05


def _aperture_flux(plane: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Flux and its error in circles of ``radius`` px, above the median of an annulus 2-3 radii out."""
    # SEP reads float32 as it is (a float64 copy of a 24 Mpx frame weighed on the peak memory), but
    # needs a writable C-ordered buffer: the pipeline's images are read-only, so those are copied
    data = np.require(plane, np.float32 if plane.dtype != np.float64 else np.float64, ["C_CONTIGUOUS", "WRITEABLE"])
    flux, error, _ = sep.sum_circle(data, x, y, radius, bkgann=(2 * radius, 3 * radius))
    return flux, error


def _value_at(plane: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """The plane's values at the pixels nearest the (n, 2) positions (x, y), clipped to the frame."""
    rows = np.clip(np.round(xy[:, 1]).astype(int), 0, plane.shape[0] - 1)
    columns = np.clip(np.round(xy[:, 0]).astype(int), 0, plane.shape[1] - 1)
    return plane[rows, columns]


def star_falloff(narrow: np.ndarray, wide: np.ndarray, narrow_xy: np.ndarray, wide_xy: np.ndarray,
                 wide_size: np.ndarray, scale: float) -> dict | None:
    """The wide lens's radial falloff k from matched stars' flux ratios, wide / narrow = c (1 - k r^2).

    Parameters
    ----------
    narrow, wide : ndarray
        float32 (H, W) and (h, w) planes with their stars (the wide one on its own grid).
    narrow_xy, wide_xy : ndarray
        (n, 2) positions of the same n stars in each image.
    wide_size : ndarray
        (n,) the stars' size in the wide image, sqrt(a b) of their detection (px; about FWHM / 2.35).
    scale : float
        Wide px per narrow px.

    Returns
    -------
    dict or None
        ``k``, its standard ``error`` and the number of ``stars`` used; None with fewer than
        MIN_STARS usable stars.
    """
    if len(wide_xy) < MIN_STARS:
        return None
    # a small aperture (0.85 FWHM in the wide image, the same sky in the narrow one): the flux ratio
    # of a uniform star profile does not depend on the aperture, and a wider annulus takes in the
    # nebula around the star (3 FWHM: biased by up to 0.19 in k on IC 443)
    radius = max(1.5, 2.0 * float(np.median(wide_size)))
    fw, ew = _aperture_flux(wide, wide_xy[:, 0], wide_xy[:, 1], radius)
    fn, en = _aperture_flux(narrow, narrow_xy[:, 0], narrow_xy[:, 1], radius / scale)
    ok = ((fw > MIN_SNR * ew) & (fn > MIN_SNR * en) & (_value_at(wide, wide_xy) < MAX_PEAK)
          & (_value_at(narrow, narrow_xy) < MAX_PEAK))
    if ok.sum() < MIN_STARS:
        return None
    # r^2 as ABE's falloff has it, so that the two k compare
    r2 = sum(radius2(wide_xy[ok, 0], wide_xy[ok, 1], wide.shape))
    ratio = fw[ok] / fn[ok]
    design = np.stack([np.ones_like(r2), r2], 1)
    keep = np.ones(r2.size, bool)
    for _ in range(5):  # a robust line: neighbours in an aperture, variable stars, mismatches
        coef, *_ = np.linalg.lstsq(design[keep], ratio[keep], rcond=None)
        residual = ratio - design @ coef
        sigma = 1.4826 * float(np.median(np.abs(residual[keep]))) + 1e-12
        new_keep = np.abs(residual) < CLIP_SIGMA * sigma
        if new_keep.sum() < MIN_STARS or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    a = design[keep]
    covariance = np.linalg.pinv(a.T @ a) * sigma ** 2
    if coef[0] <= 0:
        return None
    return {"k": float(-coef[1] / coef[0]), "error": float(math.sqrt(max(covariance[1, 1], 0.0)) / coef[0]),
            "stars": int(keep.sum())}


def confirms_falloff(stars: dict | None, k: float) -> bool:
    """Whether the stars' falloff (:func:`star_falloff`'s dict) confirms a falloff ``k`` fitted on the
    sky: at least CONFIRM_SHARE of it, and CONFIRM_SIGMA of its errors above 0."""
    if not stars or k <= 0:
        return False
    return stars["k"] >= CONFIRM_SHARE * k and stars["k"] >= CONFIRM_SIGMA * stars["error"]


def measures_falloff(stars: dict | None) -> bool:
    """Whether the stars' falloff (:func:`star_falloff`'s dict) is a lens's on its own: at least
    FALLOFF_MIN at the corners, ALONE_SIGMA of its errors above 0 and known to ALONE_MAX_ERROR."""
    return (bool(stars) and stars["k"] >= FALLOFF_MIN and stars["k"] >= ALONE_SIGMA * stars["error"]
            and stars["error"] <= ALONE_MAX_ERROR)


def flat_sky_surface(samples: BoxSamples, p: ABEParams, shape: tuple[int, int], k: float) -> Surface | None:
    """ABE's fit on its sample boxes (taken on an (h, w) ``shape`` frame) divided by a lens's falloff
    ``k`` (a flat made of 1 - k r^2): the sky as flats would have left it, a polynomial; None where
    the boxes no longer allow a fit with ``p``."""
    flat = BoxSamples(samples.x, samples.y, samples.value / lens_flat(shape, k).at(samples.x, samples.y),
                      samples.kept)
    try:
        surface, _ = fit_samples(flat, shape, replace(p, vignetting=False))
    except MsgrError:
        return None
    return surface if surface.kind == "polynomial" else None


def lens_flat(shape: tuple[int, int], k: float) -> Surface:
    """What a flat of a lens with falloff ``k`` would hold on an (h, w) ``shape`` frame: 1 - k r^2 (r in
    half-diagonals from its centre), 1 at the centre, as a Surface (``at`` for points, ``evaluate``
    for the frame)."""
    return Surface("polynomial", shape, np.ones(1), 0, falloff=k)


def falloff_surface(samples: BoxSamples, p: ABEParams, shape: tuple[int, int]) -> Surface | None:
    """ABE's fit on its sample boxes (taken on an (h, w) ``shape`` frame) made again with a lens's
    radial falloff (``vignetting`` on): a polynomial times (1 - k r^2), k in its ``falloff``; None
    where its held-out test keeps none that way, or the boxes no longer allow a fit."""
    try:
        surface, stats = fit_samples(samples, shape, replace(p, vignetting=True))
    except MsgrError:
        return None
    return surface if stats.get("falloff") else None
