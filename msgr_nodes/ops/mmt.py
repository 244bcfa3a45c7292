"""Multiscale Median Transform (Starck & Murtagh; as in PixInsight's MMT).

For a 2-D channel (H, W) float32: c_0 = image, c_j = median_{k_j}(c_{j-1}) with
window side k_j = 2 s_j + 1 (dyadic s_j = 2^(j-1): 3, 5, 9, 17, ... 513; or
linear s_j = d j), detail layers w_j = c_{j-1} - c_j, residual c_n. Since the
layers telescope, "first K layers disabled, the rest enabled" is exactly c_K,
computed without storing any layer. Borders mirror with the edge repeated
(scipy's ``reflect``).

Methods:

* ``exact``: dense ranks of every layer and Huang's sliding histogram; bit for
  bit equal to chaining ``scipy.ndimage.median_filter(mode="reflect")``.
* ``accurate`` (default): the image is quantised once to fine integer codes
  (up to 20 bits) for the small windows (k <= 17), then the current layer is
  re-quantised over its own range (up to 14 bits) for constant-time
  Perreault-Hebert medians. A median commutes with quantisation, so the only
  error is the two half-bins, chosen so that ``max |accurate - exact| <= 5e-4 x
  background`` (background = the channel's median); the bound reached is
  returned.
* ``pixinsight``: PixInsight's scheme: direct medians up to 11 px, larger
  windows as a 9x9 median on an image downsampled by k/9 (Gaussian anti-alias
  and cubic spline, an approximation of PixInsight's Mitchell-Netravali filter)
  and upsampled back with a cubic spline.
* ``preview``: fast pyramid: 4x block means, windows scaled by 1/4 and bilinear
  upsampling; about 1 % of background error, for interactive tuning.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import ndimage

from .median_kernels import huang_median, ph_median

METHODS = ("exact", "accurate", "pixinsight", "preview")
TOLERANCE = 5e-4          # accurate: max error as a fraction of the background
MAX_FINE_BITS = 20
MAX_PH_BITS = 14
SMALL_RADIUS = 8          # windows up to 17 px use the fine codes


class MMTWarning(UserWarning):
    """The image is smaller than a window: the scale was clamped."""


@dataclass
class MMTInfo:
    """What a run did: error bound (accurate), clamped layers, per-layer window sides."""

    windows: list[int] = field(default_factory=list)
    error_bound: float = 0.0        # absolute, in image units (accurate only)
    background: float = 0.0
    clamped_from: int | None = None  # first layer replaced by the global median


SCALINGS = ("dyadic", "linear")


def radii(n: int, scaling: str = "dyadic", delta: int = 1) -> list[int]:
    """Window radii s_1..s_n (window side 2 s + 1): 1, 2, 4, ... (dyadic) or delta, 2 delta, ... (linear)."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling {scaling!r} is not one of {', '.join(SCALINGS)}")
    if scaling == "dyadic":
        return [2 ** j for j in range(n)]
    return [delta * (j + 1) for j in range(n)]


class _Codes:
    """Integer codes of a float image with a lookup table back to values."""

    def __init__(self, codes: np.ndarray, values: np.ndarray, nbins: int):
        self.codes, self.values, self.nbins = codes, values, nbins

    @classmethod
    def dense_rank(cls, x: np.ndarray) -> "_Codes":
        values, inverse = np.unique(x, return_inverse=True)
        return cls(inverse.reshape(x.shape).astype(np.uint32), values, values.size)

    @classmethod
    def linear(cls, x: np.ndarray, bits: int) -> "_Codes":
        lo, hi = float(x.min()), float(x.max())
        top = (1 << bits) - 1
        span = hi - lo
        if span <= 0:
            return cls(np.zeros(x.shape, np.uint32), np.array([lo], np.float64), 1)
        codes = np.rint((x.astype(np.float64) - lo) * (top / span)).astype(np.uint32)
        values = lo + np.arange(top + 1, dtype=np.float64) * (span / top)
        return cls(codes, values, top + 1)

    def compact(self) -> "_Codes":
        used, inverse = np.unique(self.codes, return_inverse=True)
        return _Codes(inverse.reshape(self.codes.shape).astype(np.uint32), self.values[used], used.size)

    def to_float(self) -> np.ndarray:
        return self.values[self.codes].astype(np.float32)


def _bits_for(span: float, half_bin: float, cap: int) -> int:
    if half_bin <= 0 or span <= 0:
        return cap
    return int(min(cap, max(8, math.ceil(math.log2(span / (2 * half_bin) + 1)))))


def _too_small(shape: tuple[int, int], radius: int) -> bool:
    return 2 * radius + 1 > min(shape)


def parse_layers(text: str, n: int) -> set:
    """'R' (residual only), '1-4' (high-pass), '5-8,R' ... -> {5, 6, 7, 8, 'R'}."""
    out: set = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if part.upper() == "R":
            out.add("R")
        elif "-" in part:
            lo, hi = part.split("-", 1)
            if not (lo.isdigit() and hi.isdigit()) or int(lo) > int(hi):
                raise ValueError(f"{part!r} is not a layer range such as 1-4")
            out |= set(range(int(lo), int(hi) + 1))
        elif part.isdigit():
            out.add(int(part))
        else:
            raise ValueError(f"{part!r} is not a layer number, a range such as 1-4, or R")
    bad = sorted(j for j in out if j != "R" and not 1 <= j <= n)
    if bad:
        raise ValueError(f"layer(s) {bad} do not exist: there are {n} detail layers (1-{n}) and R")
    if not out:
        raise ValueError("no layer is enabled")
    return out


def smooth(channel: np.ndarray, K: int, method: str = "accurate", scaling: str = "dyadic", delta: int = 1,
           shape: str = "square", progress: Callable[[float, str], None] | None = None,
           info: MMTInfo | None = None) -> np.ndarray:
    """c_K of one channel: float32 (H, W) in, float32 (H, W) out (the K-th cascaded median).

    Parameters
    ----------
    channel : ndarray
        float32 (H, W).
    K : int
        The cascade level (structures above about 2^K px remain with dyadic scaling).
    method : str
        One of METHODS: ``exact``, ``accurate`` (bounded error, fast), ``pixinsight``, ``preview``.
    scaling, delta : str, int
        Window radii: ``dyadic`` (1, 2, 4, ...) or ``linear`` (delta, 2 delta, ...), see :func:`radii`.
    shape : str
        Median window: ``square`` or ``circle``.
    progress : callable, optional
        ``progress(fraction, message)``, also a cancel point.
    info : MMTInfo, optional
        Filled with what the run did (window sides, error bound, clamped layers).

    Returns
    -------
    ndarray
        float32 (H, W).
    """
    return _chain(channel, K, method, scaling, delta, shape, progress, info, keep=None)[K]


def layers(channel: np.ndarray, n: int, method: str = "accurate", scaling: str = "dyadic", delta: int = 1,
           shape: str = "square", progress: Callable[[float, str], None] | None = None,
           info: MMTInfo | None = None, enabled: set | None = None) -> np.ndarray:
    """Reconstruction from the enabled layers (1..n, and ``"R"`` for the residual c_n): float32 (H, W).

    Parameters
    ----------
    channel : ndarray
        float32 (H, W).
    n : int
        Number of detail layers.
    method, scaling, delta, shape, progress, info
        As for :func:`smooth`.
    enabled : set, optional
        Layers to keep: integers 1..n and ``"R"`` for the residual; default all.

    Returns
    -------
    ndarray
        float32 (H, W), the sum of the enabled layers.
    """
    enabled = set(range(1, n + 1)) | {"R"} if enabled is None else set(enabled)
    details = sorted(j for j in enabled if j != "R")
    tail = not details or details == list(range(details[0], n + 1))
    if "R" in enabled and tail:  # layers K+1..n and the residual telescope to c_K
        K = details[0] - 1 if details else n
        return smooth(channel, K, method, scaling, delta, shape, progress, info)
    out = np.zeros(channel.shape, np.float64)
    cs = _chain(channel, n, method, scaling, delta, shape, progress, info, keep=set(range(n + 1)))
    for j in details:
        out += cs[j - 1].astype(np.float64) - cs[j]
    if "R" in enabled:
        out += cs[n]
    return out.astype(np.float32)


def _chain(channel, n, method, scaling, delta, shape, progress, info, keep):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    x = np.ascontiguousarray(channel, dtype=np.float32)
    info = info if info is not None else MMTInfo()
    rs = radii(n, scaling, delta)
    info.windows = [2 * r + 1 for r in rs]
    out: dict[int, np.ndarray] = {0: x}
    if n == 0:
        return out
    report = progress or (lambda f, m: None)
    if method == "exact":
        step = _exact_steps(x, rs, shape)
    elif method == "accurate":
        step = _accurate_steps(x, rs, shape, info)
    elif method == "pixinsight":
        step = _pixinsight_steps(x, rs, shape)
    else:
        step = _preview_steps(x, rs, shape)
    for j, (value, clamped) in enumerate(step, start=1):
        if clamped and info.clamped_from is None:
            info.clamped_from = j
            warnings.warn(f"the image ({x.shape[1]}x{x.shape[0]}) is smaller than the {info.windows[j - 1]} px "
                          f"window of layer {j}: layers {j}..{n} use the global median", MMTWarning, stacklevel=3)
        if keep is None and j < n:
            out.pop(j - 1, None)
        # a preview layer is upsampled to full size only when it is needed
        out[j] = value() if callable(value) and (j == n or keep is not None) else value
        report(j / n, f"layer {j} of {n} ({info.windows[j - 1]} px)")
        if j == n:
            break
    return out


def _constant(x: np.ndarray) -> np.ndarray:
    return np.full(x.shape, np.median(x), np.float32)


def _exact_steps(x, rs, shape):
    codes = _Codes.dense_rank(x)
    current = x
    for r in rs:
        if _too_small(x.shape, r):
            current = _constant(current)
            yield current, True
            continue
        codes = _Codes(huang_median(codes.codes, r, codes.nbins, shape), codes.values, codes.nbins).compact()
        current = codes.to_float()
        yield current, False


def _accurate_steps(x, rs, shape, info):
    bg = float(np.median(x))
    span = float(x.max() - x.min())
    floor = 1e-3 * span if span > 0 else 1e-6
    info.background = bg
    tol = TOLERANCE * max(bg, floor)
    fine = _Codes.linear(x, _bits_for(span, tol / 4, MAX_FINE_BITS))
    bound = 0.0 if fine.nbins <= 1 else (fine.values[1] - fine.values[0]) / 2
    current = x
    coarse: _Codes | None = None
    ph_bits = 0
    for r in rs:
        if _too_small(x.shape, r):
            current = _constant(current)
            yield current, True
            continue
        if r <= SMALL_RADIUS:
            fine = _Codes(huang_median(fine.codes, r, fine.nbins, shape), fine.values, fine.nbins)
            current = fine.to_float()
        else:
            if coarse is None:
                cur_span = float(current.max() - current.min())
                ph_bits = _bits_for(cur_span, tol / 2, MAX_PH_BITS)
                coarse = _Codes.linear(current, ph_bits)
                bound += 0.0 if coarse.nbins <= 1 else (coarse.values[1] - coarse.values[0]) / 2
            if coarse.nbins <= 1:
                pass
            elif shape == "square":
                coarse = _Codes(ph_median(coarse.codes, r, ph_bits), coarse.values, coarse.nbins)
            else:
                coarse = _Codes(huang_median(coarse.codes, r, coarse.nbins, shape), coarse.values, coarse.nbins)
            current = coarse.to_float()
        info.error_bound = bound
        yield current, False


def _resize(img: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    zy, zx = shape[0] / img.shape[0], shape[1] / img.shape[1]
    out = ndimage.zoom(img, (zy, zx), order=order, mode="reflect", grid_mode=True, prefilter=order > 1)
    if out.shape != shape:  # zoom can be off by one; crop/pad to the exact target
        out = np.pad(out, [(0, max(0, shape[0] - out.shape[0])), (0, max(0, shape[1] - out.shape[1]))],
                     mode="edge")[: shape[0], : shape[1]]
    return out.astype(np.float32)


def _exact_median(img: np.ndarray, r: int, shape: str) -> np.ndarray:
    codes = _Codes.dense_rank(img)
    return _Codes(huang_median(codes.codes, r, codes.nbins, shape), codes.values, codes.nbins).to_float()


def _pixinsight_steps(x, rs, shape):
    current = x
    for r in rs:
        k = 2 * r + 1
        if k <= 11:
            if _too_small(x.shape, r):
                current = _constant(current)
                yield current, True
                continue
            current = _exact_median(current, r, shape)
        else:
            f = k / 9.0
            small_shape = (max(1, round(x.shape[0] / f)), max(1, round(x.shape[1] / f)))
            if min(small_shape) < 9:
                current = _constant(current)
                yield current, True
                continue
            blurred = ndimage.gaussian_filter(current, 0.5 * f, mode="reflect")
            small = _resize(blurred, small_shape, 3)
            current = _resize(_exact_median(small, 4, shape), x.shape, 3)
        yield current, False


def _block_mean(img: np.ndarray, f: int) -> np.ndarray:
    h, w = img.shape
    ph, pw = (-h) % f, (-w) % f
    p = np.pad(img, ((0, ph), (0, pw)), mode="symmetric")
    return p.reshape(p.shape[0] // f, f, p.shape[1] // f, f).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def block_weights(pixels: np.ndarray, n_in: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation between block centres along one axis (block i covers pixels f i ..
    f i + f - 1, n_in blocks): for full-resolution pixel indices, the two blocks (i0, i1) and the
    weight of i1 (float32 in [0, 1]); beyond the first and last centres the edge block is repeated."""
    pos = np.clip((np.asarray(pixels, dtype=np.float64) - (f - 1) / 2) / f, 0, n_in - 1)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def _upsample_blocks(small: np.ndarray, shape: tuple[int, int], f: int) -> np.ndarray:
    """Bilinear upsampling from block centres (block i covers pixels f i .. f i + f - 1)."""
    i0, i1, wy = block_weights(np.arange(shape[0]), small.shape[0], f)
    rows = small[i0] * (1 - wy)[:, None] + small[i1] * wy[:, None]
    j0, j1, wx = block_weights(np.arange(shape[1]), small.shape[1], f)
    return (rows[:, j0] * (1 - wx)[None, :] + rows[:, j1] * wx[None, :]).astype(np.float32)


def _preview_steps(x, rs, shape, factor: int = 4):
    """Block means of the image, then every window scaled down by the same factor."""
    small = _block_mean(x, factor)
    for r in rs:
        rs_small = round(r / factor)
        if rs_small == 0:  # windows below the block size: nothing to do at this resolution
            current_small = small
        elif _too_small(small.shape, rs_small):
            yield _constant(x), True
            continue
        else:
            codes = _Codes.linear(small, 16)
            small = _Codes(huang_median(codes.codes, rs_small, codes.nbins, shape), codes.values,
                           codes.nbins).to_float()
            current_small = small
        yield (lambda s=current_small: _upsample_blocks(s, x.shape, factor)), False
