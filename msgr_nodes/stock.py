"""What ships with the package: the stock graphs (``msgr_nodes.graphs``) and the sample pair
(``msgr_nodes.assets``), found by name in a checkout and in an install alike."""
from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from .errors import MsgrError


def asset(name: str) -> Path:
    """Path of a bundled sample file (package data in msgr_nodes.assets)."""
    return Path(str(resources.files("msgr_nodes.assets") / name))


def stock_graph(name: str) -> Path:
    """Path of a stock graph shipped with the package, by name with or without ``.json``."""
    file = name if name.endswith(".json") else f"{name}.json"
    p = Path(str(resources.files("msgr_nodes.graphs") / file))
    if not p.is_file():
        raise MsgrError(f"{name}: no such stock graph; stock graphs: {', '.join(stock_graph_names())}")
    return p


def stock_graph_names() -> list[str]:
    """The names of the installed stock graphs (file names without ``.json``), sorted."""
    folder = resources.files("msgr_nodes.graphs")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def stock_graph_titles() -> dict[str, str]:
    """Each stock graph's name and the title from its ``meta``."""
    out = {}
    for name in stock_graph_names():
        try:
            out[name] = json.loads(stock_graph(name).read_text("utf-8")).get("meta", {}).get("title", "")
        except (OSError, ValueError):
            out[name] = "(unreadable)"
    return out


def stock_name_of(path: str | os.PathLike) -> str | None:
    """The stock graph's name if ``path`` is one of the shipped stock graph files, else None."""
    try:
        real = Path(path).resolve()
    except OSError:
        return None
    for name in stock_graph_names():
        if stock_graph(name).resolve() == real:
            return name
    return None


def resolve_graph(arg: str | os.PathLike) -> Path:
    """A graph argument as a file: an existing path wins; else a bare name (``msgr``,
    ``msgr_additive.json``) names a stock graph; else the path is returned unchanged
    (reading it then says that it does not exist)."""
    p = Path(arg)
    if p.exists() or len(p.parts) != 1:
        return p
    try:
        return stock_graph(str(arg))
    except MsgrError:
        return p
