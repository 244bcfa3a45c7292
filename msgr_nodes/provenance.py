"""Provenance: the graph that produced an output, stored inside saved images."""
from __future__ import annotations

import json

import networkx as nx

from .graphfile import dumps


def graph_for_output(graph_json: str, node_id: str) -> str:
    """Reduce a run's graph JSON to ``node_id`` and its ancestors (the nodes that made its input)."""
    data = json.loads(graph_json)
    g = nx.DiGraph()
    g.add_nodes_from(data["nodes"])
    for link in data["links"]:
        g.add_edge(link["from"][0], link["to"][0])
    keep = nx.ancestors(g, node_id) | {node_id}
    data["nodes"] = {k: v for k, v in data["nodes"].items() if k in keep}
    data["links"] = [l for l in data["links"] if l["from"][0] in keep and l["to"][0] in keep]
    data.setdefault("meta", {})["produced_by"] = node_id
    return dumps(data)
