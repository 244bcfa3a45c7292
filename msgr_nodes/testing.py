"""Helpers for testing nodes and node packs without building a graph.

::

    from msgr_nodes.testing import run_node

    out = run_node(SPEC, {"image": Image(data)}, {"gain": 2.0})
    assert out["image"].data.max() == 2.0
    assert out.warnings == []
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .context import CancelToken, RunContext
from .errors import MsgrError
from .model import GraphModel
from .nodespec import NodeSpec
from .registry import Registry, default_registry
from .wires import jsonable


@dataclass
class NodeOutcome:
    """What one node run gave: ``outputs`` by port name (also ``outcome[port]``), the
    ``warnings`` it raised, its ``metadata`` (as JSON values) and every ``events`` entry
    ``(kind, fields)`` it sent (progress, warnings)."""

    outputs: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict]] = field(default_factory=list)

    def __getitem__(self, port: str) -> Any:
        return self.outputs[port]


def run_node(spec: NodeSpec | str, inputs: Mapping[str, Any] | None = None,
             params: Mapping[str, Any] | None = None, *, node_id: str = "node", threads: int = 1,
             cancel: CancelToken | None = None) -> NodeOutcome:
    """Run one node as the executor would, with the same checks, and return what it gave.

    Parameters
    ----------
    spec : NodeSpec or str
        The node type, or its name in the default registry (built-in nodes and installed packs).
    inputs : mapping, optional
        Input port name -> value; every input that is not optional must be given, each of its
        port's wire type.
    params : mapping, optional
        Parameters by name; the others take their defaults. Values are checked as in a graph
        (an unknown name or a value out of range raises MsgrError naming it); relative paths
        resolve against the current folder.
    node_id : str
        The id the node sees as ``ctx.node_id``.
    threads : int
        ``ctx.threads``.
    cancel : CancelToken, optional
        Lets a test cancel the node.

    Returns
    -------
    NodeOutcome
        Outputs (checked against the output ports' wire types), warnings, metadata, events.
    """
    if isinstance(spec, str):
        found = default_registry().get(spec)
        if found is None:
            raise MsgrError(f"unknown node type {spec!r}; known: {', '.join(default_registry().types())}")
        spec = found
    # the parameters go through a one-node graph: the same coercion, path resolution and
    # required-parameter check as in any graph
    g = GraphModel(Registry([spec]), base_dir=Path.cwd())
    g.add_node(spec.type, node_id)
    for name, value in (params or {}).items():
        g.set(f"{node_id}.{name}", value)
    missing = [p for p in g.validate(files=False) if p.param is not None]
    if missing:
        raise MsgrError(str(missing[0]))
    effective = g.effective_params(node_id)
    inputs = dict(inputs or {})
    ports = spec.input_ports(effective)
    for port in ports:
        if port.name not in inputs:
            if not port.optional:
                raise MsgrError(f"{node_id}: input {port.name!r} ({port.type}) is not given")
        elif not port.port_type.check(inputs[port.name]):
            raise MsgrError(f"{node_id}: input {port.name!r} takes {port.type}, got {type(inputs[port.name]).__name__}")
    unknown = set(inputs) - {p.name for p in ports}
    if unknown:
        raise MsgrError(f"{node_id}: {spec.type} has no input(s) {', '.join(sorted(unknown))}")
    events: list[tuple[str, dict]] = []
    ctx = RunContext(node_id, node_type=spec.type, emit=lambda kind, **kw: events.append((kind, kw)),
                     cancel=cancel, graph_dir=Path.cwd(), threads=threads)
    outputs = spec.run(ctx, inputs, effective)
    spec.check_outputs(outputs)
    return NodeOutcome(dict(outputs), list(ctx.warnings), jsonable(ctx.metadata), events)
