"""The node registry: built-in nodes from ``msgr_nodes.nodes`` and third-party packs.

A node module exposes ``SPEC`` (one :class:`NodeSpec`) or ``SPECS`` (a list).
A third-party pack registers an entry point in the group ``msgr_nodes.nodes``
whose target is such a module, or a callable returning a list of specs::

    [project.entry-points."msgr_nodes.nodes"]
    my_pack = "my_pack.nodes"
"""
from __future__ import annotations

import importlib
import pkgutil
import threading
from importlib import metadata
from types import ModuleType
from typing import Iterable

from .errors import MsgrError
from .nodespec import NodeSpec

ENTRY_POINT_GROUP = "msgr_nodes.nodes"


class Registry:
    """Node types by name."""

    def __init__(self, specs: Iterable[NodeSpec] = ()):
        self._specs: dict[str, NodeSpec] = {}
        self._sources: dict[str, str] = {}  # node type -> where it came from (for errors)
        self.load_errors: list[str] = []
        for s in specs:
            self.add(s)

    def add(self, spec: NodeSpec, source: str = "") -> None:
        """Add a node type; ``source`` (a module or pack name) is named if the type is taken."""
        source = source or getattr(spec.run, "__module__", "") or "?"
        if spec.type in self._specs and self._specs[spec.type] is not spec:
            raise MsgrError(f"node type {spec.type!r} is defined twice "
                            f"({self._sources[spec.type]} and {source})")
        self._specs[spec.type] = spec
        self._sources[spec.type] = source

    def get(self, type_name: str) -> NodeSpec | None:
        return self._specs.get(type_name)

    def __contains__(self, type_name: str) -> bool:
        return type_name in self._specs

    def __iter__(self):
        return iter(sorted(self._specs.values(), key=lambda s: (s.category, s.type)))

    def types(self) -> list[str]:
        return sorted(self._specs)

    def add_module(self, module: ModuleType) -> None:
        for spec in _specs_of(module):
            self.add(spec, module.__name__)


def _specs_of(obj) -> list[NodeSpec]:
    if isinstance(obj, ModuleType):
        found = list(getattr(obj, "SPECS", []))
        if hasattr(obj, "SPEC"):
            found.append(obj.SPEC)
    elif callable(obj):
        found = list(obj())
    else:
        found = []
    out = []
    for s in found:
        if not isinstance(s, NodeSpec):
            raise MsgrError(f"{getattr(obj, '__name__', obj)!r} exports {s!r}, which is not a NodeSpec")
        out.append(s)
    return out


def discover(entry_points: bool = True) -> Registry:
    """Build a registry of the built-in nodes and (optionally) the installed node packs.

    A pack that fails to import is recorded in ``load_errors`` (shown by
    ``msgr-nodes nodes``) instead of breaking the built-in nodes.
    """
    reg = Registry()
    from . import nodes as builtin  # the package ``nodes/`` installed as msgr_nodes.nodes

    for info in sorted(pkgutil.iter_modules(builtin.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        reg.add_module(importlib.import_module(f"{builtin.__name__}.{info.name}"))
    if entry_points:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                for spec in _specs_of(ep.load()):
                    reg.add(spec, f"node pack {ep.name!r} ({ep.value})")
            except Exception as exc:  # a broken pack must not take the built-in nodes down
                reg.load_errors.append(f"node pack {ep.name!r} ({ep.value}) failed to load: {exc}")
    return reg


_default: Registry | None = None
_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry, discovered once."""
    global _default
    with _lock:
        if _default is None:
            _default = discover()
        return _default

