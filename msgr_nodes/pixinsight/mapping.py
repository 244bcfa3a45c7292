"""Which PixInsight process each node type is, and how their parameters correspond.

A :class:`Mapping` lists (our parameter, PixInsight parameter id, format) triples; the format
says how PixInsight writes the value (``f3`` = three decimals, ``bool``, ``int``, ``text``, or
an enumeration as a dict ours -> PixInsight's identifier). The README's "Coming from PixInsight"
table is generated from :data:`MAPPINGS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

XPOS_SCALE, YPOS_SCALE = 3.0, 5.0   # canvas px per workspace px (PixInsight's icons are small)
MARKER = "msgr-nodes node"          # first words of the description of an instance we wrote


@dataclass(frozen=True)
class Mapping:
    """A node type and the PixInsight process it corresponds to."""

    node_type: str
    process: str
    params: tuple[tuple[str, str, Any], ...] = ()
    note: str = ""
    also_imports: tuple[str, ...] = ()


MAPPINGS: tuple[Mapping, ...] = (
    Mapping("MMT", "MultiscaleMedianTransform", (), "layers table: the first K detail rows disabled, the rest and "
            "the residual enabled = remove_layers K; scaleDelta 0 = dyadic, d = linear with delta d; another "
            "table (noise reduction, bias) is kept and marked as not an MSGR smoothing"),
    Mapping("LinearFit", "LinearFit", (("reject_low", "rejectLow", "f6"), ("reject_high", "rejectHigh", "f6")),
            "referenceViewId links the reference input"),
    Mapping("PixelMath", "PixelMath", (
        ("expression", "expression", "text"), ("expression1", "expression1", "text"),
        ("expression2", "expression2", "text"), ("use_single_expression", "useSingleExpression", "bool"),
        ("symbols", "symbols", "text"), ("rescale", "rescale", "bool"), ("rescale_lower", "rescaleLower", "g"),
        ("rescale_upper", "rescaleUpper", "g"), ("truncate", "truncate", "bool"),
        ("truncate_lower", "truncateLower", "g"), ("truncate_upper", "truncateUpper", "g")),
        "image identifiers in the expressions become inputs linked to the views of those names; "
        "createNewImage + newImageId = output_name"),
    Mapping("ABE", "AutomaticBackgroundExtractor", (
        ("tolerance", "tolerance", "f3"), ("deviation", "deviation", "f3"), ("unbalance", "unbalance", "f3"),
        ("min_box_fraction", "minBoxFraction", "f3"), ("max_background", "maxBackground", "f4"),
        ("min_background", "minBackground", "f4"), ("use_brightness_limits", "useBrightnessLimits", "bool"),
        ("degree", "polyDegree", "int"), ("box_size", "boxSize", "int"), ("box_separation", "boxSeparation", "int"),
        ("downsample", "abeDownsample", "f2"),
        ("correction", "targetCorrection", {"none": "None", "subtract": "Subtract", "divide": "Divide"}),
        ("normalize", "normalize", "bool")), "every parameter of ABE's dialog; degree 0 (automatic) is "
        "written as 4"),
    Mapping("Register", "StarAlignment", (("distortion", "distortionCorrection", "bool"),),
            "referenceImage links the reference (a view, or a file through a Load node); useSurfaceSplines "
            "(PixInsight 1.8) also means distortion; clampingThreshold below 1 = clamping; splineSmoothness is "
            "not mapped (PixInsight's and our smoothing use different scales)"),
    Mapping("StarRemove", "", (), "imported from StarNet2, StarNet and StarXTerminator and exported back as "
            "the process it came from; one made in msgr-nodes goes out as an empty ProcessContainer",
            also_imports=("StarNet2", "StarNet", "StarXTerminator")),
)

BY_TYPE = {m.node_type: m for m in MAPPINGS}
BY_PROCESS = {p: m for m in MAPPINGS for p in ((m.process,) if m.process else ()) + m.also_imports}
OUR_OWN = ("DetailFit", "LargeScales", "Load", "Save")  # no PixInsight equivalent: kept in a placeholder


def to_pi(value: Any, fmt: Any) -> tuple[str, bool]:
    """A parameter value as PixInsight writes it: (text, written as element text?)."""
    if isinstance(fmt, dict):
        return fmt.get(value, str(value)), False
    if fmt == "text":
        return "" if value is None else str(value), True
    if fmt == "bool":
        return ("true" if value else "false"), False
    if fmt == "int":
        return str(int(value)), False
    if fmt == "g":
        return f"{float(value):g}", False
    return f"{float(value):.{int(fmt[1:])}f}", False


def from_pi(text: str, fmt: Any) -> Any:
    """The value of a PixInsight parameter text for our parameter (ValueError if it does not read)."""
    if isinstance(fmt, dict):
        back = {v.lower(): k for k, v in fmt.items()}
        if text.lower() not in back:
            raise ValueError(f"{text!r} is not one of {', '.join(fmt.values())}")
        return back[text.lower()]
    if fmt == "text":
        return text
    if fmt == "bool":
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text.lower() == "true"
    if fmt == "int":
        return int(float(text))
    return float(text)


def mapping_markdown() -> str:
    """The README's table: each node type, its PixInsight process and how parameters correspond."""
    rows = ["| node | PixInsight process | parameters | notes |", "| --- | --- | --- | --- |"]
    for m in MAPPINGS:
        params = ", ".join(f"`{ours}` = `{theirs}`" for ours, theirs, _ in m.params) or "—"
        process = m.process or " / ".join(m.also_imports) + " (import)"
        rows.append(f"| {m.node_type} | {process} | {params} | {m.note} |")
    for t in OUR_OWN:
        rows.append(f"| {t} | — (an empty ProcessContainer named after the node) | all, in the icon's "
                    f"description | no PixInsight equivalent; comes back as {t} |")
    rows.append("| PixInsightProcess | any other process (GradientCorrection, BlurXTerminator, Script, ...) | "
                "kept as PixInsight wrote them | exported back unchanged; cannot run here |")
    return "\n".join(rows) + "\n"
