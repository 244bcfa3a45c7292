"""Wire types: what a wire carries, and how a value of each type is stored in the disk cache.

A node pack adds its own wire type with :func:`register_wire_type`, at import time of the
module that holds its node specs (the registry imports it in every process that runs nodes).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from astropy.io import fits

from .image import Image


@dataclass(frozen=True, kw_only=True)
class PortType:
    """A named wire type. ``description`` is shown in the node reference; ``check(value)``
    says whether a value is of this type; ``save``/``load`` put a value into a disk-cache
    folder and back (no pickle); without them, values of this type are cached in memory only."""

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
            "meta": jsonable(value.meta), "shape": list(value.data.shape)}


def _load_image(info: dict, folder: Path, stem: str) -> Image:
    data = np.load(folder / f"{stem}.npy", allow_pickle=False)
    if list(data.shape) != info["shape"] or data.dtype != np.float32:
        raise ValueError("cached array has the wrong shape or type")
    header = fits.Header.fromstring(info["header"], sep="\n")
    return Image(data, header, info["name"], info["meta"])


def jsonable(value: Any) -> Any:
    """Round numpy scalars and arrays to plain JSON values (for metadata)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _save_json(value: Any, folder: Path, stem: str) -> dict:
    return {"value": jsonable(value)}


def _load_json(info: dict, folder: Path, stem: str) -> Any:
    return info["value"]


def _is_mapping(value: Any) -> bool:
    return isinstance(value, dict)


IMAGE = PortType(name="image", description="an image: float32 (C, H, W), C = 1 or 3, values nominally in [0, 1]",
                 check=lambda v: isinstance(v, Image), save=_save_image, load=_load_image)
MASK = PortType(name="mask", description="a mask image: float32 (1, H, W), 1 = selected, 0 = not",
                check=lambda v: isinstance(v, Image) and v.channels == 1, save=_save_image, load=_load_image)
SCALAR = PortType(name="scalar", description="a number", check=lambda v: isinstance(v, (int, float, np.number)),
                  save=_save_json, load=_load_json)
TRANSFORM = PortType(name="transform", description="a geometric mapping between two images (JSON-like dict)",
                     check=_is_mapping, save=_save_json, load=_load_json)
STARS = PortType(name="stars", description="a star list: dict of equal-length columns (x, y, flux, ...)",
                 check=_is_mapping, save=_save_json, load=_load_json)
ANY = PortType(name="any", description="any value", check=lambda v: True)

PORT_TYPES: dict[str, PortType] = {t.name: t for t in (IMAGE, MASK, SCALAR, TRANSFORM, STARS, ANY)}


def _definition(wire: PortType) -> tuple:
    """What makes two wire types the same: the name, the description and where the functions live
    (so that importing a pack's module again, as a reload does, re-registers its types)."""
    where = tuple(f"{f.__module__}.{f.__qualname__}" if f is not None else None
                  for f in (wire.check, wire.save, wire.load))
    return (wire.name, wire.description) + where


def register_wire_type(wire: PortType) -> PortType:
    """Add a wire type (a node pack's own). Registering the same definition again replaces it;
    another type under a taken name is refused, naming the name."""
    if not isinstance(wire, PortType):
        raise TypeError(f"register_wire_type takes a PortType, got {type(wire).__name__}")
    have = PORT_TYPES.get(wire.name)
    if have is not None and _definition(have) != _definition(wire):
        raise ValueError(f"wire type {wire.name!r} is taken (by {have.description!r}); choose another name")
    PORT_TYPES[wire.name] = wire
    return wire


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


def dumps_canonical(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces) used inside cache keys."""
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
