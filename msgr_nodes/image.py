"""The value that flows on image wires."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits


def _freeze(data: np.ndarray) -> np.ndarray:
    """Validate the layout and make the array read-only.

    The Image takes ownership of a float32 C-contiguous array (no copy: it
    becomes read-only for every holder); anything else is converted.
    """
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(f"an Image needs shape (C, H, W) with C = 1 or 3, got {arr.shape}")
    if arr.dtype != np.float32 or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Image:
    """An image on a wire.

    ``data`` is float32, C-contiguous, shape (C, H, W) with C = 1 (mono) or 3
    (RGB), values nominally in [0, 1] (PixInsight's convention), read-only.
    ``header`` is an astropy FITS header (WCS cards included), ``name`` a short
    label, and ``meta`` free-form provenance (for example ``{"scale": 65535}``,
    the factor Load divided integer data by, so Save can write it back).
    """

    data: np.ndarray
    header: fits.Header = field(default_factory=fits.Header)
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _freeze(self.data))
        if not isinstance(self.header, fits.Header):
            object.__setattr__(self, "header", fits.Header(self.header))

    @property
    def channels(self) -> int:
        return int(self.data.shape[0])

    @property
    def height(self) -> int:
        return int(self.data.shape[1])

    @property
    def width(self) -> int:
        return int(self.data.shape[2])

    @property
    def is_color(self) -> bool:
        return self.channels == 3

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def derive(self, data: np.ndarray, name: str | None = None, **meta: Any) -> "Image":
        """A new image with new pixels and this image's header, name and metadata."""
        merged = {**self.meta, **meta}
        return Image(data, self.header.copy(), self.name if name is None else name, merged)

    def take_msgr_cards(self, header: fits.Header) -> None:
        """Append msgr-nodes' own cards (MSGR*, where this header has none of that name) and MSGR
        HISTORY lines from another image's header: a check's verdict travels with the pixels it
        produced, through every node to the saved file."""
        for card in header.cards:
            if card.keyword.startswith("MSGR") and card.keyword not in self.header:
                self.header.append(card)
            elif card.keyword == "HISTORY" and str(card.value).startswith("MSGR"):
                self.header.add_history(card.value)

    def describe(self) -> str:
        kind = "RGB" if self.is_color else "mono"
        return f"{self.width}x{self.height} {kind}"
