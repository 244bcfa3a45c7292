"""Port types: what a wire carries, and how a value of each type is stored in the disk cache."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from astropy.io import fits

from .image import Image


@dataclass(frozen=True)
class PortType:
    """A named wire type. ``save``/``load`` put a value into a cache folder (no pickle)."""

    name: str
    description: str
    check: Callable[[Any], bool]
    save: Callable[[Any, Path, str], dict] | None = None
    load: Callable[[dict, Path, str], Any] | None = None

    def accepts(self, other: "PortType") -> bool:
        """Whether an input of this type takes a link from an output of type ``other``."""
        if self.name == other.name or "any" in (self.name, other.name):
            return True
        return self.name == "image" and other.name == "mask"  # a mask is a mono image


def _save_image(value: Image, folder: Path, stem: str) -> dict:
    np.save(folder / f"{stem}.npy", value.data, allow_pickle=False)
    return {"header": value.header.tostring(sep="\n"), "name": value.name,
            "meta": _jsonable(value.meta), "shape": list(value.data.shape)}


def _load_image(info: dict, folder: Path, stem: str) -> Image:
    data = np.load(folder / f"{stem}.npy", allow_pickle=False)
    if list(data.shape) != info["shape"] or data.dtype != np.float32:
        raise ValueError("cached array has the wrong shape or type")
    header = fits.Header.fromstring(info["header"], sep="\n")
    return Image(data, header, info["name"], info["meta"])


def _jsonable(value: Any) -> Any:
    """Round numpy scalars and arrays to plain JSON values (for metadata)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _save_json(value: Any, folder: Path, stem: str) -> dict:
    return {"value": _jsonable(value)}


def _load_json(info: dict, folder: Path, stem: str) -> Any:
    return info["value"]


def _is_mapping(value: Any) -> bool:
    return isinstance(value, dict)


IMAGE = PortType("image", "an image: float32 (C, H, W), C = 1 or 3, values nominally in [0, 1]",
                 lambda v: isinstance(v, Image), _save_image, _load_image)
MASK = PortType("mask", "a mask image: float32 (1, H, W), 1 = selected, 0 = not",
                lambda v: isinstance(v, Image) and v.channels == 1, _save_image, _load_image)
SCALAR = PortType("scalar", "a number", lambda v: isinstance(v, (int, float, np.number)),
                  _save_json, _load_json)
TRANSFORM = PortType("transform", "a geometric mapping between two images (JSON-like dict)",
                     _is_mapping, _save_json, _load_json)
STARS = PortType("stars", "a star list: dict of equal-length columns (x, y, flux, ...)",
                 _is_mapping, _save_json, _load_json)
ANY = PortType("any", "any value", lambda v: True)

PORT_TYPES: dict[str, PortType] = {t.name: t for t in (IMAGE, MASK, SCALAR, TRANSFORM, STARS, ANY)}


def port_type(name: str) -> PortType:
    """Look up a port type by name (``KeyError`` names the known ones)."""
    try:
        return PORT_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown port type {name!r}; known: {', '.join(PORT_TYPES)}") from None


def value_nbytes(value: Any) -> int:
    """Approximate memory held by a wire value (for the byte-bounded cache)."""
    if isinstance(value, Image):
        return value.nbytes + 8192
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, dict):
        return 256 + sum(value_nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return 64 + sum(value_nbytes(v) for v in value)
    return 64


def jsonable(value: Any) -> Any:
    """Public alias of the JSON rounding used for metadata and events."""
    return _jsonable(value)


def dumps_canonical(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces) used inside cache keys."""
    return json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
