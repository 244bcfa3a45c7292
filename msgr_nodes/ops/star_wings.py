"""The wings the narrow image's stars get in the difference: chosen where they show, around its brightest stars.

DetailFit takes the difference narrow - b x wide on the narrow image with its stars, brought to the
wide image's resolution: the narrow image's star light is blurred by a kernel that should give its
stars the wide image's profile, so that outside the star masks their wings cancel against the wings
the wide image's star removal left. The kernel's wings were the Moffat beta measured on the wide
image's stars (their median profile), but that profile is the sources' as well as the optics': where
the stars themselves have broad profiles (a nebula photograph's own stars, in both images alike) it
comes out far too low (1.57 for a wide image whose rendered stars have 3.5), the kernel then adds
wings the wide image does not have, and halos of a few % of sky are left around every bright star
(a faint wide image of a dark nebula: 0.29 % of sky, 0.16 with a Gaussian). Here each candidate
kernel is tried on crops around the brightest stars; the measured one is kept unless another leaves
the difference outside the star masks clearly flatter (SWITCH_RATIO), for the crops judge a wrong
measure well but do not rank kernels near the right one (the best-scoring one used always made three
soft wide images worse: 0.13 -> 0.15, 0.12 -> 0.17, 0.23 -> 0.24 % of sky).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.signal import fftconvolve

from .psf import moffat_kernel

# Betas tried beside the Gaussian and the measured one: the range of real optics' wings (1.5: heavy
# scatter; 5: close to a Gaussian).
CANDIDATE_BETAS = (1.5, 2.0, 2.5, 3.5, 5.0)
# The brightest stars tried, one per block of this size (px), the brightest first; fewer than
# MIN_STARS whole in the frame and the caller keeps its own choice.
WING_STARS = 40
WING_BLOCK = 64
MIN_STARS = 5
# The measured beta (or, outside MIN_BETA-MAX_BETA, the Gaussian) is kept unless its score is this
# many times the best candidate's. Where the measure is right the kernels near it score within
# 1-10 % of each other (soft wide images, beta 3.5-3.9 measured: 0.3-1 %; Eta Carinae, 4.6: 10 %);
# a wrong one stands out (the dark nebula's 1.57: 1.8x the Gaussian's score).
SWITCH_RATIO = 1.5
MIN_BETA, MAX_BETA = 1.5, 10.0


def brightest_stars(narrow_stars: np.ndarray, narrow: np.ndarray, count: int = WING_STARS,
                    block: int = WING_BLOCK) -> list[tuple[int, int]]:
    """(row, col) of the brightest star pixel of the ``count`` blocks (``block`` px) whose star light
    (``narrow_stars`` - ``narrow``, both (H, W)) peaks highest; a strip of blocks at a time, so that
    no frame-sized difference is made."""
    h, w = narrow.shape
    hb, wb = h // block, w // block
    if hb == 0 or wb == 0:
        return []
    peak = np.empty((hb, wb), np.float32)
    where = np.empty((hb, wb), np.int64)
    for by in range(hb):
        rows = slice(by * block, (by + 1) * block)
        strip = np.asarray(narrow_stars[rows, :wb * block], np.float32) - narrow[rows, :wb * block]
        tiles = strip.reshape(block, wb, block).transpose(1, 0, 2).reshape(wb, -1)
        peak[by], where[by] = tiles.max(axis=1), tiles.argmax(axis=1)
    out = []
    for i in np.argsort(-peak, axis=None)[:count]:
        by, bx = divmod(int(i), wb)
        if peak[by, bx] <= 0:
            break
        dy, dx = divmod(int(where[by, bx]), block)
        out.append((by * block + dy, bx * block + dx))
    return out


def matching_wings(narrow: np.ndarray, narrow_stars: np.ndarray, fitted: np.ndarray, blur: float,
                   masks: np.ndarray | None, measured_beta: float,
                   star_light=None) -> tuple[float | None, dict]:
    """The Moffat beta (or None: a Gaussian) of the kernel, of FWHM 2.3548 ``blur``, to blur the narrow
    image's stars by: the measured one unless another leaves the difference around the brightest
    stars much flatter; and a record of the scores (``stars``, ``scores``, ``chosen``, ``replaced``).

    Parameters
    ----------
    narrow, narrow_stars : ndarray
        float32 (H, W): the starless narrow image and the same with its stars, values in [0, 1].
    fitted : ndarray
        float32 (H, W): b x the starless wide image (what the difference subtracts).
    blur : float
        The Gaussian sigma (narrow px) that brings the narrow image to the wide one's resolution.
    masks : ndarray or None
        (H, W) bool, both images' star masks: left out of the score (the difference is interpolated
        across them).
    measured_beta : float
        The beta measured on the wide image's stars: kept (or, outside MIN_BETA-MAX_BETA, the
        Gaussian) unless it scores SWITCH_RATIO times the best candidate.
    star_light : callable, optional
        The star light of a crop, ``star_light(narrow_stars_crop, narrow_crop)`` -> (h, w) float32
        (the caller's leaves out hot pixels); default their difference.

    The score of a kernel is the mean absolute difference, outside the masks, within the kernel's
    reach of each star, from the level of the starless difference around it (the median of its outer
    ring), summed over the stars; each crop is the same for every kernel.
    """
    fwhm = 2.3548 * blur
    measured = float(measured_beta) if MIN_BETA <= measured_beta <= MAX_BETA else None  # else the Gaussian
    betas = sorted({*CANDIDATE_BETAS, *([measured] if measured is not None else [])})
    kernels = {beta: moffat_kernel(fwhm, beta) for beta in betas}
    reach = max(k.shape[0] // 2 for k in kernels.values())  # the widest kernel's
    pad = reach + int(math.ceil(4 * blur))
    half = reach  # scored within the kernel's reach of the star
    h, w = narrow.shape
    light = star_light or (lambda s, n: s - n)
    scores = {None: 0.0, **{beta: 0.0 for beta in betas}}
    used = 0
    inner = (slice(pad, pad + 2 * half + 1),) * 2  # the scored square inside each crop
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    outer = np.hypot(yy, xx) >= 0.75 * half  # where the crop's level is taken
    positions = brightest_stars(narrow_stars, narrow)
    for y, x in positions:
        y0, y1, x0, x1 = y - half - pad, y + half + pad + 1, x - half - pad, x + half + pad + 1
        if y0 < 0 or x0 < 0 or y1 > h or x1 > w:
            continue  # whole crops only: a mirrored border would fake wings
        n = np.asarray(narrow[y0:y1, x0:x1], np.float32)
        s = light(np.asarray(narrow_stars[y0:y1, x0:x1], np.float32), n)
        base = ndimage.gaussian_filter(n, blur, mode="reflect") - fitted[y0:y1, x0:x1]
        free = np.ones(outer.shape, bool) if masks is None else ~masks[y0:y1, x0:x1][inner]
        ring = free & outer
        if free.sum() < 0.2 * free.size or ring.sum() < 50:
            continue
        level = float(np.median(base[inner][ring]))
        preds = {None: ndimage.gaussian_filter(s, blur, mode="reflect")}
        for beta, k in kernels.items():
            preds[beta] = fftconvolve(s, k, mode="same")
        for key, pred in preds.items():
            scores[key] += float(np.mean(np.abs((base + pred)[inner][free] - level)))
        used += 1
    name = lambda key: "gaussian" if key is None else f"{key:.3g}"  # noqa: E731
    record = {"stars": used, "scores": {name(k): v / max(used, 1) for k, v in scores.items()}}
    if used < MIN_STARS:
        record["chosen"] = f"{name(measured)} (too few stars to judge)"
        return measured, record
    best = min(scores, key=scores.get)
    if scores[measured] <= SWITCH_RATIO * scores[best]:
        record["chosen"] = name(measured)
        return measured, record
    record["chosen"] = name(best)
    record["replaced"] = name(measured)
    return best, record
