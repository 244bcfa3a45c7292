"""Result caches: a byte-bounded in-memory LRU and a content-addressed disk cache.

The disk cache stores each node result under its Merkle key as ``.npy`` arrays
plus one ``entry.json`` (never pickle). Every file's size and CRC-32 are
recorded, so a truncated or corrupted entry is detected, discarded and
recomputed.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io.atomic import make_folder
from .wires import jsonable, port_type, value_nbytes

ENTRY_VERSION = 1


# The packages whose code computes node results (the editor's does not).
COMPUTE_PACKAGES = ("msgr_nodes", "msgr_nodes.nodes")
NOT_COMPUTE = ("gui",)


def source_fingerprint(folders: list[Path], skip: tuple[str, ...] = ()) -> str:
    """SHA-256 (hex) of the ``.py`` files under ``folders``: their paths relative to each folder and
    their bytes, in sorted order; sub-folders named in ``skip`` are left out."""
    digest = hashlib.sha256()
    for i, folder in enumerate(folders):
        files = sorted(p for p in Path(folder).rglob("*.py")
                       if not set(p.relative_to(folder).parts[:-1]) & set(skip))
        for path in files:
            digest.update(f"{i}:{path.relative_to(folder).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """The fingerprint (:func:`source_fingerprint`) of the installed code that computes node
    results: a part of every cache key, so that a disk cache written by another release (or by the
    code before an edit) is never read back as this code's result."""
    folders = []
    for name in COMPUTE_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            folders.extend(Path(p) for p in spec.submodule_search_locations)
    return source_fingerprint(folders, NOT_COMPUTE)


@dataclass
class NodeResult:
    """What one node produced: outputs by port name, metadata and warnings."""

    outputs: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def nbytes(self) -> int:
        return sum(value_nbytes(v) for v in self.outputs.values()) + 1024


class MemoryCache:
    """Least-recently-used results, bounded by ``max_bytes`` (0 disables it)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[str, tuple[NodeResult, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> NodeResult | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, result: NodeResult) -> None:
        size = result.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            self._items[key] = (result, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, (_, old) = self._items.popitem(last=False)
                self._bytes -= old

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


class DiskCache:
    """Results on disk, addressed by key; bounded by ``max_bytes`` (oldest used go first)."""

    def __init__(self, folder: str | os.PathLike, max_bytes: int = 20 * 1024**3):
        self.folder = Path(folder)
        self.max_bytes = int(max_bytes)
        make_folder(self.folder, "cache folder",
                    "give another folder (--cache-dir) or run without the disk cache (--no-cache)")
        self.discarded: list[str] = []  # keys of corrupt entries found (for tests and logs)

    def _dir(self, key: str) -> Path:
        return self.folder / key[:2] / key

    def get(self, key: str, port_types: dict[str, str]) -> NodeResult | None:
        d = self._dir(key)
        entry_file = d / "entry.json"
        if not entry_file.is_file():
            return None
        try:
            entry = json.loads(entry_file.read_text("utf-8"))
            if entry.get("version") != ENTRY_VERSION or set(entry["outputs"]) != set(port_types):
                raise ValueError("entry does not match the node's outputs")
            for name, f in entry["files"].items():
                path = d / name
                if path.stat().st_size != f["size"] or _crc32(path) != f["crc32"]:
                    raise ValueError(f"{name} is truncated or corrupt")
            outputs = {}
            for port, info in entry["outputs"].items():
                pt = port_type(port_types[port])
                outputs[port] = pt.load(info, d, port)
            os.utime(entry_file)  # mark as recently used
            return NodeResult(outputs, entry.get("metadata", {}), entry.get("warnings", []),
                              entry.get("seconds", 0.0))
        except Exception:
            self.discarded.append(key)
            shutil.rmtree(d, ignore_errors=True)
            return None

    def put(self, key: str, result: NodeResult, port_types: dict[str, str]) -> bool:
        """Store a result; returns False when a value's type cannot be stored on disk."""
        types = {p: port_type(t) for p, t in port_types.items() if p in result.outputs}
        if any(t.save is None for t in types.values()):
            return False
        final = self._dir(key)
        if (final / "entry.json").is_file():
            return True
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:8]}.", dir=final.parent))
        try:
            outputs = {port: types[port].save(result.outputs[port], tmp, port) for port in types}
            files = {p.name: {"size": p.stat().st_size, "crc32": _crc32(p)} for p in sorted(tmp.iterdir())}
            entry = {"version": ENTRY_VERSION, "outputs": outputs, "files": files,
                     "metadata": jsonable(result.metadata), "warnings": list(result.warnings),
                     "seconds": result.seconds, "written": time.time()}
            (tmp / "entry.json").write_text(json.dumps(entry), "utf-8")
            try:
                os.rename(tmp, final)
            except OSError:  # another process stored the same key first
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._evict()
        return True

    def _evict(self) -> None:
        entries = []
        total = 0
        for e in self.folder.glob("??/*/entry.json"):
            d = e.parent
            if d.name.startswith("."):  # an entry another thread or process is still writing
                continue
            try:
                size = sum(f.stat().st_size for f in d.iterdir())
                entries.append((e.stat().st_mtime, size, d))
            except FileNotFoundError:  # removed meanwhile by another process's eviction
                continue
            total += size
        for _, size, d in sorted(entries):
            if total <= self.max_bytes:
                break
            shutil.rmtree(d, ignore_errors=True)
            total -= size
