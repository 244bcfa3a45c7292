"""PixInsight icon sets (.xpsm) as graphs and back: :func:`import_xpsm`, :func:`export_xpsm`.

``importer`` turns icons into nodes and infers links from view names, ``exporter`` writes one
instance and icon per node, ``mapping`` says which process each node type is and how parameters
correspond; the file format itself is :mod:`msgr_nodes.io.xpsm`.
"""
from __future__ import annotations

import os

from ..errors import MsgrError
from ..io.xpsm import read_xpsm, write_xpsm
from ..model import GraphModel
from .exporter import iconset_from_graph
from .importer import graph_from_iconset
from .mapping import mapping_markdown

__all__ = ["import_xpsm", "export_xpsm", "graph_from_iconset", "iconset_from_graph", "mapping_markdown"]


def import_xpsm(path: str | os.PathLike, registry=None,
                cls: type[GraphModel] = GraphModel) -> tuple[GraphModel, list[str]]:
    """Read an icon set as a graph; returns (graph, warnings about what was not mapped or linked)."""
    return graph_from_iconset(read_xpsm(path), registry, cls, source=os.path.basename(str(path)))


def export_xpsm(graph: GraphModel, path: str | os.PathLike, overwrite: bool = False) -> int:
    """Write a graph as an icon set (atomically; an existing file only with ``overwrite``);
    returns the number of icons."""
    icons = iconset_from_graph(graph)
    try:
        write_xpsm(icons, path, overwrite)
    except FileExistsError:  # the atomic write never replaces an existing file without overwrite
        raise MsgrError(f"{path}: already exists; pass --overwrite to replace it") from None
    return len(icons.icons)
