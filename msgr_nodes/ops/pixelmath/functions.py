"""The fixed table of PixelMath functions: name -> (min args, max args, kind).

kind ``stat``: with one image-valued argument, a per-channel statistic of the
whole image (``med(Wide)`` on RGB is three channel medians); with several
arguments, the same statistic across the arguments, pixel by pixel.
kind ``elem``: element-wise math. kind ``coord``: pixel geometry.
"""
from __future__ import annotations

import numpy as np

INF_ARGS = 10_000

FUNCTIONS: dict[str, tuple[int, int, str]] = {
    # statistics
    "med": (1, INF_ARGS, "stat"), "median": (1, INF_ARGS, "stat"),
    "mean": (1, INF_ARGS, "stat"), "avg": (1, INF_ARGS, "stat"),
    "mdev": (1, INF_ARGS, "stat"), "MAD": (1, INF_ARGS, "stat"),
    "adev": (1, INF_ARGS, "stat"), "sdev": (1, INF_ARGS, "stat"), "var": (1, INF_ARGS, "stat"),
    "min": (1, INF_ARGS, "stat"), "max": (1, INF_ARGS, "stat"), "sum": (1, INF_ARGS, "stat"),
    # element-wise math
    "abs": (1, 1, "elem"), "sign": (1, 1, "elem"), "sqrt": (1, 1, "elem"), "exp": (1, 1, "elem"),
    "ln": (1, 1, "elem"), "log": (1, 1, "elem"), "log2": (1, 1, "elem"),
    "floor": (1, 1, "elem"), "ceil": (1, 1, "elem"), "round": (1, 2, "elem"), "trunc": (1, 1, "elem"),
    "frac": (1, 1, "elem"), "sin": (1, 1, "elem"), "cos": (1, 1, "elem"), "tan": (1, 1, "elem"),
    "asin": (1, 1, "elem"), "acos": (1, 1, "elem"), "atan": (1, 2, "elem"),
    "sinh": (1, 1, "elem"), "cosh": (1, 1, "elem"), "tanh": (1, 1, "elem"), "pi": (0, 0, "elem"),
    "iif": (3, 3, "elem"), "iswitch": (3, INF_ARGS, "elem"), "range": (3, 3, "elem"),
    "rescale": (3, 3, "elem"), "mtf": (2, 2, "elem"),
    # geometry
    "x": (0, 0, "coord"), "y": (0, 0, "coord"), "X": (0, 0, "coord"), "Y": (0, 0, "coord"),
    "width": (0, 1, "coord"), "height": (0, 1, "coord"), "area": (0, 1, "coord"),
}

ALIASES = {"median": "med", "avg": "mean", "MAD": "mdev"}


def image_statistic(name: str, values: np.ndarray) -> float:
    """A statistic of one channel (any shape; computed in float64)."""
    name = ALIASES.get(name, name)
    v = values.astype(np.float64, copy=False).ravel()
    if name == "med":
        return float(np.median(v))
    if name == "mean":
        return float(v.mean())
    if name == "mdev":
        return float(1.4826 * np.median(np.abs(v - np.median(v))))
    if name == "adev":
        return float(np.mean(np.abs(v - np.median(v))))
    if name == "sdev":
        return float(v.std(ddof=1)) if v.size > 1 else 0.0
    if name == "var":
        return float(v.var(ddof=1)) if v.size > 1 else 0.0
    if name == "min":
        return float(v.min())
    if name == "max":
        return float(v.max())
    if name == "sum":
        return float(v.sum())
    raise KeyError(name)


def pointwise_statistic(name: str, args: list) -> np.ndarray | float:
    """The statistic across several arguments, pixel by pixel."""
    name = ALIASES.get(name, name)
    stack = np.stack(np.broadcast_arrays(*[np.asarray(a, np.float64) for a in args]))
    if name == "med":
        return np.median(stack, axis=0)
    if name == "mean":
        return stack.mean(axis=0)
    if name == "mdev":
        return 1.4826 * np.median(np.abs(stack - np.median(stack, axis=0)), axis=0)
    if name == "adev":
        return np.mean(np.abs(stack - np.median(stack, axis=0)), axis=0)
    if name == "sdev":
        return stack.std(axis=0, ddof=1)
    if name == "var":
        return stack.var(axis=0, ddof=1)
    if name == "min":
        return stack.min(axis=0)
    if name == "max":
        return stack.max(axis=0)
    if name == "sum":
        return stack.sum(axis=0)
    raise KeyError(name)


def mtf(m, x):
    """Midtones transfer function: MTF(m, x) = (m - 1) x / ((2m - 1) x - m); MTF(m, 0) = 0, MTF(m, 1) = 1."""
    m = np.asarray(m, np.float64)
    x = np.asarray(x, np.float64)
    den = (2 * m - 1) * x - m
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(np.abs(den) > 1e-300, (m - 1) * x / den, 0.0)
    return np.where(x <= 0, 0.0, np.where(x >= 1, 1.0, out))
