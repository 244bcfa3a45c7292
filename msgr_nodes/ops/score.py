"""Score a gradient-corrected narrow image against a known truth (the figure the benchmarks report).

resid_rms: RMS of the large-scale residual in % of the sky level: the corrected image and the
truth (sky + nebula, no stars, no gradient) are reduced to 32x32 block medians over star-free
pixels and smoothed; the corrected one is fitted as a x truth + b, and what the fit leaves is the
residual. grad_left: the share of the injected gradient still in the residual, in %.
Arrays: (H, W) float, any scale (the same for all inputs).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

BLOCK = 32


def _block_median(img: np.ndarray, valid: np.ndarray) -> np.ndarray:
    h, w = img.shape[0] // BLOCK * BLOCK, img.shape[1] // BLOCK * BLOCK
    a = np.where(valid[:h, :w], img[:h, :w], np.nan)
    a = a.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(0, 2, 1, 3).reshape(h // BLOCK, w // BLOCK, -1)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(a, axis=2)
    bad = ~np.isfinite(med)
    if bad.any():
        idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
        med = med[tuple(idx)]
    return ndimage.gaussian_filter(med, 1.0, mode="nearest")


def score(image: np.ndarray, nebula: np.ndarray, clean: np.ndarray, gradient: np.ndarray, sky: float) -> dict:
    """{'resid_rms': %, 'grad_left': %} of a corrected image (H, W) against the truth."""
    image = image.astype(np.float64)
    stars = clean - nebula
    star_mask = ndimage.binary_dilation(stars > 0.02 * sky, iterations=3)
    valid = ~star_mask & np.isfinite(image) & (image < 0.98 * np.nanmax(image))
    lo, lt = _block_median(image, valid), _block_median(nebula, valid)
    A = np.stack([lt.ravel(), np.ones(lt.size)], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, lo.ravel(), rcond=None)
    resid = (lo - (a * lt + b)) / a
    resid -= resid.mean()
    lg = _block_median(gradient, valid)
    lg -= lg.mean()
    return {"resid_rms": float(100 * np.sqrt(np.mean(resid ** 2)) / sky),
            "grad_left": float(100 * np.dot(resid.ravel(), lg.ravel()) / np.dot(lg.ravel(), lg.ravel()))}
