"""PixInsight's automatic screen transfer function (STF) for display.

Arrays: float32 (C, H, W) linear data in; float32 (C, H, W) in [0, 1] out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHADOWS_CLIP = -2.8     # PixInsight's AutoSTF: shadows at median - 2.8 normalised MAD
TARGET_BACKGROUND = 0.25


def mtf(m: float, x):
    """Midtones transfer function: 0 -> 0, m -> 0.5, 1 -> 1."""
    x = np.asarray(x, dtype=np.float32)
    return ((m - 1) * x) / np.maximum((2 * m - 1) * x - m, -1e30) if m not in (0.0, 1.0) else x


@dataclass(frozen=True)
class STF:
    """Per-channel shadows clip c0 and midtones balance m."""

    c0: tuple[float, ...]
    m: tuple[float, ...]


def _stats(plane: np.ndarray, sample: int = 1_000_000) -> tuple[float, float]:
    flat = plane.ravel()
    if flat.size > sample:
        flat = flat[:: flat.size // sample]
    med = float(np.median(flat))
    return med, float(1.4826 * np.median(np.abs(flat - med)))


def auto_stf(data: np.ndarray, linked: bool = True) -> STF:
    """AutoSTF: shadows at median - 2.8 MAD, midtones so that the median lands at 0.25."""
    stats = [_stats(data[c]) for c in range(data.shape[0])]
    if linked:
        med = float(np.mean([s[0] for s in stats]))
        mad = float(np.mean([s[1] for s in stats]))
        stats = [(med, mad)] * data.shape[0]
    c0s, ms = [], []
    for med, mad in stats:
        c0 = min(max(0.0, med + SHADOWS_CLIP * mad), 1.0)
        x0 = (med - c0) / max(1 - c0, 1e-12)
        m = float(mtf(TARGET_BACKGROUND, x0)) if 0 < x0 < 1 else 0.5
        c0s.append(c0)
        ms.append(min(max(m, 1e-6), 1 - 1e-6))
    return STF(tuple(c0s), tuple(ms))


def apply_stf(data: np.ndarray, stf: STF) -> np.ndarray:
    """Stretch linear data (C, H, W) for display with a given STF; result in [0, 1]."""
    out = np.empty(data.shape, np.float32)
    for c in range(data.shape[0]):
        x = np.clip((data[c] - stf.c0[c]) / max(1 - stf.c0[c], 1e-12), 0, 1)
        out[c] = np.clip(mtf(stf.m[c], x), 0, 1)
    return out


def stretch(data: np.ndarray, linked: bool = True) -> np.ndarray:
    """Auto-stretched copy of linear data (C, H, W) for display, values in [0, 1]."""
    return apply_stf(data, auto_stf(data, linked))
