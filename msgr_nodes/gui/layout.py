"""Arrange a graph as layers of its DAG, without overlaps (Edit > Arrange, and the stock graphs).

Pure functions of the graph and the node sizes, no GUI import; the app measures the sizes of the
drawn nodes (or :func:`estimated_size` guesses them), so the layout is tested without a window.
Thread: whichever calls it (the editor's GUI thread).
"""
from __future__ import annotations

import networkx as nx

from ..model import GraphModel

GAP_X, GAP_Y = 40.0, 20.0
ORIGIN = (20.0, 20.0)
CHAR_W, LINE_H = 7.0, 21.0   # dearpygui's default font: pixels per character and per text line


def estimated_size(graph: GraphModel, nid: str) -> tuple[float, float]:
    """A node's drawn size (w, h) in px, from its title and pins (for graphs not drawn yet)."""
    node = graph.nodes[nid]
    spec = graph.registry.get(node.type)
    lines = [f"{node.label or nid}  [{node.type}]"]
    if spec is not None:
        lines += [f"{p.name}: {p.type} (optional)" for p in spec.input_ports(node.params)]
        lines += [" " * 12 + f"{p.name}: {p.type}" for p in spec.outputs]
    width = max(len(t) for t in lines) * CHAR_W + 30
    return max(width, 180.0), (len(lines) + 2) * LINE_H + 20


def layered_positions(graph: GraphModel, sizes: dict[str, tuple[float, float]],
                      max_width: float = 1000.0) -> dict[str, tuple[float, float]]:
    """Top-left positions: one column per DAG layer (a node sits right of everything it reads),
    nodes of a column stacked in the order that keeps links short; columns that would reach past
    ``max_width`` (the canvas's width) continue in a band below, so the graph fits the view. No
    two (x, y, w, h) boxes overlap. ``sizes`` maps node id -> (w, h); a graph with a cycle keeps
    its file order."""
    g = graph.to_networkx()
    try:
        layers = [sorted(layer, key=list(graph.nodes).index) for layer in nx.topological_generations(g)]
    except nx.NetworkXUnfeasible:
        layers = [list(graph.nodes)]
    # a node goes to the column just before its first consumer when it feeds nothing earlier
    # (a Load used late stays beside its user instead of at the far left)
    column = {n: i for i, layer in enumerate(layers) for n in layer}
    for n in reversed(list(nx.topological_sort(g)) if len(layers) > 1 else []):
        succ = [column[s] for s in g.successors(n)]
        if succ:
            column[n] = max(column[n], min(succ) - 1)
    columns: list[list[str]] = [[] for _ in range(max(column.values(), default=-1) + 1)]
    for n in graph.nodes:
        columns[column[n]].append(n)
    rank: dict[str, float] = {}
    positions: dict[str, tuple[float, float]] = {}
    x, top, bottom = ORIGIN[0], ORIGIN[1], ORIGIN[1]
    for col in columns:
        # order by the mean row of what feeds each node (barycentre), then file order
        col.sort(key=lambda n: (sum(rank[p] for p in g.predecessors(n) if p in rank) /
                                max(1, sum(1 for p in g.predecessors(n) if p in rank)), list(graph.nodes).index(n)))
        width = max((sizes[n][0] for n in col), default=0.0)
        if x > ORIGIN[0] and x + width > max_width:  # a new band below the last one
            x, top = ORIGIN[0], bottom + GAP_Y
        y = top
        for i, n in enumerate(col):
            rank[n] = i
            positions[n] = (x, y)
            y += sizes[n][1] + GAP_Y
        bottom = max(bottom, y - GAP_Y)
        x += width + GAP_X
    return positions


def overlaps(boxes: dict[str, tuple[float, float, float, float]]) -> list[tuple[str, str]]:
    """Pairs of (x, y, w, h) boxes that overlap."""
    items = list(boxes.items())
    out = []
    for i, (a, (ax, ay, aw, ah)) in enumerate(items):
        for b, (bx, by, bw, bh) in items[i + 1:]:
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                out.append((a, b))
    return out
