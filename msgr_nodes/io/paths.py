"""Output names made from an input's file name: ``{source_dir}``, ``{source_stem}``, ``{source_name}``."""
from __future__ import annotations

import os
from pathlib import Path

SOURCE_FIELDS = ("{source_dir}", "{source_stem}", "{source_name}")


def source_stem(path: str | os.PathLike) -> str:
    """A file's name without its extension; ``.fits.fz`` counts as one extension."""
    p = Path(path)
    return p.name[: -len(".fits.fz")] if p.name.lower().endswith(".fits.fz") else p.stem


def fill_source_fields(template: str, source: str | os.PathLike) -> str:
    """``template`` with the source fields filled from the file ``source``; an unknown ``{field}``
    raises ValueError naming it."""
    src = Path(source)
    try:
        return template.format(source_dir=str(src.parent), source_stem=source_stem(src), source_name=src.name)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"unknown placeholder {exc}; use {', '.join(SOURCE_FIELDS)}") from None
