"""The node reference, generated from the node specs (for ``msgr-nodes nodes`` and the README)."""
from __future__ import annotations

from .registry import Registry


def _fmt_default(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == "":
        return "—"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 40 else text[:37] + "..."


def node_reference_text(reg: Registry) -> str:
    """Plain-text reference: one block per node type."""
    out = []
    for s in reg:
        out.append(f"{s.type} (v{s.version}, {s.category}): {s.help}")
        for p in s.input_ports():
            out.append(f"  in  {p.name}: {p.type}{' (optional)' if p.optional else ''}  {p.help}")
        for p in s.outputs:
            out.append(f"  out {p.name}: {p.type}  {p.help}")
        for p in s.params:
            unit = f" {p.unit}" if p.unit else ""
            out.append(f"  {p.name} = {_fmt_default(p.default)}{unit}  [{p.describe_range()}]  {p.help}")
        out.append("")
    return "\n".join(out)


def node_reference_markdown(reg: Registry) -> str:
    """Markdown reference for the README (between the NODE-REFERENCE markers)."""
    out = []
    for s in reg:
        out.append(f"### {s.type}\n\n{s.help}\n")
        ports = [f"- in `{p.name}` ({p.type}{', optional' if p.optional else ''}): {p.help}"
                 for p in s.input_ports()]
        if s.inputs_for is not None:
            ports.append("- in: one image input per name in the `inputs` parameter")
        ports += [f"- out `{p.name}` ({p.type}): {p.help}" for p in s.outputs]
        out.append("\n".join(ports) + "\n")
        if s.params:
            out.append("| parameter | default | allowed | help |\n| --- | --- | --- | --- |")
            for p in s.params:
                unit = f" {p.unit}" if p.unit else ""
                out.append(f"| `{p.name}` | {_fmt_default(p.default)}{unit} | {p.describe_range()} | "
                           f"{p.help.replace('|', '/')} |")
            out.append("")
    return "\n".join(out)
