"""Provenance: the graph that produced an output, stored inside saved images, and the
files a graph reads (which an output never replaces)."""
from __future__ import annotations

import json
import os

import networkx as nx

from .graphfile import dumps, graph_to_dict
from .model import GraphModel
from .version import __version__


def graph_as_run(graph: GraphModel) -> str:
    """The graph as run, as graph-file JSON: every parameter explicit and every path absolute."""
    g = graph.copy()
    for nid, node in g.nodes.items():
        if graph.registry.get(node.type) is not None:
            node.params = graph.effective_params(nid)
    g.meta["run_with"] = f"msgr-nodes {__version__}"
    return dumps(graph_to_dict(g))


def files_read(graph: GraphModel) -> frozenset[str]:
    """Real paths of the files that nodes of ``graph`` read (parameters marked ``reads``)."""
    return frozenset(os.path.realpath(value) for _, p, value in graph.path_params() if p.reads)


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
