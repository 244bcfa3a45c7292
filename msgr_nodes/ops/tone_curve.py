"""A stretched (non-linear) wide image, found and undone: the tone curve g that makes g(wide) linear
in the narrow image, fitted on detail both images share.

A wide image that was stretched (an asinh or STF stretch, a camera JPEG's gamma) still shares the
narrow image's detail at every scale, so the detail checks pass; but its detail is compressed where
it is bright, and subtracting b x wide leaves that compression, the shape of the nebula, in the
gradient model. The detail band is linear, so band(g(wide)) for g = sum_k c_k z^k (z the wide value
scaled to its 2-98 % range) is sum_k c_k band(z^k): the curve is an ordinary least-squares fit of the
narrow image's band on the bands of the powers of the wide one, with local defects (stars one
image kept and the other lost) clipped, and fitted only where the two images share their detail
(:data:`SHARED_CORRELATION`). It is used only where it explains clearly more of the narrow image's
detail than a straight line does, and is monotonic over the data.

Planes are float32 (H, W) on one working grid, values nominally in [0, 1].
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .linear_fit import bandpass
from .stars import fill_masked

# The curve is used when the detail it leaves is at most this share of what a straight line leaves
# (on the tests' pair: 0.99 for a linear wide image, 0.46-0.55 after an asinh, gamma or STF-like
# stretch, 0.95-1.0 for soft wide images, stars of 3.5-8 wide px FWHM). The noise of both images is
# a floor under both figures, so a bright (strongly graded) sky shrinks the gain: with gradients
# twice as strong the gamma-stretched pair gives 0.79 (the curve then leaves what the linear image
# leaves), hence 0.85 rather than 0.75; the slope change below and the recheck after it tell a
# stretch from the rest.
CURVE_GAIN = 0.85
# ... and its slope changes over the data by at least this factor (a curve that fits noise is
# nearly straight).
MIN_SLOPE_CHANGE = 1.25
# A cubic: a gamma, asinh or screen stretch's inverse over the data is smooth, and a 4th-degree term
# bent the curve where samples are few (its faint end, the sky under a stretch): a gamma-stretched
# M8 was taken out 2.24x steeper from sky to nebula where the truth is 1.34x (0.81 % of sky, with
# the true curve 0.31)
DEGREE = 3
# The curve is fitted where the two images' bands correlate at least this well locally (over 2x the
# band's sigma). Where they share little detail (faint sky: the wide image's noise and both images'
# star fills), a fit of the narrow band on the wide one's is pulled towards a slope of 0 (the
# regressor's noise), which a curve takes for a stretch steepening from the sky up: on M8 the local
# slope of the faintest tenth of the data was 0.54 of the others' where the truth is 0.96.
SHARED_CORRELATION = 0.8
# ... unless fewer than this share of the samples does; then all are fitted
MIN_SHARED = 0.05
CLIP_SIGMA = 4.0
MAX_SAMPLES = 400_000


@dataclass
class ToneCurve:
    """g: wide value -> linear value in the narrow image's units, as a table (``grid`` ascending,
    ``values``) that continues straight beyond the fitted range."""

    grid: np.ndarray
    values: np.ndarray
    ratio_line: float  # detail the straight line leaves (share of the narrow band's RMS)
    ratio_curve: float  # detail the curve leaves
    slope_change: float  # g' at the bright end of the data / at the faint end (2nd and 98th percentiles)
    monotonic: bool
    fitted_range: tuple[float, float]  # those percentiles of the fitted wide samples

    @property
    def needed(self) -> bool:
        """Whether the wide image is to be linearized with this curve."""
        return (self.monotonic and self.ratio_curve <= CURVE_GAIN * self.ratio_line
                and max(self.slope_change, 1 / max(self.slope_change, 1e-12)) >= MIN_SLOPE_CHANGE)

    def apply(self, plane: np.ndarray) -> np.ndarray:
        """g(plane), float32 (H, W); values outside the table continue on its end slopes."""
        x, y = self.grid, self.values
        out = np.interp(plane, x, y)
        lo, hi = plane < x[0], plane > x[-1]
        if lo.any():
            out[lo] = y[0] + (plane[lo] - x[0]) * (y[1] - y[0]) / (x[1] - x[0])
        if hi.any():
            out[hi] = y[-1] + (plane[hi] - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2])
        return out.astype(np.float32)


def shared_detail(band_narrow: np.ndarray, band_wide: np.ndarray, window: float) -> np.ndarray:
    """Where two detail bands (float32 (H, W), one grid) share their detail: their correlation over a
    Gaussian window of sigma ``window`` px is at least :data:`SHARED_CORRELATION`; (H, W) bool."""
    local = functools.partial(ndimage.gaussian_filter, sigma=window, mode="reflect")
    product = local(band_narrow * band_wide)
    product /= np.sqrt(local(band_narrow * band_narrow) * local(band_wide * band_wide)) + np.float32(1e-30)
    return product >= SHARED_CORRELATION


def fit_tone_curve(narrow: np.ndarray, wide: np.ndarray, ok: np.ndarray, sigmas: tuple[float, ...],
                   degree: int = DEGREE, iterations: int = 3) -> ToneCurve:
    """The tone curve g with band(narrow) ~ band(g(wide)) on the given detail bands.

    Parameters
    ----------
    narrow, wide : ndarray
        float32 (H, W) starless planes on one (working) grid, values nominally in [0, 1].
    ok : ndarray
        (H, W) bool, the pixels that may be fitted (no saturation, no known defects); both planes
        are filled from around the rest, and each band leaves out its reach around it.
    sigmas : tuple of float
        Gaussian sigmas (working px) of the detail bands fitted together.
    degree : int
        Degree of the polynomial g.
    iterations : int
        Fits; after each, residuals beyond CLIP_SIGMA robust sigmas (with the band's reach) are
        left out of the next.

    Returns
    -------
    ToneCurve
    """
    lo, hi = (float(v) for v in np.quantile(wide[ok], [0.02, 0.98]))
    span = max(hi - lo, 1e-12)
    if not ok.all():
        # both planes filled from around where they may not be fitted, before the band-passes: a
        # pixel far above the data (a hot pixel the wide image's star removal kept, 2-6 spans above
        # it on IC 434 stretched by asinh) is thousands of spans in the 4th power, and a band-pass
        # carries that beyond the reach left out around it (0.27 % of sky against 0.15 without the
        # hot pixels; 0.13 both, filled). Both, so that what a band carries from a region left out
        # that both images hold (a stretched nebula's bright parts, which the checks before the
        # curve leave out) stays alike in the two.
        narrow, wide = fill_masked(np.stack([narrow, wide]).astype(np.float32, copy=False), ~ok)
    powers = [((wide - lo) / span) ** k for k in range(1, degree + 1)]
    bands = []
    for s in sigmas:
        reach = max(1, int(np.ceil(s)))
        usable = ~ndimage.binary_dilation(~ok, iterations=reach) if not ok.all() else ok
        bn = bandpass(narrow, s)
        bp = [bandpass(p.astype(np.float32), s) for p in powers]
        # band(z) is the wide band scaled: the correlation is the same
        bands.append((reach, usable, bn, bp, shared_detail(bn, bp[0], 2 * s)))
    keep = [usable for _, usable, _, _, _ in bands]
    for _ in range(iterations):
        x, y, fitted = [], [], []
        for (reach, usable, bn, bp, shared), k in zip(bands, keep):
            idx = np.flatnonzero(k.ravel())
            if idx.size > MAX_SAMPLES // len(bands):
                idx = idx[np.linspace(0, idx.size - 1, MAX_SAMPLES // len(bands)).astype(np.int64)]
            x.append(np.stack([b.ravel()[idx] for b in bp], 1))
            y.append(bn.ravel()[idx])
            fitted.append(shared.ravel()[idx])
        x, y = np.concatenate(x).astype(np.float64), np.concatenate(y).astype(np.float64)
        fitted = np.concatenate(fitted)
        if fitted.mean() < MIN_SHARED:
            fitted[:] = True
        coef, *_ = np.linalg.lstsq(x[fitted], y[fitted], rcond=None)
        line = float(np.dot(x[:, 0], y) / max(np.dot(x[:, 0], x[:, 0]), 1e-300))
        spread = max(float(np.std(y)), 1e-300)
        ratio_line, ratio_curve = float(np.std(y - line * x[:, 0])) / spread, float(np.std(y - x @ coef)) / spread
        keep = []
        for reach, usable, bn, bp, _ in bands:
            r = bn - sum(np.float32(c) * b for c, b in zip(coef, bp))
            centre = float(np.median(r[usable]))
            sigma = 1.4826 * float(np.median(np.abs(r[usable] - centre))) + 1e-12
            out = usable & (np.abs(r - centre) > CLIP_SIGMA * sigma)
            keep.append(usable & ~ndimage.binary_dilation(out, iterations=reach) if out.any() else usable)
    # the table spans the data (its 0.1-99.9 %: beyond, a polynomial is no longer held by samples)
    a, b = (float(v) for v in np.quantile(wide[ok], [0.001, 0.999]))
    grid = np.linspace(a, b, 512)
    z = (grid - lo) / span
    values = sum(c * z ** (k + 1) for k, c in enumerate(coef))
    slope = np.gradient(values, grid)
    faint, bright = np.interp([lo, hi], grid, slope)
    return ToneCurve(grid, values, ratio_line, ratio_curve, float(bright / faint) if faint > 0 else np.inf,
                     bool(np.all(slope > 0)), (lo, hi))
