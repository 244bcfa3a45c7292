"""Star profiles as blur kernels: a Moffat kernel, and a plane blurred by it."""
from __future__ import annotations

import math

import numpy as np

# Where a Moffat kernel is cut: 1e-4 of its peak, and at most this many FWHMs from its centre.
KERNEL_FLOOR = 1e-4
KERNEL_REACH_FWHM = 8.0
# Rows convolved at once: the FFT of a whole 6000x4000 frame took 1.3 GB more at DetailFit's peak
# (two channels at a time); a strip of 512 rows takes a few tens of MB.
STRIP_ROWS = 512


def moffat_kernel(fwhm: float, beta: float) -> np.ndarray:
    """A normalised Moffat kernel (2R+1, 2R+1) float32, I(r) ~ (1 + r^2 / alpha^2)^-beta, of the given
    FWHM (px) and beta (> 1), cut where it falls under 1e-4 of its peak (at most 8 FWHM out)."""
    if fwhm <= 0 or beta <= 1:
        raise ValueError(f"a Moffat kernel needs fwhm > 0 and beta > 1 (got {fwhm:g}, {beta:g})")
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    reach = alpha * math.sqrt(KERNEL_FLOOR ** (-1.0 / beta) - 1.0)
    r = max(2, int(math.ceil(min(reach, KERNEL_REACH_FWHM * fwhm))))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    k = (1.0 + (xx * xx + yy * yy) / (alpha * alpha)) ** -beta
    return (k / k.sum()).astype(np.float32)


def _reflected(index: np.ndarray, n: int) -> np.ndarray:
    """Indices into an axis of ``n`` samples, mirrored at its ends as numpy's ``reflect`` pad does
    (..., 2, 1, 0, 1, 2, ..., n-2, n-1, n-2, ...), for any distance beyond them."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    i = np.abs(index) % period
    return np.where(i >= n, period - i, i)


def moffat_blur(plane, fwhm: float, beta: float, add_to: np.ndarray | None = None,
                shape: tuple[int, int] | None = None) -> np.ndarray:
    """A plane (H, W) convolved with :func:`moffat_kernel` (borders mirrored), float32; added into
    ``add_to`` (H, W) float32 in place and returned where it is given.

    ``plane`` is an array, or a function that gives its rows (an index array, mirrored at the
    frame's ends) as a float32 (n, W) array, with ``shape`` (H, W): so that a plane computed from
    others (the stars of an image, less its hot pixels) is made a strip at a time, never whole.

    By FFT, a strip of rows at a time: a kernel of 8 FWHM reaches 100-200 px for a soft wide image,
    where a direct convolution would take minutes on a large frame (about 1 s for 6000x4000)."""
    from scipy.signal import fftconvolve

    rows_of = plane if callable(plane) else (lambda rows: np.asarray(plane[rows], np.float32))
    h, w = shape if callable(plane) else plane.shape
    k = moffat_kernel(fwhm, beta)
    r = k.shape[0] // 2
    out = np.zeros((h, w), np.float32) if add_to is None else add_to
    cols = _reflected(np.arange(-r, w + r), w)
    for y0 in range(0, h, STRIP_ROWS):
        y1 = min(y0 + STRIP_ROWS, h)
        block = rows_of(_reflected(np.arange(y0 - r, y1 + r), h))[:, cols]
        out[y0:y1] += fftconvolve(block, k, mode="valid").astype(np.float32, copy=False)
    return out
