"""The graph as scripts, the command line and the editor use it: the model of
:mod:`msgr_nodes.model` with loading, saving and running on the same object::

    g = Graph.load("msgr_additive")
    g.set("narrow.path", "N.fits")
    result = g.run()

This module sits above the model, the graph file format and the executor, so that none of
those three imports another's caller.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from .executor import Executor, RunResult
from .graphfile import dumps, graph_from_dict, graph_to_dict, load_graph, loads_graph, save_graph
from .model import GraphModel, Link, Node
from .pixinsight import export_xpsm, import_xpsm
from .registry import Registry

__all__ = ["Graph", "Link", "Node"]


class Graph(GraphModel):
    """A processing graph that can be loaded, saved and run (see :class:`GraphModel`)."""

    @classmethod
    def load(cls, path: str | os.PathLike, registry: Registry | None = None) -> "Graph":
        """Read a graph file, or a stock graph by name (see :func:`graphfile.load_graph`)."""
        return load_graph(path, registry, cls=cls)

    @classmethod
    def loads(cls, text: str, registry: Registry | None = None,
              base_dir: str | os.PathLike | None = None) -> "Graph":
        """Parse graph-file text (see :func:`graphfile.loads_graph`)."""
        return loads_graph(text, registry, base_dir, cls=cls)

    @classmethod
    def from_dict(cls, data: dict, registry: Registry | None = None,
                  base_dir: str | os.PathLike | None = None) -> "Graph":
        return graph_from_dict(data, registry, base_dir, cls=cls)

    @classmethod
    def from_xpsm(cls, path: str | os.PathLike, registry: Registry | None = None, *,
                  with_warnings: bool = False):
        """A PixInsight icon set as a graph (see :mod:`msgr_nodes.pixinsight`); with
        ``with_warnings``, (graph, warnings about what was not mapped or linked)."""
        graph, warnings = import_xpsm(path, registry, cls)
        graph.base_dir = Path(path).resolve().parent
        return (graph, warnings) if with_warnings else graph

    def to_xpsm(self, path: str | os.PathLike, overwrite: bool = False) -> int:
        """Write the graph as a PixInsight icon set; returns the number of icons."""
        return export_xpsm(self, path, overwrite)

    def to_dict(self) -> dict:
        return graph_to_dict(self)

    def to_json(self) -> str:
        return dumps(self.to_dict())

    def save(self, path: str | os.PathLike) -> None:
        """Write the graph file atomically; relative paths stay as they are."""
        save_graph(self, path)

    def run(self, outputs: Iterable[str] | None = None, **executor_options: Any) -> RunResult:
        """Validate and run the graph once; ``executor_options`` go to :class:`Executor`."""
        return Executor(**executor_options).run(self, outputs)
