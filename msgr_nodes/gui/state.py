"""Editor state without any GUI import: the graph being edited, undo/redo, selection, clipboard,
node run states, the previewed nodes and recent files. The dearpygui layer only draws this and
calls its methods, so everything here is unit-tested without a window.

Threads: the GUI thread calls everything here, except :meth:`EditorState.on_event`, which the run
thread calls with executor events; it only updates ``runs``, ``log`` and ``version`` (one
attribute store or list append each), which the GUI thread reads on its next frame.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MsgrError
from ..graph import Graph, Link, Node


class Command:
    """An undoable edit of the graph."""

    label = "edit"

    def do(self, g: Graph) -> None:
        raise NotImplementedError

    def undo(self, g: Graph) -> None:
        raise NotImplementedError


@dataclass
class AddNode(Command):
    """Add a node (type, id, params, position)."""

    type: str
    node_id: str | None = None
    params: dict = field(default_factory=dict)
    pos: tuple[float, float] = (0.0, 0.0)
    label: str = ""
    _node: Node | None = None

    def do(self, g):
        if self._node is None:
            self._node = g.add_node(self.type, self.node_id, self.params, self.label, self.pos)
            self.node_id = self._node.id
        else:
            g.insert_node(copy.deepcopy(self._node))

    def undo(self, g):
        g.remove_node(self.node_id)


@dataclass
class RemoveNodes(Command):
    """Remove nodes and every link that touches them."""

    node_ids: list[str]
    _before: tuple = ()

    def do(self, g):
        self._before = (dict(g.nodes), list(g.links))  # order of nodes and links, restored exactly by undo
        for nid in self.node_ids:
            g.remove_node(nid)

    def undo(self, g):
        g.nodes, g.links = dict(self._before[0]), list(self._before[1])


@dataclass
class AddLink(Command):
    """Connect an output to an input (replacing the input's previous link); refused with a reason."""

    src: str
    src_port: str
    dst: str
    dst_port: str
    _replaced: Link | None = None

    def do(self, g):
        self._replaced = g.link(self.src, self.src_port, self.dst, self.dst_port)

    def undo(self, g):
        g.unlink(self.dst, self.dst_port)
        if self._replaced is not None:
            g.links.append(self._replaced)


@dataclass
class RemoveLink(Command):
    """Disconnect an input."""

    dst: str
    dst_port: str
    _link: Link | None = None

    def do(self, g):
        self._link = g.unlink(self.dst, self.dst_port)

    def undo(self, g):
        if self._link is not None:
            g.links.append(self._link)


@dataclass
class SetParam(Command):
    """Set one parameter (validated against the node's spec)."""

    node_id: str
    name: str
    value: Any
    _old: Any = None
    _had: bool = False

    def do(self, g):
        node = g.node(self.node_id)
        self._had = self.name in node.params
        self._old = node.params.get(self.name)
        g.set(f"{self.node_id}.{self.name}", self.value)

    def undo(self, g):
        node = g.node(self.node_id)
        if self._had:
            node.params[self.name] = self._old
        else:
            node.params.pop(self.name, None)


@dataclass
class MoveNodes(Command):
    """Move nodes to new positions."""

    positions: dict[str, tuple[float, float]]
    _old: dict = field(default_factory=dict)

    def do(self, g):
        self._old = {nid: g.node(nid).pos for nid in self.positions}
        for nid, pos in self.positions.items():
            g.node(nid).pos = (float(pos[0]), float(pos[1]))

    def undo(self, g):
        for nid, pos in self._old.items():
            g.node(nid).pos = pos


@dataclass
class SetLabel(Command):
    """Rename a node's label."""

    node_id: str
    label: str
    _old: str = ""

    def do(self, g):
        self._old = g.node(self.node_id).label
        g.node(self.node_id).label = self.label

    def undo(self, g):
        g.node(self.node_id).label = self._old


@dataclass
class Paste(Command):
    """Insert copied nodes (new ids, offset positions) with the links among them."""

    clip: dict
    offset: tuple[float, float] = (40.0, 40.0)
    new_ids: list[str] = field(default_factory=list)

    def do(self, g):
        mapping = {}
        self.new_ids = []
        for old_id, nd in self.clip["nodes"].items():
            new_id, i = old_id, 2
            while new_id in g.nodes:
                new_id, i = f"{old_id}_{i}", i + 1
            node = Node(new_id, nd["type"], nd["version"], nd["label"], copy.deepcopy(nd["params"]),
                        (nd["pos"][0] + self.offset[0], nd["pos"][1] + self.offset[1]))
            g.insert_node(node)
            mapping[old_id] = node.id
            self.new_ids.append(node.id)
        for src, sp, dst, dp in self.clip["links"]:
            g.links.append(Link(mapping[src], sp, mapping[dst], dp))

    def undo(self, g):
        for nid in self.new_ids:
            g.remove_node(nid)


@dataclass
class NodeRun:
    """What the last run did to a node (drawn as the node's colour and status line)."""

    state: str = "idle"
    fraction: float = 0.0
    message: str = ""
    seconds: float | None = None


class EditorState:
    """The editor's model: one graph, its file, undo/redo, selection, clipboard, run states."""

    MAX_RECENT = 10

    def __init__(self, graph: Graph | None = None, path: str | os.PathLike | None = None,
                 settings_dir: str | os.PathLike | None = None):
        self.graph = graph or Graph()
        self.path = Path(path) if path else None
        self.undo_stack: list[Command] = []
        self.redo_stack: list[Command] = []
        self.selection: list[str] = []
        self.clipboard: dict | None = None
        self.runs: dict[str, NodeRun] = {}
        self.preview: str | None = None
        self.compare: str | None = None
        self.log: list[str] = []
        self.version = 0  # bumped by every run event: the window redraws node states only when it changes
        self._saved_text = self.graph.to_json() if graph is not None else None
        self.settings_dir = Path(settings_dir) if settings_dir else Path.home() / ".config" / "msgr-nodes"

    # -------------------------------------------------------------- files
    @classmethod
    def open(cls, path: str | os.PathLike, settings_dir=None) -> "EditorState":
        g = Graph.load(path)
        st = cls(g, path, settings_dir)
        st._saved_text = Path(path).read_text("utf-8")
        st.add_recent(path)
        return st

    @classmethod
    def sample(cls, settings_dir=None, graph: Graph | None = None, path=None) -> "EditorState":
        """A graph with the bundled sample pair as its inputs: ``graph`` when it has Load nodes
        ``narrow`` and ``wide`` (a stock graph), else the recommended MSGR graph."""
        from ..stock import asset, stock_graph

        usable = graph is not None and all(
            n in graph.nodes and graph.nodes[n].type == "Load" for n in ("narrow", "wide"))
        g = graph.copy() if usable else Graph.load(stock_graph("msgr_additive.json"))
        if not usable:
            path = None
        g.set("narrow.path", str(asset("narrow.fits.fz")))
        g.set("wide.path", str(asset("wide.fits.fz")))
        out = Path.home() / "msgr-sample"
        out.mkdir(exist_ok=True)  # Save writes into an existing folder only
        for nid, name in (("save", "narrow_msgr.fits"), ("save_model", "narrow_msgr_model.fits")):
            if nid in g.nodes and g.nodes[nid].type == "Save":
                g.set(f"{nid}.path", str(out / name))
        for nid in ("save", "save_model"):
            if nid in g.nodes and g.nodes[nid].type == "Save":
                g.set(f"{nid}.overwrite", True)
        st = cls(g, path, settings_dir)
        st.sample_output = out
        return st

    def new(self) -> None:
        self.__init__(Graph(), None, self.settings_dir)
        self._saved_text = self.graph.to_json()

    @property
    def dirty(self) -> bool:
        return self.graph.to_json() != self._saved_text

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Save to ``path`` (or the current file). Unchanged graphs are not rewritten (byte-stable)."""
        target = Path(path) if path else self.path
        if target is None:
            raise MsgrError("no file name yet: use Save As")
        text = self.graph.to_json()
        if target == self.path and target.exists() and target.read_text("utf-8") == text:
            return target
        if path is not None:
            self.graph.base_dir = target.resolve().parent
        self.graph.save(target)
        self.path = target
        self._saved_text = self.graph.to_json()
        self.add_recent(target)
        return target

    def recent(self) -> list[str]:
        f = self.settings_dir / "recent.json"
        try:
            return [p for p in json.loads(f.read_text("utf-8")) if isinstance(p, str)]
        except (OSError, ValueError):
            return []

    def add_recent(self, path) -> None:
        items = [str(Path(path).resolve())] + [p for p in self.recent() if p != str(Path(path).resolve())]
        try:
            self.settings_dir.mkdir(parents=True, exist_ok=True)
            (self.settings_dir / "recent.json").write_text(json.dumps(items[: self.MAX_RECENT]), "utf-8")
        except OSError:
            pass  # a read-only home must not break the editor

    # -------------------------------------------------------------- edits
    def apply(self, cmd: Command) -> Command:
        """Do an edit and push it on the undo stack (a refused edit raises and changes nothing)."""
        cmd.do(self.graph)
        self.undo_stack.append(cmd)
        self.redo_stack.clear()
        return cmd

    def undo(self) -> Command | None:
        if not self.undo_stack:
            return None
        cmd = self.undo_stack.pop()
        cmd.undo(self.graph)
        self.redo_stack.append(cmd)
        self.selection = [n for n in self.selection if n in self.graph.nodes]
        return cmd

    def redo(self) -> Command | None:
        if not self.redo_stack:
            return None
        cmd = self.redo_stack.pop()
        cmd.do(self.graph)
        self.undo_stack.append(cmd)
        return cmd

    def add_node(self, type_name: str, pos=(0.0, 0.0), params: dict | None = None) -> str:
        return self.apply(AddNode(type_name, None, params or {}, pos)).node_id

    def delete_selection(self) -> None:
        if self.selection:
            self.apply(RemoveNodes(list(self.selection)))
            self.selection = []

    def copy_selection(self) -> None:
        keep = set(self.selection)
        if not keep:
            return
        nodes = {nid: {"type": n.type, "version": n.version, "label": n.label, "params": copy.deepcopy(n.params),
                       "pos": list(n.pos)} for nid, n in self.graph.nodes.items() if nid in keep}
        links = [(l.src, l.src_port, l.dst, l.dst_port) for l in self.graph.links if l.src in keep and l.dst in keep]
        self.clipboard = {"nodes": nodes, "links": links}

    def paste(self) -> list[str]:
        if not self.clipboard:
            return []
        cmd = self.apply(Paste(copy.deepcopy(self.clipboard)))
        self.selection = list(cmd.new_ids)
        return cmd.new_ids

    def duplicate_selection(self) -> list[str]:
        self.copy_selection()
        return self.paste()

    # -------------------------------------------------------------- validation and runs
    def problems_by_node(self) -> dict[str | None, list[str]]:
        out: dict[str | None, list[str]] = {}
        for p in self.graph.validate():
            out.setdefault(p.node, []).append(p.message if p.param is None else f"{p.param}: {p.message}")
        return out

    def on_event(self, ev) -> None:
        """Executor events -> node run states and log lines (called from the run thread)."""
        self.version += 1
        run = self.runs.setdefault(ev.node, NodeRun())
        if ev.kind == "started":
            run.state, run.fraction, run.message = "running", 0.0, ""
        elif ev.kind == "progress":
            run.state, run.fraction, run.message = "running", ev.fraction or 0.0, ev.message
        elif ev.kind == "finished":
            run.state, run.fraction, run.seconds = ("cached" if ev.cached else "done"), 1.0, ev.seconds
        elif ev.kind in ("failed", "skipped", "cancelled"):
            run.state, run.message = ev.kind, ev.message
        if ev.kind != "progress":
            label = self.graph.nodes[ev.node].label if ev.node in self.graph.nodes else ev.node
            extra = f": {ev.message}" if ev.message else (f" in {ev.seconds:.2f} s" if ev.seconds else "")
            self.log.append(f"[{label or ev.node}] {('cached' if ev.cached else ev.kind)}{extra}")

    def mark_queued(self, nodes) -> None:
        for nid in nodes:
            self.runs[nid] = NodeRun("queued")
