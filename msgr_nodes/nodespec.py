"""Declarative node specifications: :class:`NodeSpec` and its :class:`Port` pins.

A node type is a :class:`NodeSpec`: its ports and parameters (data), and a pure
``run(ctx, inputs, params) -> outputs`` function. ``inputs`` maps input port
names to values, ``params`` holds every parameter (defaults filled in, paths
resolved), and ``outputs`` maps output port names to values. Every field is
given by keyword, so adding a field never shifts another.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .context import RunContext
from .params import Param
from .wires import PortType, port_type


@dataclass(frozen=True, kw_only=True)
class Port:
    """An input or output pin: name, wire type name, one-line help; inputs may be optional."""

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


RunFn = Callable[[RunContext, Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True, kw_only=True)
class NodeSpec:
    """A node type.

    The rule of ``version``: bump it whenever the node's output for the same inputs and
    parameters changes (a fixed bug, a better algorithm). It enters every cache key, so
    results cached by the older version, in memory or on disk, are not reused; graph files
    record it, and ``migrate`` turns an older version's parameters into the current ones.

    Optional hooks:

    - ``inputs_for(params)`` returns the input ports for given parameters, for nodes whose
      pins follow a parameter (PixelMath's named image inputs).
    - ``check(params)`` returns problems found from parameters alone (an expression's
      syntax error), so they appear at validation time.
    - ``fingerprint(params)`` returns a JSON-able value for state the node depends on that is
      neither an input nor a file parameter (a model downloaded to a cache, a library's
      version): it enters the cache key, so a change of that state recomputes the node.
      Files named by ``path`` parameters with ``reads`` are fingerprinted already.
    - ``migrate(old_version, params)`` returns the parameters of the current version.

    ``cacheable`` is false for nodes with side effects (Save): they run every time.
    """

    type: str
    version: int
    category: str
    help: str
    run: RunFn
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    params: tuple[Param, ...] = ()
    inputs_for: Callable[[Mapping[str, Any]], tuple[Port, ...]] | None = None
    check: Callable[[Mapping[str, Any]], list[str]] | None = None
    fingerprint: Callable[[Mapping[str, Any]], Any] | None = None
    cacheable: bool = True
    migrate: Callable[[int, dict], dict] | None = None

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

    def check_outputs(self, outputs: Mapping[str, Any]) -> None:
        """Raise RuntimeError unless ``outputs`` holds a value of the right wire type for every
        output port (a node that breaks this has a bug; the message names it)."""
        missing = [p.name for p in self.outputs if p.name not in outputs]
        if missing:
            raise RuntimeError(f"{self.type} returned no value for output(s) {', '.join(missing)}")
        for p in self.outputs:
            if not p.port_type.check(outputs[p.name]):
                raise RuntimeError(f"{self.type} output {p.name!r} is not a {p.type}")

    def to_dict(self) -> dict:
        return {"type": self.type, "version": self.version,
                "category": self.category, "help": self.help,
                "inputs": [p.to_dict() for p in self.inputs],
                "dynamic_inputs": self.inputs_for is not None,
                "outputs": [p.to_dict() for p in self.outputs],
                "params": [p.to_dict() for p in self.params],
                "cacheable": self.cacheable}
