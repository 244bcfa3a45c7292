"""The node canvas: draws the graph's nodes, pins and links in dearpygui's node editor, colours
nodes by run state, and maps canvas items back to node ids and pins.

Thread: the GUI thread only (every dearpygui call). It reads :class:`EditorState`, whose run
states the run thread updates; it never changes the graph itself: links dragged by the user are
handed to ``on_link`` / ``on_unlink`` as (node, port) pairs for the app to turn into commands.
"""
from __future__ import annotations

from typing import Callable

import dearpygui.dearpygui as dpg

from ..ops.stretch import STF
from .display import display_rgba
from .state import EditorState

STATE_COLOURS = {
    "idle": (60, 60, 70), "queued": (90, 90, 40), "running": (40, 90, 160), "cached": (40, 110, 110),
    "done": (40, 130, 60), "failed": (190, 40, 40), "skipped": (110, 80, 40), "cancelled": (100, 100, 100),
}
PROBLEM_COLOUR = (200, 120, 20)
CANVAS = "editor"  # the dearpygui tag of the node editor
LINE_CHARS = 44    # a message on a node is one line this long; the whole text is in its tooltip
THUMB_SIDE = 64    # px, the longer side of a node's thumbnail


def one_line(text: str, limit: int = LINE_CHARS) -> str:
    """The first line of ``text``, cut to ``limit`` characters with an ellipsis (three dots: the
    default font has no ellipsis glyph)."""
    first = text.strip().split("\n", 1)[0]
    return first if len(first) <= limit and first == text.strip() else first[: limit - 3].rstrip() + "..."


class Canvas:
    """The node editor widget and the maps between its items and the graph."""

    def __init__(self, on_link: Callable[[str, str, str, str], None], on_unlink: Callable[[str, str], None]):
        self.on_link, self.on_unlink = on_link, on_unlink
        self.attr_of: dict[int, tuple[str, str, str]] = {}   # pin item -> (node, port, "in"/"out")
        self.pin_of: dict[tuple[str, str, str], int] = {}
        self.node_item: dict[str, int] = {}
        self.item_node: dict[int, str] = {}
        self.link_item: dict[int, tuple[str, str]] = {}      # link item -> (dst, dst_port)
        self.themes: dict[str, int] = {}
        self.thumbnails: dict[str, tuple[str, int, int, int]] = {}  # node -> (cache key, texture, w, h)
        self._seen_selection: list[str] = []
        self.minimap = False  # off by default: it would cover the nodes at the bottom right

    def build(self) -> None:
        """Create the themes and the (empty) node editor in the current dearpygui container."""
        for name, colour in list(STATE_COLOURS.items()) + [("problem", PROBLEM_COLOUR)]:
            with dpg.theme() as theme:
                with dpg.theme_component(dpg.mvNode):
                    dpg.add_theme_color(dpg.mvNodeCol_TitleBar, colour, category=dpg.mvThemeCat_Nodes)
                    dpg.add_theme_color(dpg.mvNodeCol_TitleBarHovered, colour, category=dpg.mvThemeCat_Nodes)
                    dpg.add_theme_color(dpg.mvNodeCol_TitleBarSelected, tuple(min(255, c + 40) for c in colour),
                                        category=dpg.mvThemeCat_Nodes)
            self.themes[name] = theme

    def add_editor(self) -> None:
        with dpg.node_editor(tag=CANVAS, callback=self._linked, delink_callback=self._unlinked,
                             minimap=self.minimap, minimap_location=dpg.mvNodeMiniMap_Location_BottomRight):
            pass

    def show_minimap(self, on: bool) -> None:
        self.minimap = bool(on)
        dpg.configure_item(CANVAS, minimap=self.minimap)

    def rebuild(self, state: EditorState) -> None:
        """Draw every node and link of the graph from scratch (after any edit, undo or redo)."""
        dpg.delete_item(CANVAS, children_only=True)
        for table in (self.attr_of, self.pin_of, self.node_item, self.item_node, self.link_item):
            table.clear()
        problems = state.problems_by_node()
        g = state.graph
        for nid, node in g.nodes.items():
            spec = g.registry.get(node.type)
            title = f"{node.label or nid}  [{node.type}]"
            with dpg.node(label=title, parent=CANVAS, pos=[int(node.pos[0]), int(node.pos[1])]) as item:
                self.node_item[nid] = item
                self.item_node[item] = nid
                for p in (spec.input_ports(node.params) if spec else []):
                    with dpg.node_attribute(attribute_type=dpg.mvNode_Attr_Input) as pin:
                        dpg.add_text(f"{p.name}: {p.type}{' (optional)' if p.optional else ''}")
                    self.attr_of[pin] = (nid, p.name, "in")
                    self.pin_of[(nid, p.name, "in")] = pin
                for p in (spec.outputs if spec else []):
                    with dpg.node_attribute(attribute_type=dpg.mvNode_Attr_Output) as pin:
                        dpg.add_text(f"{p.name}: {p.type}", indent=80)
                    self.attr_of[pin] = (nid, p.name, "out")
                    self.pin_of[(nid, p.name, "out")] = pin
                with dpg.node_attribute(attribute_type=dpg.mvNode_Attr_Static, tag=f"static_{nid}"):
                    msg = "; ".join(problems.get(nid, [])) or ("" if spec else f"unknown type {node.type}")
                    dpg.add_text(one_line(msg), tag=f"problem_{nid}", color=(255, 170, 60), show=bool(msg))
                    with dpg.tooltip(f"problem_{nid}"):
                        dpg.add_text(msg, wrap=420)
                    dpg.add_text("", tag=f"runinfo_{nid}")
                    with dpg.tooltip(f"runinfo_{nid}"):
                        dpg.add_text("", tag=f"runinfo_full_{nid}", wrap=420)
            dpg.bind_item_theme(item, self.themes["problem" if nid in problems else "idle"])
            if nid in self.thumbnails:
                self._add_thumbnail(nid)
        for link in g.links:
            a = self.pin_of.get((link.src, link.src_port, "out"))
            b = self.pin_of.get((link.dst, link.dst_port, "in"))
            if a and b:
                li = dpg.add_node_link(a, b, parent=CANVAS)
                self.link_item[li] = (link.dst, link.dst_port)
        dpg.clear_selected_nodes(CANVAS)  # the old items are gone; the state keeps the selection
        self._seen_selection = []
        self.update_states(state)

    def update_states(self, state: EditorState) -> None:
        """Colour nodes by their run state and show progress lines (every frame a state changed)."""
        problems = None
        for nid, item in self.node_item.items():
            run = state.runs.get(nid)
            if run is None or run.state == "idle":
                if problems is None:
                    problems = state.problems_by_node()
                theme = "problem" if nid in problems else "idle"
                text = ""
            else:
                theme = run.state
                text = {"running": f"running {100 * run.fraction:.0f}% {run.message}",
                        "done": f"done in {run.seconds or 0:.2f} s", "cached": "cached",
                        "failed": f"failed: {run.message}", "queued": "queued"}.get(run.state, run.state)
            dpg.bind_item_theme(item, self.themes[theme])
            dpg.set_value(f"runinfo_{nid}", one_line(text))
            dpg.set_value(f"runinfo_full_{nid}", text)

    def refresh_thumbnails(self, state: EditorState, keys: dict[str, str], find_image) -> None:
        """A small picture of each image node's current result on the node (after a run);
        ``find_image(node)`` gives the result or None."""
        for nid in state.graph.nodes:
            img = find_image(nid) if nid in keys else None
            if img is None:
                self.drop_thumbnail(nid)
                continue
            data, stf = img.data, None
            if float(data.min()) < 0:  # a model or a difference: its shape, stretched linearly
                lo, hi = float(data.min()), float(data.max())
                data = (data - lo) / max(hi - lo, 1e-12)
                stf = STF((0.0,) * data.shape[0], (0.5,) * data.shape[0])
            flat, w, h, _ = display_rgba(data, True, stf, max_side=THUMB_SIDE)
            self.set_thumbnail(nid, keys[nid], flat, w, h)

    def room_for_thumbnail(self, state: EditorState, nid: str) -> float:
        """Height (px) a node will grow by when its thumbnail appears (0 if it has one, or no image)."""
        spec = state.graph.registry.get(state.graph.nodes[nid].type)
        shows_image = spec is not None and any(p.type in ("image", "mask") for p in spec.outputs)
        return 0.0 if nid in self.thumbnails or not shows_image else THUMB_SIDE * 0.75 + 8

    def set_thumbnail(self, nid: str, key: str, rgba, w: int, h: int) -> None:
        """Show a small picture of the node's result (kept across redraws while ``key`` holds)."""
        old = self.thumbnails.get(nid)
        if old is not None and old[0] == key:
            return
        with dpg.texture_registry():
            texture = dpg.add_static_texture(w, h, rgba)
        self.drop_thumbnail(nid)
        self.thumbnails[nid] = (key, texture, w, h)
        self._add_thumbnail(nid)

    def drop_thumbnail(self, nid: str) -> None:
        old = self.thumbnails.pop(nid, None)
        if dpg.does_item_exist(f"thumb_{nid}"):
            dpg.delete_item(f"thumb_{nid}")
        if old is not None and dpg.does_item_exist(old[1]):
            dpg.delete_item(old[1])

    def _add_thumbnail(self, nid: str) -> None:
        if dpg.does_item_exist(f"static_{nid}") and not dpg.does_item_exist(f"thumb_{nid}"):
            _, texture, w, h = self.thumbnails[nid]
            dpg.add_image(texture, width=w, height=h, parent=f"static_{nid}", tag=f"thumb_{nid}")

    def selected(self) -> list[str]:
        """Ids of the nodes selected on the canvas."""
        if not dpg.does_item_exist(CANVAS):
            return []
        return [self.item_node[i] for i in dpg.get_selected_nodes(CANVAS) if i in self.item_node]

    def new_selection(self) -> list[str] | None:
        """The canvas selection if the user changed it since the last call (a click), else None:
        a redraw empties the canvas's selection, and that must not move the Node tab."""
        now = self.selected()
        if now == self._seen_selection:
            return None
        self._seen_selection = now
        return now or None

    def clear_selection(self) -> None:
        dpg.clear_selected_nodes(CANVAS)

    def moved(self, state: EditorState) -> dict[str, tuple[float, float]]:
        """Nodes whose canvas position differs from the graph's (after a drag)."""
        moved = {}
        for nid, item in self.node_item.items():
            if not dpg.does_item_exist(item) or nid not in state.graph.nodes:
                continue
            x, y = dpg.get_item_pos(item)
            old = state.graph.nodes[nid].pos
            if abs(x - old[0]) > 0.5 or abs(y - old[1]) > 0.5:
                moved[nid] = (float(x), float(y))
        return moved

    def _linked(self, sender, app_data) -> None:
        a, b = app_data
        src, dst = self.attr_of.get(a), self.attr_of.get(b)
        if src is None or dst is None:
            return
        if src[2] == "in":
            src, dst = dst, src
        self.on_link(src[0], src[1], dst[0], dst[1])

    def _unlinked(self, sender, link) -> None:
        if link in self.link_item:
            self.on_unlink(*self.link_item[link])
