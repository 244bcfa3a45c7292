"""The editor's undoable edits of a graph: each command does and undoes one change (add or
remove nodes, link, unlink, set a parameter or a label, move, paste). No GUI import.

Thread: the GUI thread (through :meth:`EditorState.apply`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

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
