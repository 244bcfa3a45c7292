"""Run a user-supplied ONNX star-removal model from a local file (never downloaded).

Contract: the model takes float32 NCHW in [0, 1] and returns the starless image
in the same layout. Models with a fixed spatial input size are run on
overlapping tiles of that size; others on the whole image. Mono models (one
input channel) are run per channel.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import MsgrError


def _session(model_path: str):
    try:
        import onnxruntime as ort
    except ImportError:
        raise MsgrError("backend onnx needs onnxruntime: pip install 'msgr-nodes[onnx]'") from None
    p = Path(model_path)
    if not p.is_file():
        raise MsgrError(f"{p}: no such ONNX model file")
    try:
        return ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise MsgrError(f"{p}: not a usable ONNX model ({str(exc).splitlines()[0]})") from None


def remove_stars_onnx(data: np.ndarray, model_path: str, tile: int = 512, overlap: int = 32,
                      progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """Starless image (C, H, W) float32 from the model at ``model_path``."""
    sess = _session(model_path)
    inp = sess.get_inputs()[0]
    shape = inp.shape
    model_c = shape[1] if len(shape) == 4 and isinstance(shape[1], int) else data.shape[0]
    fixed = len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int)
    th, tw = (shape[2], shape[3]) if fixed else (data.shape[1], data.shape[2])
    planes = [data] if model_c == data.shape[0] else [data[c:c + 1] for c in range(data.shape[0])]
    if model_c not in (1, data.shape[0]):
        raise MsgrError(f"the model takes {model_c} channels; the image has {data.shape[0]}")
    out = []
    for i, plane in enumerate(planes):
        out.append(_run_tiled(sess, inp.name, plane, th, tw, overlap if fixed else 0))
        if progress:
            progress((i + 1) / len(planes), "onnx model")
    result = np.concatenate(out, axis=0).astype(np.float32)
    if result.shape != data.shape:
        raise MsgrError(f"the model returned shape {result.shape}, expected {data.shape}")
    return result


def _run_tiled(sess, name: str, plane: np.ndarray, th: int, tw: int, overlap: int) -> np.ndarray:
    c, h, w = plane.shape
    if th >= h and tw >= w and (th, tw) == (h, w):
        return sess.run(None, {name: plane[None].astype(np.float32)})[0][0]
    acc = np.zeros((c, h, w), np.float64)
    weight = np.zeros((h, w), np.float64)
    step_y, step_x = max(1, th - 2 * overlap), max(1, tw - 2 * overlap)
    padded = np.pad(plane, ((0, 0), (0, max(0, th - h)), (0, max(0, tw - w))), mode="reflect")
    ph, pw = padded.shape[1:]
    ys = list(range(0, max(ph - th, 0) + 1, step_y)) or [0]
    xs = list(range(0, max(pw - tw, 0) + 1, step_x)) or [0]
    if ys[-1] != ph - th:
        ys.append(ph - th)
    if xs[-1] != pw - tw:
        xs.append(pw - tw)
    for y in ys:
        for x in xs:
            res = sess.run(None, {name: padded[None, :, y:y + th, x:x + tw].astype(np.float32)})[0][0]
            y1, x1 = min(y + th, h), min(x + tw, w)
            if y >= h or x >= w:
                continue
            acc[:, y:y1, x:x1] += res[:, : y1 - y, : x1 - x]
            weight[y:y1, x:x1] += 1
    return (acc / np.maximum(weight, 1)).astype(np.float32)
