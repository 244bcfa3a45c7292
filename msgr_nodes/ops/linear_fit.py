"""LinearFit: the L1 (least absolute deviation) line reference ~ a + b * target, per channel.

As PixInsight's LinearFit: a pixel is used only if both samples lie strictly
inside (reject_low, reject_high); the fitted target is a + b * target.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import MsgrError


@dataclass(frozen=True)
class Fit:
    """One channel's fit: reference ~ a + b * target."""

    a: float
    b: float
    adev: float          # mean absolute residual
    used: float          # fraction of pixels that passed the rejection
    samples: int         # samples the fit used (after subsampling)


def _a_of(b: float, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.median(y - b * x))


def _slope_sign(b: float, x: np.ndarray, y: np.ndarray) -> float:
    a = _a_of(b, x, y)
    return float(np.sum(x * np.sign(y - a - b * x)))


def l1_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Minimise sum |y - a - b x|; returns (a, b, mean absolute deviation).

    For a fixed b the best a is median(y - b x); g(b) = sum x sign(y - a(b) - b x)
    is non-increasing in b, so b is found by bracketing from the least-squares
    slope and bisecting (the classical "medfit" approach).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n = x.size
    xm, ym = x.mean(), y.mean()
    sxx = np.sum((x - xm) ** 2)
    if sxx <= 0:
        raise MsgrError("the target has no contrast among the fitted samples (constant image?)")
    b_ls = np.sum((x - xm) * (y - ym)) / sxx
    a_ls = ym - b_ls * xm
    chisq = np.sum((y - a_ls - b_ls * x) ** 2)
    sigb = np.sqrt(chisq / sxx / max(n - 2, 1)) if n > 2 else abs(b_ls) * 0.1 + 1e-12
    step = 3.0 * max(sigb, 1e-9 * max(abs(b_ls), 1.0))
    b1 = b_ls
    f1 = _slope_sign(b1, x, y)
    b2 = b1 + (step if f1 > 0 else -step)
    f2 = _slope_sign(b2, x, y)
    tries = 0
    while f1 * f2 > 0:
        step *= 1.6
        b1, f1 = b2, f2
        b2 = b1 + (step if f1 > 0 else -step)
        f2 = _slope_sign(b2, x, y)
        tries += 1
        if tries > 200 or not np.isfinite(b2):
            raise MsgrError("the L1 line fit did not converge (no usable relation between the images)")
    lo, hi = (b1, b2) if b1 < b2 else (b2, b1)
    flo = _slope_sign(lo, x, y)
    for _ in range(100):
        if hi - lo <= 1e-7 * max(abs(hi), 1e-12):
            break
        mid = 0.5 * (lo + hi)
        fm = _slope_sign(mid, x, y)
        if fm == 0:
            lo = hi = mid
            break
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
    b = 0.5 * (lo + hi)
    a = _a_of(b, x, y)
    return a, b, float(np.mean(np.abs(y - a - b * x)))


def bandpass(plane: np.ndarray, sigma: float) -> np.ndarray:
    """Fine detail both images share: a Gaussian blur of sigma/2 minus one of 4 sigma (H, W).

    The low cut removes noise and the wide image's lower resolution, the high cut the gradients;
    a slope measured on this band is not biased by either (on pairs with a known slope of 1.25
    it measures 1.249-1.254)."""
    return (ndimage.gaussian_filter(plane, sigma / 2, mode="reflect") -
            ndimage.gaussian_filter(plane, 4 * sigma, mode="reflect"))


def _subsample(idx: np.ndarray, max_samples: int) -> np.ndarray:
    """A deterministic, evenly spread subsample of sample indices."""
    if idx.size <= max_samples:
        return idx
    step = idx.size / max_samples
    return idx[(np.arange(max_samples) * step).astype(np.int64)]


def linear_fit(reference: np.ndarray, target: np.ndarray, reject_low: float = 0.0, reject_high: float = 0.92,
               max_samples: int = 1_000_000, mask: np.ndarray | None = None, detail_sigma: float = 0.0) -> list[Fit]:
    """Fit reference ~ a + b * target for each channel.

    reference, target: float32 (C, H, W) of equal shape, values in [0, 1].
    mask: optional (H, W), non-zero = pixel may be used.
    detail_sigma > 0 measures the slope b on fine detail only (:func:`bandpass`),
    which large-scale gradients do not bias; the offset a is then the median of
    reference - b * target.

    Parameters
    ----------
    reference, target : ndarray
        float32 (C, H, W) of equal shape, values in [0, 1].
    reject_low, reject_high : float
        Pixels of either image outside (reject_low, reject_high) are left out (PixInsight's
        rejectLow/rejectHigh).
    max_samples : int
        At most this many pixels per channel enter the fit (an even subsample beyond).
    mask : ndarray, optional
        (H, W), non-zero = pixel may be used.
    detail_sigma : float
        > 0 measures the slope b on fine detail only (:func:`bandpass`, this Gaussian sigma in px),
        which large-scale gradients do not bias; the offset a is then the median of
        reference - b * target.

    Returns
    -------
    list of Fit
        One per channel: a, b and the fit's statistics.
    """
    if reference.shape != target.shape:
        raise MsgrError(f"reference is {_desc(reference)} but target is {_desc(target)}: LinearFit needs images "
                        f"of the same size and colour (register the target first)")
    fits = []
    for c in range(reference.shape[0]):
        y_full = reference[c]
        x_full = target[c]
        ok = (x_full > reject_low) & (x_full < reject_high) & (y_full > reject_low) & (y_full < reject_high)
        if mask is not None:
            ok &= mask != 0
        idx = _subsample(np.flatnonzero(ok.ravel()), max_samples)
        if idx.size < 3:
            raise MsgrError(f"insufficient data in channel {c}: {idx.size} pixel(s) lie inside "
                            f"({reject_low}, {reject_high}) in both images; widen reject_low/reject_high")
        x = x_full.ravel()[idx].astype(np.float64)
        y = y_full.ravel()[idx].astype(np.float64)
        if detail_sigma > 0:
            xd = bandpass(x_full, detail_sigma).ravel()[idx]
            yd = bandpass(y_full, detail_sigma).ravel()[idx]
            _, b, _ = l1_line(xd.astype(np.float64), yd.astype(np.float64))
            a = _a_of(b, x, y)
            adev = float(np.mean(np.abs(y - a - b * x)))
        else:
            a, b, adev = l1_line(x, y)
        if not np.isfinite(b):
            raise MsgrError(f"channel {c}: the fitted slope is not finite")
        fits.append(Fit(a, b, adev, float(ok.mean()), int(idx.size)))
    return fits


def apply_fit(target: np.ndarray, fits: list[Fit], truncate: bool = True) -> np.ndarray:
    """a + b * target per channel (float32 (C, H, W)), clamped to [0, 1] when ``truncate``."""
    out = np.empty_like(target, dtype=np.float32)
    for c, f in enumerate(fits):
        np.multiply(target[c], np.float32(f.b), out=out[c])
        out[c] += np.float32(f.a)
    if truncate:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def _desc(a: np.ndarray) -> str:
    return f"{a.shape[2]}x{a.shape[1]} {'RGB' if a.shape[0] == 3 else 'mono'}"
