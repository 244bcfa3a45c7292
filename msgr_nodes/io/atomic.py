"""Atomic file writes: a temporary file in the target's folder, then a rename."""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from ..errors import MsgrError

_live: set[Path] = set()  # temporary files being written now (removed on an interrupt)
_live_lock = threading.Lock()


def _umask() -> int:
    """The process's umask: from /proc on Linux (setting and restoring it, the portable way,
    would change it for a moment for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_folder(path: str | os.PathLike, label: str, advice: str) -> Path:
    """Create the folder ``path`` (and its parents) for output, or raise MsgrError naming it as
    ``label`` when it is a file or cannot be created; ``advice`` says what to do instead."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise MsgrError(f"{label} {folder}: is a file, not a folder: {advice}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MsgrError(f"{label} {folder}: cannot be created ({exc.strerror}): {advice}") from None
    return folder


def remove_partial_files() -> list[Path]:
    """Delete the temporary files of writes still under way (Ctrl-C: leave nothing behind)."""
    with _live_lock:
        paths = list(_live)
        _live.clear()
    for p in paths:
        with contextlib.suppress(OSError):
            p.unlink()
    return paths


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    On any error the temporary file is removed and ``path`` is untouched, so a
    reader never sees a partial file. With ``overwrite=False`` an existing
    ``path`` is never replaced (checked again at the rename, without a race
    window for a second writer: the final step is a hard link, which fails if
    the name exists).
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    with _live_lock:
        _live.add(tmp)
    try:
        # mkstemp makes the file private (0600); a saved file gets the mode any new file would get
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)  # raises FileExistsError instead of replacing
            tmp.unlink()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        with _live_lock:
            _live.discard(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, overwrite) as tmp:
        tmp.write_bytes(data)
