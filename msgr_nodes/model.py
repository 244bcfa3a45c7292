"""The graph model: nodes, links, parameters, validation; nothing else.

:class:`GraphModel` knows neither files nor running: ``graphfile`` reads and writes it,
``executor`` runs it, and :class:`msgr_nodes.graph.Graph` puts the three behind one
object for scripts, the command line and the editor.
"""
from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import networkx as nx

from .errors import GraphInvalid, MsgrError, Problem
from .registry import Registry, default_registry
from .nodespec import NodeSpec

MAIN_INPUTS = {"LinearFit": "target", "Register": "target", "DetailFit": "narrow"}  # see main_input
NODE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass
class Node:
    """A node in a graph. ``params`` holds only values set explicitly (by name);
    ``extra`` keeps fields this version does not know, for a faithful round trip."""

    id: str
    type: str
    version: int = 1
    label: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    pos: tuple[float, float] = (0.0, 0.0)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Link:
    """A wire from an output pin to an input pin."""

    src: str
    src_port: str
    dst: str
    dst_port: str
    extra: dict[str, Any] = field(default_factory=dict)


class GraphModel:
    """A processing graph. ``base_dir`` is where relative paths resolve (the graph file's folder)."""

    def __init__(self, registry: Registry | None = None, base_dir: str | os.PathLike | None = None):
        self.registry = registry or default_registry()
        self.nodes: dict[str, Node] = {}
        self.links: list[Link] = []
        self.meta: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.path: Path | None = None

    # ------------------------------------------------------------------ editing
    def spec(self, node_id: str) -> NodeSpec | None:
        return self.registry.get(self.node(node_id).type)

    def node(self, node_id: str) -> Node:
        """The node of that id; an unknown id raises MsgrError naming the graph's nodes (and the new
        id, when the graph's ``meta.renamed`` records that the node was renamed)."""
        try:
            return self.nodes[node_id]
        except KeyError:
            renamed = self.meta.get("renamed", {})
            new = renamed.get(node_id) if isinstance(renamed, dict) else None
            if isinstance(new, str) and new in self.nodes:
                raise MsgrError(f"no node {node_id!r} in this graph: it is called {new!r} now "
                                f"(e.g. -s {new}.PARAM=VALUE)") from None
            raise MsgrError(f"no node {node_id!r} in this graph; nodes: {', '.join(self.nodes) or 'none'}") from None

    def new_id(self, type_name: str) -> str:
        base = re.sub(r"[^a-z0-9_]", "_", type_name.lower()) or "node"
        i = 1
        while f"{base}_{i}" in self.nodes:
            i += 1
        return f"{base}_{i}"

    def add_node(self, type_name: str, node_id: str | None = None, params: dict | None = None,
                 label: str = "", pos: tuple[float, float] = (0.0, 0.0)) -> Node:
        """Add a node of a registered type; every parameter is stored (defaults included)
        so the graph file states exactly what it runs."""
        spec = self.registry.get(type_name)
        if spec is None:
            raise MsgrError(f"unknown node type {type_name!r}; known: {', '.join(self.registry.types())}")
        node_id = node_id or self.new_id(type_name)
        if not NODE_ID.match(node_id):
            raise MsgrError(f"node id {node_id!r} must start with a letter or _ and hold only letters, digits, _ or -")
        if node_id in self.nodes:
            raise MsgrError(f"a node with id {node_id!r} already exists")
        node = Node(node_id, type_name, spec.version, label, spec.defaults(), tuple(pos))
        for k, v in (params or {}).items():
            self._set_param(node, spec, k, v)
        self.nodes[node_id] = node
        return node

    def insert_node(self, node: Node) -> None:
        """Insert a node object as it is (used by undo and paste)."""
        if node.id in self.nodes:
            raise MsgrError(f"a node with id {node.id!r} already exists")
        self.nodes[node.id] = node

    def remove_node(self, node_id: str) -> tuple[Node, list[Link]]:
        """Remove a node and its links; returns them (for undo)."""
        node = self.node(node_id)
        removed = [l for l in self.links if node_id in (l.src, l.dst)]
        self.links = [l for l in self.links if node_id not in (l.src, l.dst)]
        del self.nodes[node_id]
        return node, removed

    def link(self, src: str, src_port: str, dst: str, dst_port: str, check: bool = True) -> Link | None:
        """Connect ``src.src_port`` to ``dst.dst_port``. An input takes one link: an existing
        link into that input is replaced and returned. With ``check``, a link between unknown
        pins, of mismatched types, or that closes a cycle is refused with a reason."""
        if check:
            reason = self.link_problem(src, src_port, dst, dst_port)
            if reason:
                raise MsgrError(reason)
        old = self.unlink(dst, dst_port)
        self.links.append(Link(src, src_port, dst, dst_port))
        return old

    def link_problem(self, src: str, src_port: str, dst: str, dst_port: str) -> str | None:
        """Why a link would be invalid, or ``None`` if it is fine."""
        for nid in (src, dst):
            if nid not in self.nodes:
                return f"no node {nid!r}"
        s_spec, d_spec = self.spec(src), self.spec(dst)
        if s_spec is None or d_spec is None:
            return "cannot link a node of unknown type"
        out = s_spec.output(src_port)
        if out is None:
            return f"{src} ({s_spec.type}) has no output {src_port!r}; outputs: {', '.join(p.name for p in s_spec.outputs)}"
        inp = d_spec.input(dst_port, self.nodes[dst].params)
        if inp is None:
            names = ", ".join(p.name for p in d_spec.input_ports(self.nodes[dst].params))
            return f"{dst} ({d_spec.type}) has no input {dst_port!r}; inputs: {names}"
        if not inp.port_type.accepts(out.port_type):
            return f"type mismatch: {src}.{src_port} gives {out.type}, {dst}.{dst_port} takes {inp.type}"
        if src == dst or (src in self.nodes and dst in self.nodes and
                          nx.has_path(self.to_networkx(), dst, src)):
            return f"linking {src} to {dst} would make a cycle"
        return None

    def unlink(self, dst: str, dst_port: str) -> Link | None:
        for i, l in enumerate(self.links):
            if l.dst == dst and l.dst_port == dst_port:
                return self.links.pop(i)
        return None

    def incoming(self, node_id: str) -> dict[str, Link]:
        return {l.dst_port: l for l in self.links if l.dst == node_id}

    def main_input(self, node_id: str) -> str:
        """The input port whose image a node's result derives from (keeps its source file and,
        in PixInsight's terms, its view): PixelMath's target, LinearFit's and Register's target,
        DetailFit's narrow, else ``image``."""
        node = self.node(node_id)
        if node.type == "PixelMath":
            params = self.effective_params(node_id)
            return params.get("target") or (params.get("inputs") or ["image"])[0]
        return MAIN_INPUTS.get(node.type, "image")

    def set(self, target: str, value: Any, *, parse: bool = False) -> None:
        """Set a parameter by ``"node.param"``; with ``parse`` the value is command-line text.

        A relative path given here resolves against the current folder (as on the command line),
        not against the graph file's folder: ``g.set("narrow.path", "N.fits")`` means ./N.fits.
        A template (a value that starts with one of the parameter's placeholders) is kept as it is."""
        if "." not in target:
            raise MsgrError(f"{target!r}: expected NODE.PARAM, e.g. narrow.path")
        node_id, name = target.split(".", 1)
        node = self.node(node_id)
        spec = self.registry.get(node.type)
        if spec is None:
            raise MsgrError(f"{node_id}: unknown node type {node.type!r}")
        p = spec.param(name)
        if p is not None and p.kind == "path" and isinstance(value, (str, os.PathLike)) and str(value) \
                and not p.is_template(str(value)):
            value = str(Path(os.path.expanduser(str(value))).absolute())
        self._set_param(node, spec, name, value, parse=parse)

    def get(self, target: str) -> Any:
        node_id, name = target.split(".", 1)
        node = self.node(node_id)
        spec = self.registry.get(node.type)
        return spec.effective_params(node.params)[name] if spec else node.params.get(name)

    def _set_param(self, node: Node, spec: NodeSpec, name: str, value: Any, parse: bool = False) -> None:
        p = spec.param(name)
        if p is None:
            raise MsgrError(f"{node.id}: {spec.type} has no parameter {name!r}; "
                            f"parameters: {', '.join(q.name for q in spec.params)}")
        try:
            if parse and isinstance(value, str):
                value = p.parse(value)
            node.params[name] = p.coerce(value)
        except ValueError as exc:
            raise MsgrError(f"{node.id}.{name}: {exc}") from None

    # ------------------------------------------------------------------ queries
    def to_networkx(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        for l in self.links:
            if l.src in self.nodes and l.dst in self.nodes:
                g.add_edge(l.src, l.dst)
        return g

    def resolve_path(self, value: str) -> str:
        """A path as an absolute path: ``~`` expanded, relative to ``base_dir``."""
        p = Path(os.path.expanduser(value))
        return str(p if p.is_absolute() else (self.base_dir / p).resolve())

    def effective_params(self, node_id: str) -> dict[str, Any]:
        """Every parameter of a node (defaults filled), path parameters resolved."""
        node = self.node(node_id)
        spec = self.registry.get(node.type)
        if spec is None:
            return dict(node.params)
        params = spec.effective_params(node.params)
        for p in spec.params:
            if p.kind == "path" and params.get(p.name) and not p.is_template(params[p.name]):
                params[p.name] = self.resolve_path(params[p.name])
        return params

    def path_params(self) -> Iterable[tuple[str, Any, str]]:
        """(node id, Param, resolved value) of every path parameter that is set, on nodes of known types."""
        for nid, node in self.nodes.items():
            spec = self.registry.get(node.type)
            if spec is None:
                continue
            params = self.effective_params(nid)
            for p in spec.params:
                value = params.get(p.name)
                if p.kind == "path" and value and isinstance(value, str):
                    yield nid, p, value

    # ------------------------------------------------------------------ validation
    def validate(self, files: bool = True) -> list[Problem]:
        """Every problem in the graph, each naming its node and what to change.

        With ``files`` (the default) input files must exist and output folders too; without, only
        the graph itself is judged (the executor runs what it can and fails the nodes whose
        files are missing, so the editor can still run the other branches)."""
        problems: list[Problem] = []
        for nid, node in self.nodes.items():
            spec = self.registry.get(node.type)
            if spec is None:
                problems.append(Problem(nid, f"unknown node type {node.type!r}: install the node pack "
                                             f"that provides it, or remove the node (known types: "
                                             f"{', '.join(self.registry.types())})"))
                continue
            if node.version > spec.version:
                problems.append(Problem(nid, f"made with {node.type} version {node.version}, but this "
                                             f"msgr-nodes knows version {spec.version}: upgrade msgr-nodes"))
            for name, value in node.params.items():
                p = spec.param(name)
                if p is None:
                    problems.append(Problem(nid, f"{node.type} has no parameter {name!r}; remove it "
                                                 f"(parameters: {', '.join(q.name for q in spec.params)})", name))
                    continue
                if p.required and value in (None, ""):
                    continue  # reported once below
                try:
                    p.coerce(value)
                except ValueError as exc:
                    problems.append(Problem(nid, str(exc), name))
            eff = spec.effective_params(node.params)
            for p in spec.params:
                if p.required and (eff.get(p.name) in (None, "")):
                    problems.append(Problem(nid, f"is required: set it ({p.help})", p.name))
            if spec.check is not None:
                try:
                    problems.extend(Problem(nid, msg) for msg in spec.check(eff))
                except Exception as exc:  # a check must never crash validation
                    problems.append(Problem(nid, f"parameter check failed: {exc}"))
        linked: dict[tuple[str, str], int] = {}
        for l in self.links:
            key = (l.dst, l.dst_port)
            linked[key] = linked.get(key, 0) + 1
            if l.src not in self.nodes or l.dst not in self.nodes:
                missing = l.src if l.src not in self.nodes else l.dst
                problems.append(Problem(l.dst if l.dst in self.nodes else None,
                                        f"link {l.src}.{l.src_port} -> {l.dst}.{l.dst_port} names "
                                        f"a missing node {missing!r}: remove the link"))
                continue
            s_spec, d_spec = self.spec(l.src), self.spec(l.dst)
            if s_spec is None or d_spec is None:
                continue
            out = s_spec.output(l.src_port)
            inp = d_spec.input(l.dst_port, self.nodes[l.dst].params)
            if out is None:
                problems.append(Problem(l.src, f"has no output {l.src_port!r} (outputs: "
                                               f"{', '.join(p.name for p in s_spec.outputs)}); relink {l.dst}.{l.dst_port}"))
            if inp is None:
                problems.append(Problem(l.dst, f"has no input {l.dst_port!r} (inputs: "
                                               f"{', '.join(p.name for p in d_spec.input_ports(self.nodes[l.dst].params))})"))
            if out is not None and inp is not None and not inp.port_type.accepts(out.port_type):
                problems.append(Problem(l.dst, f"input {l.dst_port!r} takes {inp.type} but is linked to "
                                               f"{l.src}.{l.src_port}, which gives {out.type}"))
        for (dst, port), n in linked.items():
            if n > 1:
                problems.append(Problem(dst, f"input {port!r} has {n} links; keep one"))
        for nid, node in self.nodes.items():
            spec = self.registry.get(node.type)
            if spec is None:
                continue
            have = self.incoming(nid)
            for port in spec.input_ports(node.params):
                if not port.optional and port.name not in have:
                    problems.append(Problem(nid, f"input {port.name!r} ({port.type}) is not connected: "
                                                 f"link an output to it"))
        problems.extend(self._file_problems(files))
        g = self.to_networkx()
        seen: set[frozenset] = set()
        for cycle in nx.simple_cycles(g):
            key = frozenset(cycle)
            if key in seen:
                continue
            seen.add(key)
            problems.append(Problem(cycle[0], "is on a cycle " + " -> ".join(cycle + [cycle[0]]) +
                                    ": remove one of these links"))
            if len(seen) >= 10:
                break
        return problems

    def _file_problems(self, existence: bool) -> list[Problem]:
        """Outputs that two nodes would write (the file would hold one or the other at random)
        and, with ``existence``, input files and output folders that are missing."""
        problems: list[Problem] = []
        writers: dict[tuple, list[str]] = {}
        dag = None  # built once, for the first output named by a template
        for nid, p, value in self.path_params():
            if p.reads:
                if not existence:
                    continue
                if not os.path.exists(value):
                    problems.append(Problem(nid, f"{value}: no such file; check the path", p.name))
                elif os.path.isdir(value):
                    problems.append(Problem(nid, f"{value}: is a folder, not a file", p.name))
            elif p.writes:
                if p.is_template(value):
                    # filled in from the image's source at run time: the same template fed from
                    # the same inputs names the same file
                    dag = dag if dag is not None else self.to_networkx()
                    sources = tuple(sorted(a for a in nx.ancestors(dag, nid)
                                           if any(q.reads for q in getattr(self.spec(a), "params", ()))))
                    writers.setdefault((value, sources), []).append(nid)
                    continue
                writers.setdefault((os.path.realpath(value), ()), []).append(nid)
                folder = os.path.dirname(value)
                if existence and folder and not os.path.isdir(folder):
                    problems.append(Problem(nid, f"{value}: the folder {folder} does not exist; "
                                                 f"create it or choose another path", p.name))
        for (path, _), nodes in writers.items():
            if len(nodes) > 1:
                problems.append(Problem(nodes[1], f"writes {path}, as {' and '.join(nodes[:-1])} does: "
                                                  f"give each output its own path", "path"))
        return problems

    def check(self, files: bool = True) -> None:
        """Raise :class:`GraphInvalid` with every problem, if there are any (``files``: see validate)."""
        problems = self.validate(files)
        if problems:
            raise GraphInvalid(problems)

    def copy(self) -> "GraphModel":
        """A deep copy (same registry and class)."""
        g = type(self)(self.registry, self.base_dir)
        g.nodes = copy.deepcopy(self.nodes)
        g.links = copy.deepcopy(self.links)
        g.meta = copy.deepcopy(self.meta)
        g.extra = copy.deepcopy(self.extra)
        g.path = self.path
        return g
