"""The narrow image's background fitted jointly with the wide image's large scales.

Where DetailFit refuses the wide image (its detail does not match the narrow one's: two differently
processed photographs), the wide image still shows the sky's large-scale structure, nebula and
galaxies, even if not in exact proportion. Fitting the narrow image's block means as a polynomial
plus b x the wide image's lets the wide image's term take the nebula, so that the polynomial, the
model subtracted, follows the gradient alone. A polynomial surface fitted to the narrow image by
itself (ABE) has only its box rejection to tell nebula from gradient.
"""
from __future__ import annotations

import numpy as np

from .abe import Surface, blocks_free_of, downsample, polynomial_design, simplest_degree

# The polynomial extrapolates across blocks left out; below this share of the frame with data in
# both images, the joint fit is not tried (the caller keeps ABE's floor). Measured on two real
# pairs with a part of the wide image blanked: a 9 % corner took one from 4.8 to 12.7 % of sky, an
# 8 % strip cost up to 0.26; at 75 % cover (sh2-263/264) the fit left 47-286 %.
JOINT_MIN_COVERAGE = 0.97
JOINT_BLOCKS = 32
HUBER_K = 2.0
HUBER_ITERATIONS = 5


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


def joint_background(narrow: np.ndarray, wide: np.ndarray, exclude: np.ndarray | None = None,
                     degrees: tuple[int, ...] = (1, 2, 3, 4, 5, 6)) -> tuple[np.ndarray, dict] | None:
    """The narrow image's polynomial background, fitted jointly with b x the wide image on block means.

    The degree is chosen by cross-validation over 4 x 4 regions of the frame (each held out in turn,
    robust RMS error), the simplest within 5 % of the best. ``narrow`` and ``wide`` are (H, W) planes
    on the same grid, nominally in [0, 1], both starless; ``exclude`` (H, W) bool marks where either
    has no data. Returns (model, record): the polynomial alone, (H, W) float32, and its degree, b,
    cross-validation errors and block size; or None where the two images share too little of the
    frame (JOINT_MIN_COVERAGE) or the wide image's term is not positive (it does not see the narrow
    image's sky).
    """
    # about 32 blocks across: the two images' mismatch of detail averages out (64 across let the
    # cross-validation see no difference between degrees 1-5 on a real pair), and a degree-6
    # polynomial still has 20 blocks per term
    block = max(8, max(narrow.shape) // JOINT_BLOCKS)
    n_blocks, w_blocks = downsample(narrow, block).astype(np.float64), downsample(wide, block).astype(np.float64)
    valid = blocks_free_of(exclude, narrow.shape, block)
    if valid.mean() < JOINT_MIN_COVERAGE:
        return None
    gy, gx = np.mgrid[0:n_blocks.shape[0], 0:n_blocks.shape[1]]
    ys, xs = (gy[valid] + 0.5) * block - 0.5, (gx[valid] + 0.5) * block - 0.5
    values, wide_values = n_blocks[valid], w_blocks[valid]
    folds = (np.clip(ys / narrow.shape[0] * 4, 0, 3).astype(int) * 4 +
             np.clip(xs / narrow.shape[1] * 4, 0, 3).astype(int))
    cv_error = {}
    for d in degrees:
        design = np.column_stack([polynomial_design(xs, ys, narrow.shape, d), wide_values])
        errors = []
        for f in np.unique(folds):
            train, test = folds != f, folds == f
            if train.sum() < 3 * design.shape[1]:
                continue
            coef = _huber_fit(design[train], values[train])
            errors.append(1.4826 * float(np.median(np.abs(values[test] - design[test] @ coef))))
        if errors:
            cv_error[d] = float(np.mean(errors))
    if not cv_error:
        return None
    degree = simplest_degree(cv_error)
    design = np.column_stack([polynomial_design(xs, ys, narrow.shape, degree), wide_values])
    coef = _huber_fit(design, values)
    b = float(coef[-1])
    record = {"degree": degree, "b": b, "cv_error": cv_error, "block": block}
    if b <= 0:
        return None
    model = Surface("polynomial", narrow.shape, coef[:-1], degree).evaluate()
    return model.astype(np.float32), record
