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
from dataclasses import dataclass
from pathlib import Path

from ..commandline import command_line, python_script
from ..errors import MsgrError
from ..graph import Graph
from ..stock import stock_name_of
from .commands import AddNode, Command, Paste, RemoveNodes


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
        self.template: str | None = None  # the stock graph this one was opened from (saved elsewhere)
        self.settings_dir = Path(settings_dir) if settings_dir else Path.home() / ".config" / "msgr-nodes"

    # -------------------------------------------------------------- files
    @classmethod
    def open(cls, path: str | os.PathLike, settings_dir=None) -> "EditorState":
        """Open a graph file, or a stock graph (by name or file) as a template: it has no file
        of its own, so the first save asks for one and the stock file is never written."""
        g = Graph.load(path)
        template = stock_name_of(g.path)
        st = cls(g, None if template else path, settings_dir)
        st.template = template
        st._saved_text = Path(g.path).read_text("utf-8")
        if template is None:
            st.add_recent(path)
        return st

    @classmethod
    def from_xpsm(cls, path: str | os.PathLike, settings_dir=None) -> tuple["EditorState", list[str]]:
        """A PixInsight icon set as a new, unsaved graph; and the import's warnings."""
        graph, warnings = Graph.from_xpsm(path, with_warnings=True)
        st = cls(graph, None, settings_dir)
        st._saved_text = None  # nothing saved yet: closing asks, Save asks for a file
        return st, warnings

    def export_xpsm(self, path: str | os.PathLike) -> int:
        """Write the graph as a PixInsight icon set (replacing the file: the dialog asked)."""
        return self.graph.to_xpsm(path, overwrite=True)

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
        """Save to ``path`` (or the current file). Unchanged graphs are not rewritten (byte-stable).
        A stock graph's file is never written: a template needs a file name of its own. Paths
        inside the graph file's folder are stored relative to it, so a project folder can move."""
        target = Path(path) if path else self.path
        if target is None:
            what = f"{self.template} is a stock graph (a template)" if self.template else "no file name yet"
            raise MsgrError(f"{what}: use Save As to give it a file of its own")
        if stock_name_of(target) is not None:
            raise MsgrError(f"{target}: is the stock graph {stock_name_of(target)!r}, shipped with msgr-nodes; "
                            f"save under another name")
        text = self.graph.to_json()
        if target == self.path and target.exists() and target.read_text("utf-8") == text:
            return target
        self._relative_paths(target.resolve().parent)
        self.graph.save(target)
        self.template = None
        self.path = target
        self._saved_text = self.graph.to_json()
        self.add_recent(target)
        return target

    def _relative_paths(self, folder: Path) -> None:
        """Store path parameters inside ``folder`` relative to it, and resolve paths against it."""
        for nid, p, value in list(self.graph.path_params()):
            if os.path.isabs(value):
                rel = os.path.relpath(value, folder)
                stored = rel if not rel.startswith("..") else value
            else:
                stored = value  # a template ({source_stem}...) stays as it is
            if self.graph.nodes[nid].params.get(p.name) != stored:
                self.graph.nodes[nid].params[p.name] = stored
        self.graph.base_dir = folder

    def as_command(self) -> str:
        """The ``msgr-nodes run`` line that runs the graph as it is now: the graph's file (or the
        stock graph it came from) and a ``-s`` for each parameter that differs from that file."""
        return command_line(self.graph, self._reference(), self.path or self.template or "GRAPH.json")

    def as_python(self) -> str:
        """The same as a Python script."""
        return python_script(self.graph, self._reference(), self.path or self.template or "GRAPH.json")

    def _reference(self) -> Graph | None:
        if self._saved_text is None or (self.path is None and self.template is None):
            return None
        return Graph.loads(self._saved_text, self.graph.registry, self.graph.base_dir)

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
