"""The additive gradient model of MSGR: what the narrow image has at large scales that the
(registered, intensity-matched) wide image has not.

Planes are float32 (H, W) of starless images on the same grid, values nominally in [0, 1].
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .abe import ABEParams, downsample, fit_background
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


@dataclass
class Bands:
    """Both images' detail band at a working resolution (block means of about sigma/4 px, so the band
    always spans 2-16 working pixels: cheap at every scale), and which pixels may be fitted."""

    narrow: np.ndarray
    wide: np.ndarray
    ok: np.ndarray

    @classmethod
    def of(cls, narrow: np.ndarray, wide: np.ndarray, detail_sigma: float, reject_high: float = 0.92) -> "Bands":
        f = max(1, int(detail_sigma // 4))
        while f > 1 and min(narrow.shape) // f < 64:
            f //= 2
        n, w = downsample(narrow, f), downsample(wide, f)
        ok = (n > 0) & (n < reject_high) & (w > 0) & (w < reject_high)
        return cls(bandpass(n, detail_sigma / f), bandpass(w, detail_sigma / f), ok)

    def ratio(self, slope: float) -> float:
        """How much of the narrow image's detail the difference narrow - slope x wide keeps."""
        return float(np.std(self.narrow - slope * self.wide)) / max(float(np.std(self.narrow)), 1e-12)


def detail_slope(bands: Bands, max_samples: int = 500_000) -> float:
    """The wide -> narrow slope on one detail band (L1 line through the band's samples)."""
    idx = np.flatnonzero(bands.ok.ravel())
    if idx.size > max_samples:
        idx = idx[np.linspace(0, idx.size - 1, max_samples).astype(np.int64)]
    hn, hw = bands.narrow.ravel()[idx], bands.wide.ravel()[idx]
    return float(l1_line(hw.astype(np.float64), hn.astype(np.float64))[1])


def large_scale_slope(narrow: np.ndarray, wide: np.ndarray, block: int = 32) -> float:
    """The slope between the images' block medians (what the recipe's LinearFit on large scales sees)."""
    bn, bw = _block_medians(narrow, block).ravel(), _block_medians(wide, block).ravel()
    return float(l1_line(bw.astype(np.float64), bn.astype(np.float64))[1])


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
                   smoothing: float = 0.1, detail_sigma: float = 8.0, slope_tolerance: float = 0.05,
                   detail_threshold: float = 0.5, fallback_threshold: float = 0.5) -> GradientResult:
    """Additive gradient of ``narrow`` relative to ``wide``, with self-checks.

    1. The slope b is measured on shared detail bands (band-passes; gradients do not bias them) at
       several scales, and for comparison on large scales (block medians, which gradients do bias).
    2. The wide image explains the narrow one at a scale if the difference narrow - b wide keeps
       little of the narrow's detail there (band-pass RMS below ``detail_threshold`` x the narrow's);
       b is trusted where two neighbouring scales do so and agree within ``slope_tolerance``.
       If none do, the model from the large-scale slope is used (the plain additive model,
       as the recipe's LinearFit on large scales) when the wide image still explains most of the
       detail (ratio at most ``fallback_threshold``), and no model at all otherwise: a reference
       that does not match the target (another processing, another sky) must never be subtracted
       (on a real pair of differently processed photographs, ratio 0.88, the plain model made the
       image worse than leaving it alone).
    Each decision is reported in ``info["check"]``.
    """
    K = layers or auto_layers(narrow.shape)
    # The slope is measured on detail bands at several scales. A physical (linear) relation gives the
    # same slope at every scale the wide image resolves; differently processed images (a non-linear
    # stretch) or a wide image too coarse for the band give slopes that drift with scale. The slope
    # is trusted where two neighbouring scales both explain the narrow image's detail (ratio at most
    # detail_threshold) and agree within slope_tolerance.
    scales = []
    for factor in (0.5, 1, 2, 4, 8):
        sigma = detail_sigma * factor
        if 4 * sigma > min(narrow.shape) / 4:
            break
        bands = Bands.of(narrow, wide, sigma)
        b_band = detail_slope(bands)
        scales.append((sigma, bands, b_band, bands.ratio(b_band)))
    if not scales:
        raise ValueError(f"the frame ({narrow.shape[1]}x{narrow.shape[0]}) is too small for detail_sigma "
                         f"{detail_sigma}")
    b_large = large_scale_slope(narrow, wide)
    chosen = None
    for (s1, bands1, b1, r1), (_, _, b2, r2) in zip(scales, scales[1:]):
        if r1 <= detail_threshold and r2 <= detail_threshold and b1 > 0 and \
                abs(b1 - b2) <= slope_tolerance * abs(b2):
            chosen = (s1, bands1, 0.5 * (b1 + b2))
            break
    info = {"layers": K, "method": method, "b_large": b_large, "check": "passed",
            "scales": [{"sigma": sg, "b": bb, "detail_ratio": rr} for sg, _, bb, rr in scales]}
    if chosen is None:
        # no stable scale: judge the plain additive model on the band the wide image explains best
        sigma_used, bands, b_best, best_ratio = min(scales, key=lambda t: t[3])
        ratio_large = bands.ratio(b_large)  # the band-pass is linear: band(n - b w) = band(n) - b band(w)
        info.update(b_detail=b_best, detail_sigma=sigma_used, detail_ratio=best_ratio, large_ratio=ratio_large)
        if ratio_large > fallback_threshold or b_large <= 0:
            info.update(check=f"no correction: the wide image does not explain the narrow one's detail "
                              f"(best detail ratio {best_ratio:.2f}, slopes "
                              f"{', '.join(f'{t[2]:.3g}' for t in scales)} drift with scale); nothing was subtracted",
                        a=0.0, b=0.0)
            zero = np.zeros(narrow.shape, np.float32)
            return GradientResult(zero, zero.copy(), info)
        b = b_large
        info["check"] = (f"fallback: no scale where the wide image explains the narrow one's detail with a "
                         f"stable slope; used the large-scale slope {b:.4f}")
    else:
        sigma_used, bands, b = chosen
        info.update(b_detail=b, detail_sigma=sigma_used, detail_ratio=bands.ratio(b))
    a = float(np.median(narrow - b * wide))
    diff = narrow - (a + b * wide)
    model = smooth_difference(diff.astype(np.float32), method, K, smoothing)
    model = model - np.float32(np.median(model))
    info.update({"a": a, "b": b})
    return GradientResult(model.astype(np.float32), (a + b * wide).astype(np.float32), info)
