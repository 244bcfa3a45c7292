"""A graph's edits as the command line or Python script that repeats them headless (the editor's
Edit > Copy as command / Copy as Python)."""
from __future__ import annotations

import shlex
from typing import Any

from .errors import MsgrError
from .model import GraphModel


def _differences(graph: GraphModel, reference: GraphModel | None) -> list[tuple[str, str, Any]]:
    """(node, parameter, value) of every parameter of ``graph`` that differs from ``reference``
    (effective values, paths resolved). Raises MsgrError when nodes or links differ: ``-s``
    cannot express those."""
    if reference is None:
        raise MsgrError("this graph has no file yet: save it (File > Save As), then copy the command again")
    links = lambda g: sorted((l.src, l.src_port, l.dst, l.dst_port) for l in g.links)  # noqa: E731
    types = lambda g: {nid: n.type for nid, n in g.nodes.items()}  # noqa: E731
    if types(graph) != types(reference) or links(graph) != links(reference):
        raise MsgrError("nodes or links were added or removed since the graph was saved: save it "
                        "(File > Save As), then copy the command again")
    out = []
    for nid in graph.nodes:
        now, then = graph.effective_params(nid), reference.effective_params(nid)
        for name, value in now.items():
            if value != then.get(name):
                out.append((nid, name, value))
    return out


def _text(value: Any) -> str:
    """A value as ``-s`` parses it back (Param.parse)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    return repr(value) if isinstance(value, float) else str(value)


def command_line(graph: GraphModel, reference: GraphModel | None, graph_ref) -> str:
    """``msgr-nodes run GRAPH -s node.param=value ...`` for the parameters that differ from the
    graph file ``graph_ref`` (a path or a stock graph name) as ``reference`` holds it."""
    parts = ["msgr-nodes", "run", str(graph_ref)]
    for nid, name, value in _differences(graph, reference):
        parts += ["-s", f"{nid}.{name}={_text(value)}"]
    return " ".join(shlex.quote(p) for p in parts)


def python_script(graph: GraphModel, reference: GraphModel | None, graph_ref) -> str:
    """The same run as a Python script."""
    lines = ["from msgr_nodes import Graph", "", f"g = Graph.load({str(graph_ref)!r})"]
    lines += [f"g.set({f'{nid}.{name}'!r}, {value!r})" for nid, name, value in _differences(graph, reference)]
    lines += ["result = g.run()", "print('ok' if result.ok else result.errors)", ""]
    return "\n".join(lines)
