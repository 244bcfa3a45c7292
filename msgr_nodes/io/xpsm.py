"""PixInsight process icon sets (.xpsm, "XPSM 1.0"): read them into plain objects, write them back.

Only the file format lives here (no graph): :mod:`msgr_nodes.pixinsight` maps instances to nodes.
What an instance holds is kept in document order (parameters, tables, nested instances, and any
other element verbatim), so an instance read and written again says the same thing.

Files are parsed with defusedxml with DTDs forbidden: an entity-expansion bomb or an external
entity needs a DTD, so both are refused in one line before anything is expanded or fetched.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import defusedxml
import defusedxml.ElementTree as SafeET

from ..errors import MsgrError
from .atomic import write_bytes_atomic
from .read import read_limited

NAMESPACE = "http://www.pixinsight.com/xpsm"          # PixInsight 1.8.9 and 1.9
OLD_NAMESPACE = "http://www.pixinsight.com"            # PixInsight 1.8 and older
MAX_FILE_BYTES = 50 * 1024 * 1024
INDENT = "   "  # PixInsight indents by three spaces


class XpsmError(MsgrError):
    """An icon set that cannot be read; the message names the file and what is wrong."""


@dataclass
class Param:
    """``<parameter id=... value=.../>`` (``text`` False) or ``<parameter id=...>text</parameter>``."""

    id: str
    value: str
    text: bool = False


@dataclass
class Table:
    """``<table id=... rows=n>`` of ``<tr>`` rows of cells (each a :class:`Param`)."""

    id: str
    rows: list[list[Param]] = field(default_factory=list)


@dataclass
class Raw:
    """Any other element (``<time>``, ``<view>``, ``<policies>``...), as XML text without namespace."""

    xml: str


@dataclass
class Instance:
    """A process instance: its class, id (top level) or enabled flag (inside a container), its
    description, and its items in order (Param, Table, Raw, and Instance for containers)."""

    cls: str
    id: str | None = None
    version: str | None = None
    enabled: str | None = None
    description: str | None = None
    items: list = field(default_factory=list)

    def param(self, pid: str) -> Param | None:
        return next((i for i in self.items if isinstance(i, Param) and i.id == pid), None)

    def value(self, pid: str, default: str | None = None) -> str | None:
        p = self.param(pid)
        return p.value if p is not None else default

    def table(self, tid: str) -> Table | None:
        return next((i for i in self.items if isinstance(i, Table) and i.id == tid), None)

    @property
    def children(self) -> list["Instance"]:
        return [i for i in self.items if isinstance(i, Instance)]


@dataclass
class Icon:
    """``<icon id=... instance=... xpos=... ypos=... workspace=.../>``."""

    id: str
    instance: str
    xpos: int = 0
    ypos: int = 0
    workspace: str = "Workspace01"


@dataclass
class IconSet:
    """What an .xpsm file holds: top-level instances (by id) and the icons that show them."""

    instances: list[Instance] = field(default_factory=list)
    icons: list[Icon] = field(default_factory=list)
    namespace: str = NAMESPACE

    def instance(self, iid: str) -> Instance | None:
        return next((i for i in self.instances if i.id == iid), None)


# ---------------------------------------------------------------------------- reading
def read_xpsm(path: str | os.PathLike) -> IconSet:
    """Read an icon set; an unreadable, unsafe or malformed file raises XpsmError in one line."""
    p = Path(path)
    data = read_limited(p, MAX_FILE_BYTES, "icon set", XpsmError)
    return parse_xpsm(data, str(p))


def parse_xpsm(data: bytes, source: str = "icon set") -> IconSet:
    """Parse .xpsm bytes (see :func:`read_xpsm`)."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise XpsmError(f"{source}: refused: the file declares a DTD or entities ({type(exc).__name__}), "
                        f"which icon sets never need and which can expand or fetch content") from None
    except ET.ParseError as exc:
        raise XpsmError(f"{source}: not valid XML ({exc})") from None
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if _local(root.tag) != "xpsm" or ns not in (NAMESPACE, OLD_NAMESPACE):
        raise XpsmError(f"{source}: not a PixInsight icon set (root <{_local(root.tag)}> in namespace "
                        f"{ns or 'none'}; expected <xpsm> in {NAMESPACE})")
    out = IconSet(namespace=ns)
    for el in root:
        tag = _local(el.tag)
        if tag == "instance":
            inst = _instance(el, source)
            if not inst.id:
                raise XpsmError(f"{source}: a top-level <instance class={inst.cls!r}> has no id")
            out.instances.append(inst)
        elif tag == "icon":
            try:
                out.icons.append(Icon(el.attrib["id"], el.attrib["instance"], int(float(el.get("xpos", 0))),
                                      int(float(el.get("ypos", 0))), el.get("workspace", "Workspace01")))
            except (KeyError, ValueError) as exc:
                raise XpsmError(f"{source}: an <icon> lacks a valid {exc} attribute") from None
    known = {i.id for i in out.instances}
    for icon in out.icons:
        if icon.instance not in known:
            raise XpsmError(f"{source}: icon {icon.id!r} shows instance {icon.instance!r}, which the file lacks")
    return out


def _local(tag: str) -> str:
    return tag.split("}", 1)[1] if tag.startswith("{") else tag


def _instance(el, source: str) -> Instance:
    cls = el.get("class")
    if not cls:
        raise XpsmError(f"{source}: an <instance> has no class")
    inst = Instance(cls, el.get("id"), el.get("version"), el.get("enabled"))
    for child in el:
        tag = _local(child.tag)
        if tag == "parameter":
            inst.items.append(_param(child, source, cls))
        elif tag == "table":
            rows = [[_param(td, source, cls) for td in tr if _local(td.tag) == "td"]
                    for tr in child if _local(tr.tag) == "tr"]
            inst.items.append(Table(child.get("id", ""), rows))
        elif tag == "description":
            inst.description = child.text or ""
        elif tag == "instance":
            inst.items.append(_instance(child, source))
        else:
            inst.items.append(Raw(_element_xml(child, 0)))
    return inst


def _param(el, source: str, cls: str) -> Param:
    pid = el.get("id")
    if pid is None:
        raise XpsmError(f"{source}: a <{_local(el.tag)}> of {cls} has no id")
    if "value" in el.attrib:
        return Param(pid, el.attrib["value"], False)
    return Param(pid, el.text or "", True)


def _element_xml(el, depth: int) -> str:
    """An element as XML text without namespace prefixes (the writer puts it under the default one)."""
    attrs = "".join(f" {_local(k)}={quoteattr(v)}" for k, v in el.attrib.items())
    tag = _local(el.tag)
    children = list(el)
    if not children and not (el.text or ""):
        return f"<{tag}{attrs}/>"
    inner = escape(el.text or "")
    if children:
        pad = "\n" + INDENT * (depth + 1)
        inner = (inner.strip() and inner) + "".join(pad + _element_xml(c, depth + 1) for c in children) + \
            "\n" + INDENT * depth
    return f"<{tag}{attrs}>{inner}</{tag}>"


# ---------------------------------------------------------------------------- writing
def dumps_xpsm(icons: IconSet) -> str:
    """The icon set as XPSM 1.0 text, laid out as PixInsight 1.9 writes it."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<!--",
             "*" * 68, "PixInsight XML Process Serialization Module - XPSM 1.0", "*" * 68,
             f"Generated on {now}", "msgr-nodes (export-xpsm)", "*" * 68, "-->",
             f'<xpsm version="1.0" xmlns="{NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
             f'xsi:schemaLocation="{NAMESPACE} http://pixinsight.com/xpsm/xpsm-1.0.xsd">']
    for inst in icons.instances:
        lines += _instance_lines(inst, 1)
    for icon in icons.icons:
        lines.append(f"{INDENT}<icon id={quoteattr(icon.id)} instance={quoteattr(icon.instance)} "
                     f'xpos="{int(icon.xpos)}" ypos="{int(icon.ypos)}" workspace={quoteattr(icon.workspace)}/>')
    lines.append("</xpsm>")
    return "\n".join(lines) + "\n"


def write_xpsm(icons: IconSet, path: str | os.PathLike, overwrite: bool = False) -> None:
    """Write the icon set atomically (UTF-8); an existing file is kept unless ``overwrite``."""
    write_bytes_atomic(path, dumps_xpsm(icons).encode("utf-8"), overwrite=overwrite)


def _instance_lines(inst: Instance, depth: int) -> list[str]:
    pad = INDENT * depth
    attrs = f" class={quoteattr(inst.cls)}"
    if inst.version is not None:
        attrs += f" version={quoteattr(inst.version)}"
    if inst.id is not None:
        attrs += f" id={quoteattr(inst.id)}"
    if inst.enabled is not None:
        attrs += f" enabled={quoteattr(inst.enabled)}"
    if inst.description is None and not inst.items:
        return [f"{pad}<instance{attrs}/>"]
    out = [f"{pad}<instance{attrs}>"]
    inner = INDENT * (depth + 1)
    if inst.description is not None:
        out.append(f"{inner}<description>{escape(inst.description)}</description>")
    for item in inst.items:
        if isinstance(item, Param):
            out.append(inner + _param_xml("parameter", item))
        elif isinstance(item, Table):
            if not item.rows:
                out.append(f'{inner}<table id={quoteattr(item.id)} rows="0"/>')
                continue
            out.append(f'{inner}<table id={quoteattr(item.id)} rows="{len(item.rows)}">')
            for row in item.rows:
                out.append(f"{inner}{INDENT}<tr>")
                out += [f"{inner}{INDENT * 2}" + _param_xml("td", cell) for cell in row]
                out.append(f"{inner}{INDENT}</tr>")
            out.append(f"{inner}</table>")
        elif isinstance(item, Instance):
            out += _instance_lines(item, depth + 1)
        else:
            out.append(inner + item.xml.replace("\n", "\n" + inner))
    out.append(f"{pad}</instance>")
    return out


def _param_xml(tag: str, p: Param) -> str:
    if p.text:
        return f"<{tag} id={quoteattr(p.id)}>{escape(p.value)}</{tag}>"
    return f"<{tag} id={quoteattr(p.id)} value={quoteattr(p.value)}/>"


def instance_xml(inst: Instance) -> str:
    """One instance as XPSM text (no namespace declaration), e.g. to keep it inside a graph file."""
    return "\n".join(_instance_lines(inst, 0))


def parse_instance(text: str, source: str = "instance") -> Instance:
    """An instance back from :func:`instance_xml` text (parsed as safely as a file)."""
    wrapped = f'<xpsm version="1.0" xmlns="{NAMESPACE}">{text}</xpsm>'.encode("utf-8")
    try:
        root = SafeET.fromstring(wrapped, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (defusedxml.DefusedXmlException, ET.ParseError) as exc:
        raise XpsmError(f"{source}: not a process instance ({exc})") from None
    found = [el for el in root if _local(el.tag) == "instance"]
    if len(found) != 1:
        raise XpsmError(f"{source}: expected one <instance>, found {len(found)}")
    return _instance(found[0], source)
