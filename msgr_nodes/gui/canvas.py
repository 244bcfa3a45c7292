"""The node canvas: draws the graph's nodes, pins and links in dearpygui's node editor, colours
nodes by run state, and maps canvas items back to node ids and pins.

Thread: the GUI thread only (every dearpygui call). It reads :class:`EditorState`, whose run
states the run thread updates; it never changes the graph itself: links dragged by the user are
handed to ``on_link`` / ``on_unlink`` as (node, port) pairs for the app to turn into commands.
"""
from __future__ import annotations

from typing import Callable

import dearpygui.dearpygui as dpg

from .state import EditorState

STATE_COLOURS = {
    "idle": (60, 60, 70), "queued": (90, 90, 40), "running": (40, 90, 160), "cached": (40, 110, 110),
    "done": (40, 130, 60), "failed": (190, 40, 40), "skipped": (110, 80, 40), "cancelled": (100, 100, 100),
}
PROBLEM_COLOUR = (200, 120, 20)
CANVAS = "editor"  # the dearpygui tag of the node editor


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
                             minimap=True, minimap_location=dpg.mvNodeMiniMap_Location_BottomRight):
            pass

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
                with dpg.node_attribute(attribute_type=dpg.mvNode_Attr_Static):
                    msg = "; ".join(problems.get(nid, [])) or ("" if spec else f"unknown type {node.type}")
                    dpg.add_text(msg, tag=f"problem_{nid}", wrap=260, color=(255, 170, 60))
                    dpg.add_text("", tag=f"runinfo_{nid}", wrap=260)
            dpg.bind_item_theme(item, self.themes["problem" if nid in problems else "idle"])
        for link in g.links:
            a = self.pin_of.get((link.src, link.src_port, "out"))
            b = self.pin_of.get((link.dst, link.dst_port, "in"))
            if a and b:
                li = dpg.add_node_link(a, b, parent=CANVAS)
                self.link_item[li] = (link.dst, link.dst_port)
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
            dpg.set_value(f"runinfo_{nid}", text)

    def selected(self) -> list[str]:
        """Ids of the nodes selected on the canvas."""
        if not dpg.does_item_exist(CANVAS):
            return []
        return [self.item_node[i] for i in dpg.get_selected_nodes(CANVAS) if i in self.item_node]

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
