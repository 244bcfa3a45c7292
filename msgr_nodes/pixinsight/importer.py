"""A PixInsight icon set as a graph: one node per icon, one per instance inside a ProcessContainer.

Icon sets have no wires: PixInsight works on named views. Links are inferred from the names an
instance refers to (PixelMath's image identifiers, LinearFit's referenceViewId, StarAlignment's
referenceImage) and the names it produces (PixelMath's newImageId). A view that is named but not
produced (the guide's Narrow and Wide) becomes a Load node whose id is the name in lower case;
the last result gets a Save node ``save``. What cannot be inferred (which view an icon is
applied to) is left unlinked and listed in one warning. Processes we do not have become
PixInsightProcess nodes that keep their XML. Instances that msgr-nodes wrote carry their node in
the description and come back exactly.
"""
from __future__ import annotations

import json
import re

from ..io.xpsm import IconSet, Instance, instance_xml
from ..model import NODE_ID, GraphModel, Node
from ..ops.pixelmath import PixelMathError, image_names
from .mapping import BY_PROCESS, MARKER, XPOS_SCALE, YPOS_SCALE, from_pi

PI_DEFAULTS = {"ABE": {"normalize": False, "correction": "none"}, "Register": {"distortion": False}}
SAVE_PATH = "{source_dir}/{source_stem}_pixinsight.fits"
_RECORD = re.compile(re.escape(MARKER) + r" [A-Za-z_][A-Za-z0-9_]* \([^)]*\): (\{.*\})\s*$", re.S)


class _Plan:
    """What import decided for one node: its type and parameters, the views it reads (port ->
    name) and produces, and the inputs nothing feeds."""

    def __init__(self, nid, node_type, params, pos, label, extra):
        self.nid, self.type, self.params, self.pos, self.label, self.extra = nid, node_type, params, pos, label, extra
        self.reads: dict[str, str] = {}
        self.produces: str | None = None
        self.unknown_inputs: list[str] = []
        self.after: str | None = None  # the node before it in its ProcessContainer


def _record(inst: Instance) -> dict | None:
    """The node msgr-nodes stored in an instance's description, if it did."""
    m = _RECORD.match(inst.description or "")
    if not m:
        return None
    try:
        rec = json.loads(m.group(1))
    except ValueError:
        return None
    return rec if isinstance(rec, dict) and {"id", "type", "params", "inputs"} <= set(rec) else None


def _mapped(inst: Instance, node_type: str, warnings: list[str], where: str) -> dict:
    params = dict(PI_DEFAULTS.get(node_type, {}))
    m = BY_PROCESS[inst.cls]
    for ours, theirs, fmt in m.params:
        text = inst.value(theirs)
        if text is None:
            continue
        try:
            params[ours] = from_pi(text, fmt)
        except ValueError as exc:
            warnings.append(f"{where}: {theirs} {exc}; the default is used")
    return params


def _mmt(inst: Instance, warnings: list[str], where: str) -> dict:
    table = inst.table("layers")
    rows = table.rows if table is not None else []
    if len(rows) < 2:
        warnings.append(f"{where}: no layers table; 8 layers removed, as MSGR does")
        return {"remove_layers": 8, "layers": 8}
    cells = [{c.id: c.value for c in row} for row in rows]
    on = [c.get("enabled", "true") == "true" for c in cells]
    neutral = all(c.get("noiseReductionEnabled", "false") == "false" and float(c.get("bias", 0) or 0) == 0
                  for c, e in zip(cells, on) if e)
    n = len(rows) - 1
    params = {"layers": n}
    delta = int(float(inst.value("scaleDelta", "0") or 0))
    if delta > 0:
        params.update(scaling="linear", scale_delta=delta)
    K = next((i for i, e in enumerate(on) if e), len(on))
    if neutral and all(on[K:]) and 0 < K <= n and inst.value("transform", "MultiscaleMedianTransform") == \
            "MultiscaleMedianTransform":
        params["remove_layers"] = K
        return params
    layers = [str(j + 1) for j in range(n) if on[j]] + (["R"] if on[n] else [])
    params.update(remove_layers=0, enabled=",".join(layers) or "R")
    warnings.append(f"{where}: not an MSGR smoothing (its table enables {', '.join(layers) or 'nothing'}"
                    + ("" if neutral else ", with bias or noise reduction msgr-nodes does not apply")
                    + "); the table is kept for export")
    return params


def _plan_instance(inst: Instance, nid: str, label: str, pos, warnings: list[str], extra: dict) -> _Plan:
    where = f"{label} ({inst.cls})"
    m = BY_PROCESS.get(inst.cls)
    xml = instance_xml(inst)
    if m is None:  # the XML is the node's parameter (visible, and what goes back on export)
        return _Plan(nid, "PixInsightProcess", {"process": inst.cls, "xml": xml}, pos, label, extra)
    plan = _Plan(nid, m.node_type, _mapped(inst, m.node_type, warnings, where), pos, label, dict(extra, xml=xml))
    if m.node_type == "MMT":
        plan.params.update(_mmt(inst, warnings, where))
        plan.unknown_inputs = ["image"]
    elif m.node_type == "LinearFit":
        if inst.value("referenceViewId"):
            plan.reads["reference"] = inst.value("referenceViewId")
        plan.unknown_inputs = ["target"] + ([] if "reference" in plan.reads else ["reference"])
    elif m.node_type == "Register":
        ref = inst.value("referenceImage") or ""
        if ref and inst.value("referenceIsFile", "false") == "true":
            plan.reads["reference"] = "file:" + ref
        elif ref:
            plan.reads["reference"] = ref
        if inst.value("useSurfaceSplines", "false") == "true":
            plan.params["distortion"] = True
        threshold = inst.value("clampingThreshold")
        if threshold is not None:
            plan.params["clamping"] = float(threshold) < 1.0
        plan.unknown_inputs = ["target"] + ([] if "reference" in plan.reads else ["reference"])
    elif m.node_type == "PixelMath":
        expressions = [plan.params.get("expression", "")]
        if not plan.params.get("use_single_expression", True):
            expressions += [plan.params.get("expression1", ""), plan.params.get("expression2", "")]
        try:
            names, uses_target = image_names(expressions, plan.params.get("symbols", ""))
        except PixelMathError as exc:
            warnings.append(f"{where}: the expression does not parse ({exc}); kept as it is")
            names, uses_target = [], True
        plan.params["inputs"] = (["target"] if uses_target or not names else []) + names
        plan.params["target"] = plan.params["inputs"][0]
        for name in names:
            plan.reads[name] = name
        if uses_target or not names:
            plan.unknown_inputs = ["target"]
        if inst.value("createNewImage", "false") == "true" and inst.value("newImageId"):
            plan.params["output_name"] = inst.value("newImageId")
            plan.produces = inst.value("newImageId")
    else:  # ABE, StarRemove: applied to a view the icon does not name
        plan.unknown_inputs = ["image"]
    return plan


def _unique(name: str, taken: set) -> str:
    base = re.sub(r"[^A-Za-z0-9_\-]", "_", name) or "node"
    base = base if NODE_ID.match(base) else "_" + base
    nid, k = base, 2
    while nid in taken:
        nid, k = f"{base}_{k}", k + 1
    taken.add(nid)
    return nid


def graph_from_iconset(icons: IconSet, registry=None, cls: type[GraphModel] = GraphModel,
                       source: str = "icon set") -> tuple[GraphModel, list[str]]:
    """The graph of an icon set and the warnings of what could not be mapped or linked."""
    g = cls(registry)
    warnings: list[str] = []
    plans: list[_Plan] = []
    records: list[dict] = []
    taken: set = set()
    for icon in icons.icons:
        inst = icons.instance(icon.instance)
        pos = (icon.xpos * XPOS_SCALE, icon.ypos * YPOS_SCALE)
        rec = _record(inst)
        if rec is not None:
            records.append(rec)
            continue
        common = {"icon": icon.id, "instance": inst.id, "workspace": icon.workspace}
        if inst.cls == "ProcessContainer" and inst.children:
            _plan_container(inst, [icon.id], pos, plans, warnings, taken, icon.id)
        else:
            plans.append(_plan_instance(inst, _unique(icon.id, taken), icon.id, pos, warnings, common))
    for rec in records:  # nodes msgr-nodes wrote: exactly as they were (a pack's type too)
        g.insert_node(Node(rec["id"], rec["type"], int(rec.get("version", 1)), rec.get("label", ""),
                           dict(rec["params"]), tuple(rec.get("pos", (0.0, 0.0)))))
        taken.add(rec["id"])
    for plan in plans:
        node = g.add_node(plan.type, plan.nid, label=plan.label, pos=plan.pos)
        node.params.update(plan.params)
        node.extra["xpsm"] = plan.extra
    for rec in records:
        for port, (src, src_port) in rec["inputs"].items():
            if src in g.nodes:
                g.link(src, src_port, rec["id"], port, check=False)
    _link_views(g, plans, warnings)
    if plans:
        _add_save(g, plans)
    if any(p.type == "PixInsightProcess" for p in plans):
        names = sorted({p.params["process"] for p in plans if p.type == "PixInsightProcess"})
        warnings.append(f"kept but cannot run here: {', '.join(names)}")
    g.meta = {"title": f"imported from {source}", "description": f"PixInsight icon set {source}"}
    return g, warnings


def _plan_container(inst, path, pos, plans, warnings, taken, icon_id):
    before = None
    for k, child in enumerate(inst.children):
        if child.cls == "ProcessContainer":
            _plan_container(child, path + [f"{path[-1]}_{k + 1}"], pos, plans, warnings, taken, icon_id)
            continue
        extra = {"container": list(path), "enabled": child.enabled or "true", "container_pos": list(pos)}
        plan = _plan_instance(child, _unique(f"{icon_id}_{child.cls}", taken), f"{path[-1]} {k + 1}",
                              (pos[0] + 240 * k, pos[1]), warnings, extra)
        if before is not None and (plan.type == "PixInsightProcess" or "image" in plan.unknown_inputs):
            plan.after = before.nid  # a container runs its instances one after another on one view
        plans.append(plan)
        before = plan


def _link_views(g: GraphModel, plans: list[_Plan], warnings: list[str]) -> None:
    producers = {p.produces: p.nid for p in plans if p.produces}
    unlinked = []
    loads: dict[str, str] = {}
    for plan in plans:
        if plan.after is not None:
            g.link(plan.after, "image", plan.nid, "image", check=False)
            plan.unknown_inputs = [u for u in plan.unknown_inputs if u != "image"]
        for port, view in plan.reads.items():
            src = producers.get(view)
            if src is None or src == plan.nid:
                src = loads.get(view)
                if src is None:
                    is_file = view.startswith("file:")
                    name = view[5:] if is_file else view
                    nid = view.lower() if not is_file and NODE_ID.match(view.lower()) and view.lower() not in g.nodes \
                        else _unique(re.sub(r"\W", "_", name.rsplit("/", 1)[-1].split(".")[0]).lower(), set(g.nodes))
                    load = g.add_node("Load", nid, label=name, pos=(plan.pos[0] - 360, plan.pos[1]))
                    if is_file:
                        load.params["path"] = name
                    src = loads[view] = nid
            g.link(src, "image", plan.nid, port, check=False)
        unlinked += [f"{plan.label}.{port}" for port in plan.unknown_inputs if port not in g.incoming(plan.nid)]
    if unlinked:
        warnings.append("not linked (PixInsight icons do not say which image they are applied to): "
                        + ", ".join(unlinked))


def _add_save(g: GraphModel, plans: list[_Plan]) -> None:
    last = next((p for p in reversed(plans) if p.type != "Save"), None)
    if last is None or "save" in g.nodes:
        return
    spec = g.registry.get(last.type)
    if spec is None or spec.output("image") is None:
        return
    g.add_node("Save", "save", {"path": SAVE_PATH}, label="Save", pos=(last.pos[0] + 300, last.pos[1]))
    g.link(last.nid, "image", "save", "image", check=False)
