"""The additive gradient model of MSGR: what the narrow image has at large scales that the
(registered, intensity-matched) wide image has not.

Planes are float32 (H, W) of starless images on the same grid, values nominally in [0, 1].
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .abe import ABEParams, fit_background
from .linear_fit import bandpass, l1_line


@dataclass
class GradientResult:
    model: np.ndarray            # (H, W) additive gradient, median 0
    fitted: np.ndarray           # (H, W) a + b * wide
    info: dict = field(default_factory=dict)


def auto_layers(shape: tuple[int, int]) -> int:
    """MMT layers to remove for a frame: 2^K about a sixteenth of the short side (K = 8 at 4000 px)."""
    return int(min(9, max(3, round(math.log2(max(min(shape), 16) / 16)))))


def _block_medians(plane: np.ndarray, block: int) -> np.ndarray:
    h, w = plane.shape[0] // block * block, plane.shape[1] // block * block
    b = plane[:h, :w].reshape(h // block, block, w // block, block).transpose(0, 2, 1, 3)
    return np.median(b.reshape(h // block, w // block, -1), axis=2)


def _block_mean(plane: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return plane.astype(np.float32, copy=False)
    h, w = plane.shape[0] // f * f, plane.shape[1] // f * f
    return plane[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3), dtype=np.float32)


@dataclass
class Bands:
    """Both images' detail band at a working resolution (2x block means on large frames, where the
    band's 4-32 px lie well above the pixel scale), and which pixels may be fitted."""

    narrow: np.ndarray
    wide: np.ndarray
    ok: np.ndarray

    @classmethod
    def of(cls, narrow: np.ndarray, wide: np.ndarray, detail_sigma: float, reject_high: float = 0.92) -> "Bands":
        f = 2 if min(narrow.shape) >= 1000 and detail_sigma >= 4 else 1
        n, w = _block_mean(narrow, f), _block_mean(wide, f)
        ok = (n > 0) & (n < reject_high) & (w > 0) & (w < reject_high)
        return cls(bandpass(n, detail_sigma / f), bandpass(w, detail_sigma / f), ok)

    def ratio(self, slope: float) -> float:
        """How much of the narrow image's detail the difference narrow - slope x wide keeps."""
        return float(np.std(self.narrow - slope * self.wide)) / max(float(np.std(self.narrow)), 1e-12)


def slopes(narrow: np.ndarray, wide: np.ndarray, bands: Bands, block: int = 32,
           max_samples: int = 500_000) -> dict:
    """The wide -> narrow slope measured on fine detail and on large scales (block medians)."""
    idx = np.flatnonzero(bands.ok.ravel())
    if idx.size > max_samples:
        idx = idx[np.linspace(0, idx.size - 1, max_samples).astype(np.int64)]
    hn, hw = bands.narrow.ravel()[idx], bands.wide.ravel()[idx]
    _, b_detail, _ = l1_line(hw.astype(np.float64), hn.astype(np.float64))
    bn, bw = _block_medians(narrow, block).ravel(), _block_medians(wide, block).ravel()
    _, b_large, _ = l1_line(bw.astype(np.float64), bn.astype(np.float64))
    return {"b_detail": float(b_detail), "b_large": float(b_large)}


def smooth_difference(diff: np.ndarray, method: str, layers: int, smoothing: float) -> np.ndarray:
    """The large scales of a difference image: MMT c_K, or a smoothing thin-plate surface on box medians
    (no mirrored-border bias)."""
    if method == "mmt":
        from .mmt import smooth
        return smooth(diff, layers, "accurate")
    box = max(4, 2 ** max(layers - 3, 2))
    down = max(1, box // 8)  # box medians of 8x8 block means: the same scale, far fewer pixels
    p = ABEParams(box_size=box // down, box_separation=0, downsample=down, tolerance=3.0, min_box_fraction=0.3,
                  deviation=6.0, unbalance=1.0, method="rbf", smoothing=smoothing)
    surf, _ = fit_background(diff, p)
    return surf.evaluate()


def gradient_model(narrow: np.ndarray, wide: np.ndarray, *, layers: int = 0, method: str = "surface",
                   smoothing: float = 0.1, detail_sigma: float = 8.0, slope_tolerance: float = 0.1,
                   detail_threshold: float = 0.5, fallback_threshold: float = 0.7) -> GradientResult:
    """Additive gradient of ``narrow`` relative to ``wide``, with self-checks.

    1. The slope b is measured on shared fine detail (a band-pass; gradients do not bias it) and,
       for comparison, on large scales (block medians, which the gradients do bias).
    2. The wide image explains the narrow one if the difference narrow - (a + b wide) keeps little
       of the narrow's detail (band-pass RMS below ``detail_threshold`` x the narrow's) and b > 0.
       If it does not, the model from the large-scale slope is used (the plain additive model,
       as the recipe's LinearFit on large scales) when the wide image still explains most of the
       detail (ratio at most ``fallback_threshold``), and no model at all otherwise: a reference
       that does not match the target (another processing, another sky) must never be subtracted
       (on a real pair of differently processed photographs, ratio 0.88, the plain model made the
       image worse than leaving it alone).
    Each decision is reported in ``info["check"]``.
    """
    K = layers or auto_layers(narrow.shape)
    # the shared detail lies at larger scales when the wide image is much coarser: try the band at
    # 1, 2 and 4 times detail_sigma and keep the one the wide image explains best
    best = None
    for scale in (1, 2, 4):
        if 4 * detail_sigma * scale > min(narrow.shape) / 4:
            break
        bands = Bands.of(narrow, wide, detail_sigma * scale)
        s = slopes(narrow, wide, bands)
        ratio = bands.ratio(s["b_detail"])  # the band-pass is linear: band(n - b w) = band(n) - b band(w)
        if best is None or ratio < best[0]:
            best = (ratio, bands, s, detail_sigma * scale)
    _, bands, s, sigma_used = best
    b = s["b_detail"]
    info = dict(s, layers=K, method=method, detail_sigma=sigma_used)
    detail_ratio = bands.ratio
    info["detail_ratio"] = detail_ratio(b)
    info["slopes_agree"] = abs(s["b_detail"] - s["b_large"]) <= slope_tolerance * abs(s["b_detail"])
    info["check"] = "passed"
    if not (info["detail_ratio"] <= detail_threshold and b > 0):
        ratio_large = detail_ratio(s["b_large"])
        if min(info["detail_ratio"], ratio_large) > fallback_threshold or s["b_large"] <= 0:
            info.update(check=f"no correction: the wide image does not explain the narrow one's detail "
                              f"(detail ratio {info['detail_ratio']:.2f}); nothing was subtracted",
                        a=0.0, b=0.0)
            zero = np.zeros(narrow.shape, np.float32)
            return GradientResult(zero, zero.copy(), info)
        b = s["b_large"]
        info["check"] = (f"fallback: the wide image explains the narrow one's detail poorly (detail ratio "
                         f"{info['detail_ratio']:.2f} > {detail_threshold}); used the large-scale slope "
                         f"{b:.4f} instead of {s['b_detail']:.4f}")
    a = float(np.median(narrow - b * wide))
    diff = narrow - (a + b * wide)
    model = smooth_difference(diff.astype(np.float32), method, K, smoothing)
    model = model - np.float32(np.median(model))
    info.update({"a": a, "b": b})
    return GradientResult(model.astype(np.float32), (a + b * wide).astype(np.float32), info)
