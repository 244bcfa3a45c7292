"""The narrow image's background fitted jointly with the wide image's large scales.

Where DetailFit refuses the wide image (its detail does not match the narrow one's: two differently
processed photographs), the wide image still shows the sky's large-scale structure, nebula and
galaxies, even if not in exact proportion. Fitting the narrow image's block means as a polynomial
plus b x the wide image's lets the wide image's term take the nebula, so that the polynomial, the
model subtracted, follows the gradient alone. A polynomial surface fitted to the narrow image by
itself (ABE) has only its box rejection to tell nebula from gradient. Two photographs stretched
differently are related by a tone curve, not a line: where a cubic in the wide image's values
explains the narrow image's blocks clearly better than the line (a galaxy field, whose bright cores
one image compresses more), the wide image's term is that cubic.
"""
from __future__ import annotations

import numpy as np

from .abe import Surface, blocks_free_of, clean_block_means, downsample, polynomial_design, simplest_degree

# The polynomial extrapolates across blocks left out; below this share of the frame with data in
# both images, the joint fit is not tried (the caller keeps ABE's floor). Measured on two real
# pairs with a part of the wide image blanked: a 9 % corner took one from 4.8 to 12.7 % of sky, an
# 8 % strip cost up to 0.26; at 75 % cover (sh2-263/264) the fit left 47-286 %.
JOINT_MIN_COVERAGE = 0.97
JOINT_BLOCKS = 32
# A block mostly covered by local defects (at least this share) is left out of the fit; elsewhere
# its mean is that of its pixels outside them.
MAX_DEFECT_BLOCK_SHARE = 0.75
HUBER_K = 2.0
HUBER_ITERATIONS = 5
# The wide image's term is a cubic tone curve of its block means only where the cubic cuts the
# cross-validated error by at least this share. Measured on the real pairs: on a galaxy field
# (n1365/Fornax, three gradients) the cubic cut it by 49-68 % and the residual 1.31 -> 0.59, 3.17 ->
# 2.06 and 2.07 -> 0.68 % of sky; on photographs full of nebula (m4/rho Oph) by 7-10 %, fitting
# nebula the two images show differently, and it cost the gradient there (4.17 -> 4.88, 5.00 -> 7.13).
CUBIC_MIN_GAIN = 0.25


def defect_free_means(narrow: np.ndarray, wide: np.ndarray, defects: np.ndarray | None,
                      block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block means (``block`` px) of both planes (H, W) over the pixels outside ``defects`` (H, W)
    bool, or plain block means without any: ((h, w) float32, (h, w) float32, (h, w) bool, the blocks
    less than MAX_DEFECT_BLOCK_SHARE covered by defects)."""
    if defects is None or not defects.any():
        n = downsample(narrow, block)
        return n, downsample(wide, block), np.ones(n.shape, bool)
    n, share = clean_block_means(narrow, defects, block)
    w, _ = clean_block_means(wide, defects, block)
    return n, w, share > 1.0 - MAX_DEFECT_BLOCK_SHARE


def _huber_fit(design: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Least squares with Huber weights (HUBER_K robust sigmas), iterated: a minority of blocks
    that neither image explains (a star halo left, a processing artefact) does not pull the fit."""
    weight = np.ones(values.size)
    coef = np.zeros(design.shape[1])
    for _ in range(HUBER_ITERATIONS):
        coef, *_ = np.linalg.lstsq(design * weight[:, None], values * weight, rcond=None)
        residual = values - design @ coef
        sigma = 1.4826 * float(np.median(np.abs(residual))) + 1e-12
        weight = 1.0 / np.maximum(1.0, np.abs(residual) / (HUBER_K * sigma))
    return coef


def _wide_terms(values: np.ndarray, power: int) -> tuple[np.ndarray, float]:
    """The wide image's block means (N,) as design columns: its standardized values to the powers
    1..``power`` (N, power), and the standard deviation they were divided by."""
    scale = float(np.std(values)) + 1e-12
    z = (values - np.median(values)) / scale
    return np.column_stack([z ** k for k in range(1, power + 1)]), scale


def _cv_errors(xs, ys, shape, values, wide_terms, folds, degrees) -> dict[int, float]:
    """Cross-validated robust RMS error of polynomial (each of ``degrees``) + the wide image's
    ``wide_terms``, each of the ``folds`` held out in turn: {degree: error}."""
    cv_error = {}
    for d in degrees:
        design = np.column_stack([polynomial_design(xs, ys, shape, d), wide_terms])
        errors = []
        for f in np.unique(folds):
            train, test = folds != f, folds == f
            if train.sum() < 3 * design.shape[1]:
                continue
            coef = _huber_fit(design[train], values[train])
            errors.append(1.4826 * float(np.median(np.abs(values[test] - design[test] @ coef))))
        if errors:
            cv_error[d] = float(np.mean(errors))
    return cv_error


def _increasing(coef: np.ndarray, terms: np.ndarray) -> bool:
    """Whether the wide image's term (coefficients ``coef`` of ``terms``' powers 1..n) rises over the
    range of its standardized values: the same sky is brighter in both images."""
    z = np.linspace(terms[:, 0].min(), terms[:, 0].max(), 256)
    slope = sum((k + 1) * c * z ** k for k, c in enumerate(coef))
    return bool(np.all(slope > 0))


def joint_background(narrow: np.ndarray, wide: np.ndarray, exclude: np.ndarray | None = None,
                     degrees: tuple[int, ...] = (1, 2, 3, 4, 5, 6),
                     defects: np.ndarray | None = None) -> tuple[np.ndarray, dict] | None:
    """The narrow image's polynomial background, fitted jointly with b x the wide image on block means.

    The degree is chosen by cross-validation over 4 x 4 regions of the frame (each held out in turn,
    robust RMS error), the simplest within 5 % of the best. ``narrow`` and ``wide`` are (H, W) planes
    on the same grid, nominally in [0, 1], both starless; ``exclude`` (H, W) bool marks where either
    has no data; ``defects`` (H, W) bool, pixels to leave out (a saturated patch and its halo):
    block means are taken over the pixels outside them, and blocks mostly covered by them are left
    out of the fit (not counted as uncovered, for the polynomial does not extrapolate there). The
    wide image's term is b x its block means, or a cubic in them where that cuts the
    cross-validated error by CUBIC_MIN_GAIN. Returns (model, record): the polynomial alone, (H, W)
    float32, and its degree, b (the term's slope at the wide image's median), tone ("linear" or
    "cubic"), cross-validation errors and block size; or None where the two images share too little
    of the frame (JOINT_MIN_COVERAGE) or the wide image's term does not rise with it (it does not see
    the narrow image's sky).
    """
    # about 32 blocks across: the two images' mismatch of detail averages out (64 across let the
    # cross-validation see no difference between degrees 1-5 on a real pair), and a degree-6
    # polynomial still has 20 blocks per term
    block = max(8, max(narrow.shape) // JOINT_BLOCKS)
    valid = blocks_free_of(exclude, narrow.shape, block)
    if valid.mean() < JOINT_MIN_COVERAGE:
        return None
    n_blocks, w_blocks, clean = defect_free_means(narrow, wide, defects, block)
    valid &= clean
    n_blocks, w_blocks = n_blocks.astype(np.float64), w_blocks.astype(np.float64)
    gy, gx = np.mgrid[0:n_blocks.shape[0], 0:n_blocks.shape[1]]
    ys, xs = (gy[valid] + 0.5) * block - 0.5, (gx[valid] + 0.5) * block - 0.5
    values = n_blocks[valid]
    folds = (np.clip(ys / narrow.shape[0] * 4, 0, 3).astype(int) * 4 +
             np.clip(xs / narrow.shape[1] * 4, 0, 3).astype(int))
    fits = {}  # power of the wide image's term: (its columns, scale, cross-validated errors)
    for power in (1, 3):
        terms, scale = _wide_terms(w_blocks[valid], power)
        cv_error = _cv_errors(xs, ys, narrow.shape, values, terms, folds, degrees)
        if cv_error:
            fits[power] = (terms, scale, cv_error)
    if 1 not in fits:
        return None
    best = {power: min(f[2].values()) for power, f in fits.items()}
    # the cubic where it earns its two terms and rises with the wide image; else the line
    order = (3, 1) if 3 in fits and best[3] <= (1 - CUBIC_MIN_GAIN) * best[1] else (1,)
    for power in order:
        terms, scale, cv_error = fits[power]
        degree = simplest_degree(cv_error)
        design = np.column_stack([polynomial_design(xs, ys, narrow.shape, degree), terms])
        coef = _huber_fit(design, values)
        n_poly = design.shape[1] - terms.shape[1]
        if _increasing(coef[n_poly:], terms):
            break
    else:
        return None
    # b: the wide image's term's slope at its median, in the images' units
    record = {"degree": degree, "b": float(coef[n_poly]) / scale, "tone": "cubic" if power == 3 else "linear",
              "cv_error": cv_error, "cv_best": best, "block": block}
    model = Surface("polynomial", narrow.shape, coef[:n_poly], degree).evaluate()
    return model.astype(np.float32), record
