"""A graph as a PixInsight icon set: one instance and one icon per node.

Nodes with a PixInsight equivalent become that process, with PixInsight's parameter spellings;
the others (Load, Save, DetailFit, LargeScales) become an empty ProcessContainer named after
the node. Every instance of a node made in msgr-nodes carries the node (type, parameters,
links) as JSON in its description, so importing the file gives the same graph back. Nodes that
came from an imported icon set go back as the instance they came from, with the parameters we
map updated, and inside the ProcessContainer they came from.
"""
from __future__ import annotations

import json
import re

from ..io.xpsm import Icon, IconSet, Instance, Param, Table, parse_instance
from ..model import GraphModel
from ..ops.mmt import parse_layers
from .mapping import BY_TYPE, MARKER, XPOS_SCALE, YPOS_SCALE, to_pi

NEUTRAL_MMT_ROW = (("biasEnabled", "true"), ("bias", "0.000"), ("noiseReductionEnabled", "false"),
                   ("noiseReductionThreshold", "1.0000"), ("noiseReductionAmount", "1.00"),
                   ("noiseReductionAdaptive", "0.0000"))


def _identifier(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", text.strip()) or "node"
    return name if not name[0].isdigit() else "_" + name


def icon_names(graph: GraphModel) -> dict[str, str]:
    """A PixInsight identifier per node, from its label (else its id), unique in the set."""
    out, taken = {}, set()
    for nid, node in graph.nodes.items():
        imported = node.extra.get("xpsm", {}).get("icon")
        base = imported or _identifier(node.label or nid)
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        out[nid] = name
    return out


def view_names(graph: GraphModel, icons: dict[str, str]) -> dict[str, str]:
    """The PixInsight view each node's main output is: a Load's image is named after the Load, a
    PixelMath with an output name creates that view, and the other processes work in place on
    their main input's view (as they do in PixInsight)."""
    views: dict[str, str] = {}

    def view(nid: str, seen: tuple = ()) -> str:
        if nid in views:
            return views[nid]
        node = graph.nodes[nid]
        params = graph.effective_params(nid)
        name = None
        if node.type == "Load":
            name = _identifier(node.label or nid)
        elif node.type == "PixelMath" and params.get("output_name"):
            name = params["output_name"]
        else:
            link = graph.incoming(nid).get(graph.main_input(nid))
            if link is not None and link.src in graph.nodes and link.src not in seen:
                name = view(link.src, seen + (nid,))
        views[nid] = name or icons[nid]
        return views[nid]

    for nid in graph.nodes:
        view(nid)
    return views


def _description(graph: GraphModel, nid: str) -> str:
    node = graph.nodes[nid]
    record = {"id": nid, "type": node.type, "version": node.version, "label": node.label,
              "params": node.params, "pos": list(node.pos),
              "inputs": {port: [l.src, l.src_port] for port, l in graph.incoming(nid).items()}}
    what = "a PixInsight equivalent" if BY_TYPE.get(node.type) and BY_TYPE[node.type].process else \
        "no PixInsight process: this empty container keeps it"
    return f"{MARKER} {node.type} ({what}): {json.dumps(record, separators=(',', ':'))}"


def _mapped_params(node_type: str, params: dict) -> list[Param]:
    m = BY_TYPE.get(node_type)
    return [Param(theirs, *to_pi(params[ours], fmt)) for ours, theirs, fmt in (m.params if m else ())]


def _set(inst: Instance, items: list) -> None:
    """Put each Param/Table in ``items`` into ``inst``, replacing one of the same id in place."""
    for new in items:
        for i, old in enumerate(inst.items):
            if type(old) is type(new) and getattr(old, "id", None) == new.id:
                inst.items[i] = new
                break
        else:
            inst.items.append(new)


def _mmt_table(params: dict) -> Table:
    """MMT's layers table: a row per detail layer and one for the residual (automatic K, which
    needs the frame, is written as 8: the node in the description keeps it)."""
    n, K = params["layers"], params["remove_layers"]
    if K == 0:
        enabled = parse_layers(params["enabled"], n)
    else:
        K = 8 if K < 0 else K
        enabled = set(range(K + 1, max(n, K) + 1)) | {"R"}
        n = max(n, K)
    rows = []
    for j in list(range(1, n + 1)) + ["R"]:
        rows.append([Param("enabled", "true" if j in enabled else "false")] + [Param(k, v) for k, v in NEUTRAL_MMT_ROW])
    return Table("layers", rows)


def _process_items(graph: GraphModel, nid: str, views: dict[str, str]) -> list:
    """The parameters (and tables) PixInsight's process of this node is written with."""
    node = graph.nodes[nid]
    p = graph.effective_params(nid)
    items = _mapped_params(node.type, p)
    incoming = graph.incoming(nid)
    ref = incoming.get("reference")
    ref_view = views.get(ref.src, "") if ref is not None else ""
    if node.type == "MMT":
        items = [_mmt_table(p), Param("transform", "MultiscaleMedianTransform"),
                 Param("scaleDelta", str(p["scale_delta"] if p["scaling"] == "linear" else 0)),
                 Param("toLuminance", "true"), Param("toChrominance", "true"), Param("linear", "false")]
    elif node.type == "LinearFit":
        items = [Param("referenceViewId", ref_view, True)] + items
    elif node.type == "PixelMath":
        items = items[:3] + [Param("expression3", "", True)] + items[3:] + [
            Param("createNewImage", "true" if p["output_name"] else "false"),
            Param("newImageId", p["output_name"], True),
            Param("newImageColorSpace", "SameAsTarget"), Param("newImageSampleFormat", "SameAsTarget"),
            Table("outputData", [])]
    elif node.type == "ABE":
        items = [(Param("polyDegree", str(p["degree"] or 4)) if q.id == "polyDegree" else q) for q in items]
        items += [Param("discardModel", "false"), Param("replaceTarget", "false"),
                  Param("correctedImageSampleFormat", "SameAsTarget")]
    elif node.type == "Register":
        items = [Param("referenceImage", ref_view, True), Param("referenceIsFile", "false"),
                 Table("targets", []), Param("useScaleDifferences", "true")] + items + [
                 Param("pixelInterpolation", "Auto"), Param("clampingThreshold", "0.30" if p["clamping"] else "1.00")]
    return items


def _instance(graph: GraphModel, nid: str, icon: str, views: dict[str, str]) -> Instance:
    node = graph.nodes[nid]
    kept = node.extra.get("xpsm", {})
    if node.type == "PixInsightProcess":  # a process we do not have: back as it came
        return parse_instance(graph.effective_params(nid)["xml"], f"node {nid}")
    if "xml" in kept:  # imported from PixInsight: the same instance, our parameters updated
        inst = parse_instance(kept["xml"], f"node {nid}")
        if node.type != "StarRemove" and graph.registry.get(node.type) is not None:
            _set(inst, _process_items(graph, nid, views))
        return inst
    m = BY_TYPE.get(node.type)
    if m is None or not m.process:
        return Instance("ProcessContainer", description=_description(graph, nid))
    return Instance(m.process, version="256", description=_description(graph, nid),
                    items=_process_items(graph, nid, views))


def iconset_from_graph(graph: GraphModel) -> IconSet:
    """The icon set of a graph (see the module docstring)."""
    icons = icon_names(graph)
    views = view_names(graph, icons)
    out = IconSet()
    containers: dict[tuple, Instance] = {}
    for nid, node in graph.nodes.items():
        inst = _instance(graph, nid, icons[nid], views)
        kept = node.extra.get("xpsm", {})
        path = tuple(kept.get("container", ()))
        if path:  # it came from a ProcessContainer: back into it, in order
            inst.id = None
            inst.enabled = kept.get("enabled", "true")
            for depth in range(1, len(path) + 1):
                key = path[:depth]
                if key not in containers:
                    box = Instance("ProcessContainer", id=f"{key[-1]}_instance" if depth == 1 else None,
                                   enabled=None if depth == 1 else "true")
                    containers[key] = box
                    if depth == 1:
                        out.instances.append(box)
                        x, y = kept.get("container_pos", node.pos)
                        out.icons.append(Icon(key[0], box.id, round(x / XPOS_SCALE), round(y / YPOS_SCALE)))
                    else:
                        containers[path[:depth - 1]].items.append(box)
            containers[path].items.append(inst)
            continue
        inst.id = kept.get("instance") or f"{icons[nid]}_instance"
        inst.enabled = None
        out.instances.append(inst)
        out.icons.append(Icon(icons[nid], inst.id, round(node.pos[0] / XPOS_SCALE), round(node.pos[1] / YPOS_SCALE),
                              kept.get("workspace", "Workspace01")))
    return out
