"""Star profiles as blur kernels: a Moffat kernel, and a plane blurred by it."""
from __future__ import annotations

import math

import numpy as np

# Where a Moffat kernel is cut: 1e-4 of its peak, and at most this many FWHMs from its centre.
KERNEL_FLOOR = 1e-4
KERNEL_REACH_FWHM = 8.0


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


def moffat_blur(plane: np.ndarray, fwhm: float, beta: float) -> np.ndarray:
    """``plane`` (H, W) float32 convolved with :func:`moffat_kernel` (borders mirrored), float32.

    By FFT: a kernel of 8 FWHM reaches 100-200 px for a soft wide image, where a direct convolution
    would take minutes on a large frame (1 s for 6000x4000)."""
    from scipy.signal import fftconvolve

    k = moffat_kernel(fwhm, beta)
    r = k.shape[0] // 2
    h, w = plane.shape
    pad = min(r, h - 1, w - 1)  # reflect padding needs fewer px than the plane has
    padded = np.pad(np.asarray(plane, np.float32), pad, mode="reflect")
    out = fftconvolve(padded, k, mode="same")
    return np.ascontiguousarray(out[pad:pad + h, pad:pad + w], dtype=np.float32)
