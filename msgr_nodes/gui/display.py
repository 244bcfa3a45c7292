"""Display helpers without a GUI import: stretch and downsampling for a texture, histogram, pixel
readout. Pure functions of their arguments, safe from any thread (the editor calls them from the
GUI thread)."""
from __future__ import annotations

import numpy as np

from ..ops.stretch import apply_stf, auto_stf

MAX_SIDE = 1024


def _rgba(shown: np.ndarray) -> np.ndarray:
    """Stretched (C, h, w) in [0, 1] -> (h, w, 4) RGBA, rows flipped so FITS row 0 is at the bottom."""
    rgb = np.repeat(shown, 3, axis=0) if shown.shape[0] == 1 else shown
    rgba = np.ones(rgb.shape[1:] + (4,), np.float32)
    rgba[..., :3] = np.moveaxis(rgb, 0, -1)[::-1]
    return rgba


def screen_stf(data: np.ndarray, linked: bool = True):
    """The auto-stretch of linear data (C, H, W), measured on at most MAX_SIDE px a side."""
    step = max(1, int(np.ceil(max(data.shape[1:]) / MAX_SIDE)))
    return auto_stf(data[:, ::step, ::step], linked)


def display_rgba(data: np.ndarray, linked: bool = True, stf=None,
                 max_side: int = MAX_SIDE) -> tuple[np.ndarray, int, int, int]:
    """A display texture for linear data (C, H, W): flat float32 RGBA, width, height, and the
    downsampling step used (at most ``max_side`` px a side). Rows are flipped so FITS row 0 is
    drawn at the bottom."""
    step = max(1, int(np.ceil(max(data.shape[1:]) / max_side)))
    small = data[:, ::step, ::step]
    rgba = _rgba(apply_stf(small, stf or screen_stf(data, linked)))
    h, w = rgba.shape[:2]
    return np.ascontiguousarray(rgba).ravel(), w, h, step


def window_rgba(data: np.ndarray, x0: int, y0: int, w: int, h: int, stf) -> tuple[np.ndarray, int, int, int, int]:
    """The image's own pixels (no resampling) of the window x0..x0+w, y0..y0+h (FITS order,
    clipped to the image), stretched with ``stf``: flat RGBA, and the window's x0, y0, w, h."""
    H, W = data.shape[1:]
    x0, y0 = max(0, min(int(x0), W - 1)), max(0, min(int(y0), H - 1))
    x1, y1 = min(W, x0 + max(1, int(w))), min(H, y0 + max(1, int(h)))
    rgba = _rgba(apply_stf(data[:, y0:y1, x0:x1], stf))
    return np.ascontiguousarray(rgba).ravel(), x0, y0, x1 - x0, y1 - y0


def split_rgba(left: np.ndarray, right: np.ndarray, width: int, fraction: float) -> np.ndarray:
    """Two flat RGBA textures of one size side by side: columns left of ``fraction`` x width from
    ``left``, the rest from ``right``, with a one-pixel white line at the split."""
    a, b = left.reshape(-1, width, 4), right.reshape(-1, width, 4)
    cut = int(round(max(0.0, min(1.0, fraction)) * width))
    out = np.concatenate([a[:, :cut], b[:, cut:]], axis=1)
    if 0 < cut < width:
        out[:, cut, :3] = 1.0
    return np.ascontiguousarray(out).ravel()


def histogram(data: np.ndarray, bins: int = 256) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-channel histograms over [0, 1] (bin centres, log10(1 + counts) per channel)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    sample = data[:, ::4, ::4] if data[0].size > 4_000_000 else data
    return centres, [np.log10(1 + np.histogram(sample[c], edges)[0]) for c in range(data.shape[0])]


def pixel_value(data: np.ndarray, x: float, y: float) -> tuple[int, int, list[float]] | None:
    """The pixel under plot coordinates (x right, y up, FITS order), or None outside the image;
    values as on the wire ([0, 1] for integer files; :func:`source_units` gives the file's)."""
    col, row = int(np.floor(x)), int(np.floor(y))
    if 0 <= row < data.shape[1] and 0 <= col < data.shape[2]:
        return col, row, [float(data[c, row, col]) for c in range(data.shape[0])]
    return None


def source_units(values: list[float], meta: dict) -> list[float] | None:
    """Wire values back in the source file's units (ADU of an integer file: value x scale), or
    None when the file held floats (the values are its own already)."""
    scale = meta.get("scale")
    if not scale or meta.get("source_dtype", "float32").startswith("float"):
        return None
    return [v * float(scale) for v in values]
