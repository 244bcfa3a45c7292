"""Declarative node specifications.

A node type is a :class:`NodeSpec`: its ports and parameters (data), and a pure
``run(ctx, inputs, params) -> outputs`` function. ``inputs`` maps input port
names to values, ``params`` holds every parameter (defaults filled in, paths
resolved), and ``outputs`` maps output port names to values.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from .errors import Cancelled
from .params import Param
from .types import PortType, port_type


@dataclass(frozen=True)
class Port:
    """An input or output pin: name, type name, one-line help; inputs may be optional."""

    name: str
    type: str
    help: str = ""
    optional: bool = False

    @property
    def port_type(self) -> PortType:
        return port_type(self.type)

    def to_dict(self) -> dict:
        d = {"name": self.name, "type": self.type, "help": self.help}
        if self.optional:
            d["optional"] = True
        return d


class RunContext:
    """What a running node may use besides its inputs: progress, warnings, cancel, metadata."""

    def __init__(self, node_id: str, emit: Callable[..., None] | None = None,
                 cancel: "CancelToken | None" = None, graph_dir: Path | None = None, threads: int = 1):
        self.node_id = node_id
        self.threads = max(1, int(threads))  # worker threads a node may use for independent work (channels)
        self._emit = emit
        self._cancel = cancel
        self.graph_dir = graph_dir
        self.metadata: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.graph_json: str | None = None  # the producing graph, for provenance (set by the executor)
        self.input_paths: set[str] = set()  # files the graph reads (Save never writes over them)
        self.node_type = ""

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress in [0, 1]; also a cancel point."""
        self.check_cancel()
        if self._emit:
            self._emit("progress", fraction=max(0.0, min(1.0, float(fraction))), message=message)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``fn`` over independent items (e.g. channels) on up to ``threads`` threads; results in order.
        numpy, scipy and numba release the GIL, so the threads share the work."""
        items = list(items)
        with ThreadPoolExecutor(max_workers=max(1, min(self.threads, len(items)))) as pool:
            yield from pool.map(fn, items)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if self._emit:
            self._emit("warning", message=message)

    def check_cancel(self) -> None:
        if self._cancel is not None and self._cancel.cancelled:
            raise Cancelled("cancelled")


class CancelToken:
    """Set once to ask a run to stop; checked between nodes and inside long loops."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


RunFn = Callable[[RunContext, Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class NodeSpec:
    """A node type.

    ``inputs_for`` (optional) returns the input ports for given parameters, for
    nodes whose pins follow a parameter (PixelMath's named image inputs).
    ``check`` (optional) returns problems found from parameters alone (e.g. an
    expression's syntax error), so they appear at validation time.
    ``cacheable`` is false for nodes with side effects (Save): they run every time.
    ``migrate`` turns the parameters of an older node version into the current one.
    """

    type: str
    version: int
    title: str
    category: str
    help: str
    run: RunFn
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    params: tuple[Param, ...] = ()
    inputs_for: Callable[[Mapping[str, Any]], tuple[Port, ...]] | None = None
    check: Callable[[Mapping[str, Any]], list[str]] | None = None
    cacheable: bool = True
    migrate: Callable[[int, dict], dict] | None = None
    module: str = field(default="", compare=False)

    def param(self, name: str) -> Param | None:
        for p in self.params:
            if p.name == name:
                return p
        return None

    def input_ports(self, params: Mapping[str, Any] | None = None) -> tuple[Port, ...]:
        if self.inputs_for is not None:
            try:
                return tuple(self.inputs_for(self.effective_params(params or {})))
            except Exception:  # a broken parameter is reported by validation, not here
                return self.inputs
        return self.inputs

    def input(self, name: str, params: Mapping[str, Any] | None = None) -> Port | None:
        return next((p for p in self.input_ports(params) if p.name == name), None)

    def output(self, name: str) -> Port | None:
        return next((p for p in self.outputs if p.name == name), None)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def effective_params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with the given values (unknown names are left out)."""
        out = self.defaults()
        out.update({k: v for k, v in given.items() if k in out})
        return out

    def to_dict(self) -> dict:
        return {"type": self.type, "version": self.version, "title": self.title,
                "category": self.category, "help": self.help,
                "inputs": [p.to_dict() for p in self.inputs],
                "dynamic_inputs": self.inputs_for is not None,
                "outputs": [p.to_dict() for p in self.outputs],
                "params": [p.to_dict() for p in self.params],
                "cacheable": self.cacheable}
