"""The graph file format ("icon sets"): JSON, UTF-8, parameters by name, versioned.

Reading a graph never runs code: it is parsed with ``json`` and checked field
by field. Fields this version does not know are kept and written back.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from .errors import FormatError
from .model import GraphModel, Link, Node
from .io.atomic import write_bytes_atomic
from .io.read import read_limited
from .registry import Registry
from .stock import resolve_graph, stock_graph_names
from .version import __version__

FORMAT = "msgr-nodes/graph"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 50 * 1024 * 1024

# MIGRATIONS[v] turns a file dict of format_version v into v + 1.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}

_NODE_FIELDS = ("type", "version", "label", "params", "pos")
_LINK_FIELDS = ("from", "to")
_TOP_FIELDS = ("format", "format_version", "nodes", "links", "meta")


def dumps(data: dict) -> str:
    """The canonical text of a graph file (stable: the same graph gives the same bytes).

    Two-space indentation, with lists of plain values (positions, link ends) on one
    line so that a diff shows one changed line per changed value.
    """
    return _format(data, 0) + "\n"


def _format(value: Any, depth: int) -> str:
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_format(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return json.dumps(value, ensure_ascii=False, allow_nan=False)
        items = [inner + _format(v, depth + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def migrate(data: dict, source: str = "graph") -> dict:
    """Bring a parsed graph file to the current format version, or raise FormatError."""
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise FormatError(f"{source}: 'format_version' must be a whole number, got {version!r}")
    if version > FORMAT_VERSION:
        raise FormatError(f"{source}: written by a newer msgr-nodes (graph format {version}); this is "
                          f"msgr-nodes {__version__}, which reads format {FORMAT_VERSION} and older: upgrade msgr-nodes")
    while version < FORMAT_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise FormatError(f"{source}: graph format {version} is not supported (no migration to {version + 1})")
        data = step(dict(data))
        version += 1
        data["format_version"] = version
    return data


def _expect(cond: bool, source: str, what: str) -> None:
    if not cond:
        raise FormatError(f"{source}: {what}")


def graph_from_dict(data: Any, registry: Registry | None = None,
                    base_dir: str | os.PathLike | None = None, source: str = "graph",
                    cls: type[GraphModel] = GraphModel) -> GraphModel:
    """Build a :class:`Graph` from a parsed graph file (structure errors raise FormatError;
    semantic problems such as unknown node types are left for ``validate``). ``cls`` is the
    class to build (a subclass of GraphModel)."""
    _expect(isinstance(data, dict), source, "a graph file must hold a JSON object")
    _expect(data.get("format") == FORMAT, source,
            f"not a msgr-nodes graph ('format' is {data.get('format')!r}, expected {FORMAT!r})")
    data = migrate(data, source)
    g = cls(registry, base_dir)
    nodes = data.get("nodes", {})
    _expect(isinstance(nodes, dict), source, "'nodes' must be an object of node id -> node")
    for nid, nd in nodes.items():
        _expect(isinstance(nd, dict), source, f"node {nid!r} must be an object")
        _expect(isinstance(nd.get("type"), str), source, f"node {nid!r} needs a 'type' string")
        version = nd.get("version", 1)
        _expect(isinstance(version, int) and not isinstance(version, bool), source,
                f"node {nid!r}: 'version' must be a whole number")
        params = nd.get("params", {})
        _expect(isinstance(params, dict), source, f"node {nid!r}: 'params' must be an object of name -> value")
        pos = nd.get("pos", [0, 0])
        _expect(isinstance(pos, list) and len(pos) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos), source,
            f"node {nid!r}: 'pos' must be [x, y]")
        label = nd.get("label", "")
        _expect(isinstance(label, str), source, f"node {nid!r}: 'label' must be text")
        node = Node(nid, nd["type"], version, label, dict(params), tuple(pos),
                    {k: v for k, v in nd.items() if k not in _NODE_FIELDS})
        spec = g.registry.get(node.type)
        if spec is not None and node.version < spec.version and spec.migrate is not None:
            node.params = spec.migrate(node.version, dict(node.params))
            node.version = spec.version
        g.nodes[nid] = node
    links = data.get("links", [])
    _expect(isinstance(links, list), source, "'links' must be a list")
    for i, ld in enumerate(links):
        ok = (isinstance(ld, dict) and all(
            isinstance(ld.get(k), list) and len(ld[k]) == 2 and all(isinstance(s, str) for s in ld[k])
            for k in _LINK_FIELDS))
        _expect(ok, source, f"link {i} must look like {{\"from\": [node, output], \"to\": [node, input]}}")
        g.links.append(Link(ld["from"][0], ld["from"][1], ld["to"][0], ld["to"][1],
                            {k: v for k, v in ld.items() if k not in _LINK_FIELDS}))
    meta = data.get("meta", {})
    _expect(isinstance(meta, dict), source, "'meta' must be an object")
    g.meta = dict(meta)
    g.extra = {k: v for k, v in data.items() if k not in _TOP_FIELDS}
    return g


def graph_to_dict(g: GraphModel) -> dict:
    """The file dict of a graph (known fields first, unknown ones kept)."""
    nodes = {}
    for nid, n in g.nodes.items():
        pos = [n.pos[0], n.pos[1]]
        nodes[nid] = {"type": n.type, "version": n.version, "label": n.label,
                      "params": n.params, "pos": pos, **n.extra}
    links = [{"from": [l.src, l.src_port], "to": [l.dst, l.dst_port], **l.extra} for l in g.links]
    meta = dict(g.meta)
    meta.setdefault("created_with", f"msgr-nodes {__version__}")
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "nodes": nodes, "links": links,
            "meta": meta, **g.extra}


def loads_graph(text: str, registry: Registry | None = None, base_dir: str | os.PathLike | None = None,
                source: str = "graph", cls: type[GraphModel] = GraphModel) -> GraphModel:
    """Parse graph-file text (JSON, no NaN/Infinity) into a Graph."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except ValueError as exc:
        raise FormatError(f"{source}: {exc}") from None
    return graph_from_dict(data, registry, base_dir, source, cls)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in a graph file")


def load_graph(path: str | os.PathLike, registry: Registry | None = None,
               cls: type[GraphModel] = GraphModel) -> GraphModel:
    """Read a graph file, or a stock graph by name (``msgr``, ``msgr_additive``: an existing file
    of that name wins). Relative paths inside it resolve against its folder."""
    p = resolve_graph(path)
    raw = read_limited(p, MAX_FILE_BYTES, "graph file", FormatError,
                       f" (stock graphs, usable by name: {', '.join(stock_graph_names())})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    g = loads_graph(text, registry, p.resolve().parent, str(p), cls)
    g.path = p
    return g


def save_graph(g: GraphModel, path: str | os.PathLike) -> None:
    """Write a graph file atomically (UTF-8, canonical JSON)."""
    write_bytes_atomic(path, dumps(graph_to_dict(g)).encode("utf-8"))
    g.path = Path(path)
