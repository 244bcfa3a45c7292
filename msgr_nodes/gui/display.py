"""Display helpers without a GUI import: stretch and downsampling for a texture, histogram, pixel
readout. Pure functions of their arguments, safe from any thread (the editor calls them from the
GUI thread)."""
from __future__ import annotations

import numpy as np

from ..ops.stretch import apply_stf, auto_stf

MAX_SIDE = 1024


def display_rgba(data: np.ndarray, linked: bool = True, stf=None) -> tuple[np.ndarray, int, int, int]:
    """A display texture for linear data (C, H, W): flat float32 RGBA, width, height, and the
    downsampling step used. Rows are flipped so FITS row 0 is drawn at the bottom."""
    step = max(1, int(np.ceil(max(data.shape[1:]) / MAX_SIDE)))
    small = data[:, ::step, ::step]
    shown = apply_stf(small, stf or auto_stf(small, linked))
    rgb = np.repeat(shown, 3, axis=0) if shown.shape[0] == 1 else shown
    h, w = rgb.shape[1:]
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = np.moveaxis(rgb, 0, -1)[::-1]
    return np.ascontiguousarray(rgba).ravel(), w, h, step


def histogram(data: np.ndarray, bins: int = 256) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-channel histograms over [0, 1] (bin centres, log10(1 + counts) per channel)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    sample = data[:, ::4, ::4] if data[0].size > 4_000_000 else data
    return centres, [np.log10(1 + np.histogram(sample[c], edges)[0]) for c in range(data.shape[0])]


def pixel_value(data: np.ndarray, x: float, y: float) -> tuple[int, int, list[float]] | None:
    """The pixel under plot coordinates (x right, y up, FITS order), or None outside the image."""
    col, row = int(np.floor(x)), int(np.floor(y))
    if 0 <= row < data.shape[1] and 0 <= col < data.shape[2]:
        return col, row, [float(data[c, row, col]) for c in range(data.shape[0])]
    return None
