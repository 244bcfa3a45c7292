"""Reading a whole small file (a graph, an icon set) with a size limit and one-line errors."""
from __future__ import annotations

import os
from pathlib import Path


def read_limited(path: str | os.PathLike, limit: int, kind: str, error: type[Exception], missing: str = "") -> bytes:
    """The bytes of ``path``, or ``error`` naming the file: missing (plus the ``missing`` hint),
    a folder, unreadable, or larger than ``limit`` bytes for a ``kind`` (e.g. "graph file")."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > limit:
            raise error(f"{p}: {size} bytes is too large for a {kind} (limit {limit})")
        return p.read_bytes()
    except FileNotFoundError:
        raise error(f"{p}: no such {kind}{missing}") from None
    except IsADirectoryError:
        raise error(f"{p}: is a folder, not a {kind}") from None
    except PermissionError:
        raise error(f"{p}: permission denied") from None
