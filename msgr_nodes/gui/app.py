"""The visual editor (dearpygui). It draws an :class:`EditorState`, turns user actions into its
commands, runs the executor in a background thread and previews results. No processing here."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import dearpygui.dearpygui as dpg
import numpy as np

from ..errors import MsgrError
from ..image import Image
from ..context import CancelToken
from ..process_executor import ProcessExecutor
from .preview import display_rgba, histogram, pixel_value
from .state import AddLink, EditorState, MoveNodes, RemoveLink, SetLabel, SetParam

IDLE_FPS = 60   # frame-rate caps (a display's vsync may cap lower)
RUN_FPS = 40    # during a run: above the 30 fps aim, the rest of the CPU goes to the nodes
STATE_COLOURS = {
    "idle": (60, 60, 70), "queued": (90, 90, 40), "running": (40, 90, 160), "cached": (40, 110, 110),
    "done": (40, 130, 60), "failed": (190, 40, 40), "skipped": (110, 80, 40), "cancelled": (100, 100, 100),
}
PROBLEM_COLOUR = (200, 120, 20)
SHORTCUTS = [
    ("Ctrl+N / Ctrl+O / Ctrl+S", "new, open, save (Ctrl+Shift+S: save as)"),
    ("Ctrl+Space or Tab", "node palette: type to search, Enter to add"),
    ("Delete", "delete the selected nodes"),
    ("Ctrl+C / Ctrl+V / Ctrl+D", "copy, paste, duplicate the selection"),
    ("Ctrl+Z / Ctrl+Y", "undo, redo (every edit: add, delete, link, parameter, move, label)"),
    ("F5 / Esc", "run the graph / cancel the run"),
    ("B", "before/after: toggle the preview between the selected node and the compare node"),
    ("F1", "this help"),
    ("drag from pin to pin", "link (refused with a reason when the types do not match)"),
    ("Ctrl+click a link", "unlink"),
]


class EditorApp:
    """The dearpygui editor around one :class:`EditorState`."""

    def __init__(self, state: EditorState, width: int = 1500, height: int = 900):
        self.state = state
        self.width, self.height = width, height
        # nodes compute in a child process (its own GIL) at the lowest priority, on every core: the
        # window is served first and processing takes whatever drawing leaves
        cores = os.cpu_count() or 2
        self.executor = ProcessExecutor(jobs=max(1, cores - 1), numba_threads=max(1, cores - 1))
        self._last_frame = 0.0
        self.cancel: CancelToken | None = None
        self.run_thread: threading.Thread | None = None
        self.status = ""
        self.attr_of: dict[int, tuple[str, str, str]] = {}   # pin item -> (node, port, "in"/"out")
        self.pin_of: dict[tuple[str, str, str], int] = {}
        self.node_item: dict[str, int] = {}
        self.item_node: dict[int, str] = {}
        self.link_item: dict[int, tuple[str, str]] = {}      # link item -> (dst, dst_port)
        self.themes: dict[str, int] = {}
        self.shown_selection: list[str] = []
        self.preview_key: tuple | None = None
        self.preview_data: np.ndarray | None = None
        self.show_compare = False
        self.frame_times: list[float] = []
        self.fps_during_run: list[float] = []
        self.log_len = 0
        self.texture = None
        self.last_result = None
        self.run_keys: dict[str, str] = {}
        self.drawn_version = -1
        self.was_running = False
        self.preview_selection: tuple = ()

    # ------------------------------------------------------------------ setup
    def build(self) -> None:
        self.executor.start()  # the processing process loads its libraries while the window opens
        dpg.create_context()
        dpg.create_viewport(title="msgr-nodes", width=self.width, height=self.height)
        for name, colour in list(STATE_COLOURS.items()) + [("problem", PROBLEM_COLOUR)]:
            with dpg.theme() as theme:
                with dpg.theme_component(dpg.mvNode):
                    dpg.add_theme_color(dpg.mvNodeCol_TitleBar, colour, category=dpg.mvThemeCat_Nodes)
                    dpg.add_theme_color(dpg.mvNodeCol_TitleBarHovered, colour, category=dpg.mvThemeCat_Nodes)
                    dpg.add_theme_color(dpg.mvNodeCol_TitleBarSelected, tuple(min(255, c + 40) for c in colour),
                                        category=dpg.mvThemeCat_Nodes)
            self.themes[name] = theme
        with dpg.texture_registry():
            self.texture = dpg.add_static_texture(1, 1, [0.0, 0.0, 0.0, 1.0])
        with dpg.window(tag="main", no_scrollbar=True):
            self._menu()
            with dpg.group(horizontal=True):
                with dpg.child_window(width=-430, tag="canvas_panel", no_scrollbar=True):
                    with dpg.node_editor(tag="editor", callback=self._on_link, delink_callback=self._on_delink,
                                         minimap=True, minimap_location=dpg.mvNodeMiniMap_Location_BottomRight):
                        pass
                with dpg.child_window(width=420, tag="side"):
                    with dpg.group(horizontal=True):
                        dpg.add_button(label="Run (F5)", callback=lambda: self.run_graph(), tag="run_btn")
                        dpg.add_button(label="Cancel (Esc)", callback=lambda: self.cancel_run(), tag="cancel_btn")
                        dpg.add_text("", tag="fps_text")
                    dpg.add_text("", tag="status_text", wrap=400, color=(230, 200, 120))
                    with dpg.tab_bar(tag="side_tabs"):
                        with dpg.tab(label="Node", tag="tab_node"):
                            dpg.add_group(tag="inspector")
                        with dpg.tab(label="Preview", tag="tab_preview"):
                            self._preview_panel()
                        with dpg.tab(label="Log", tag="tab_log"):
                            dpg.add_input_text(tag="log_text", multiline=True, readonly=True, width=-1, height=-1)
        self._palette()
        self._help()
        with dpg.file_dialog(show=False, callback=self._on_open_file, tag="open_dialog", width=700, height=450):
            dpg.add_file_extension(".json")
        with dpg.file_dialog(show=False, callback=self._on_save_file, tag="save_dialog", width=700, height=450,
                             default_filename="graph"):
            dpg.add_file_extension(".json")
        with dpg.file_dialog(show=False, callback=self._on_param_file, tag="param_dialog", width=700, height=450):
            dpg.add_file_extension(".*")
        with dpg.handler_registry():
            dpg.add_key_press_handler(callback=self._on_key)
            dpg.add_mouse_release_handler(callback=lambda: self._sync_positions())
        dpg.set_primary_window("main", True)
        dpg.setup_dearpygui()
        dpg.show_viewport()
        self.rebuild_canvas()

    def _menu(self) -> None:
        with dpg.menu_bar():
            with dpg.menu(label="File"):
                dpg.add_menu_item(label="New", shortcut="Ctrl+N", callback=lambda: self.new())
                dpg.add_menu_item(label="Open...", shortcut="Ctrl+O", callback=lambda: dpg.show_item("open_dialog"))
                dpg.add_menu_item(label="Use the bundled sample pair", callback=lambda: self.open_sample())
                dpg.add_menu_item(label="Save", shortcut="Ctrl+S", callback=lambda: self.save())
                dpg.add_menu_item(label="Save as...", shortcut="Ctrl+Shift+S",
                                  callback=lambda: dpg.show_item("save_dialog"))
                with dpg.menu(label="Recent", tag="recent_menu"):
                    pass
            with dpg.menu(label="Edit"):
                dpg.add_menu_item(label="Undo", shortcut="Ctrl+Z", callback=lambda: self.undo())
                dpg.add_menu_item(label="Redo", shortcut="Ctrl+Y", callback=lambda: self.redo())
                dpg.add_menu_item(label="Copy", shortcut="Ctrl+C", callback=lambda: self.state.copy_selection())
                dpg.add_menu_item(label="Paste", shortcut="Ctrl+V", callback=lambda: self.paste())
                dpg.add_menu_item(label="Duplicate", shortcut="Ctrl+D", callback=lambda: self.duplicate())
                dpg.add_menu_item(label="Delete", shortcut="Del", callback=lambda: self.delete_selection())
            with dpg.menu(label="Nodes"):
                dpg.add_menu_item(label="Add node...", shortcut="Ctrl+Space", callback=lambda: self.open_palette())
                for spec in self.state.graph.registry:
                    dpg.add_menu_item(label=f"{spec.category} / {spec.type}",
                                      callback=lambda s, a, u: self.add_node(u), user_data=spec.type)
            with dpg.menu(label="Run"):
                dpg.add_menu_item(label="Run graph", shortcut="F5", callback=lambda: self.run_graph())
                dpg.add_menu_item(label="Cancel", shortcut="Esc", callback=lambda: self.cancel_run())
            with dpg.menu(label="Help"):
                dpg.add_menu_item(label="Keyboard shortcuts", shortcut="F1", callback=lambda: dpg.show_item("help"))
        self._refresh_recent()

    def _preview_panel(self) -> None:
        with dpg.group(horizontal=True):
            dpg.add_text("compare with:")
            dpg.add_combo([], tag="compare_combo", width=160, callback=lambda s, a: self._set_compare(a))
            dpg.add_checkbox(label="before/after (B)", tag="compare_toggle",
                             callback=lambda s, a: self._toggle_compare(a))
        dpg.add_checkbox(label="linked stretch", default_value=True, tag="linked",
                         callback=lambda: self._refresh_preview(force=True))
        dpg.add_text("", tag="preview_title")
        with dpg.plot(tag="preview_plot", width=-1, height=330, equal_aspects=True, no_menus=True):
            dpg.add_plot_axis(dpg.mvXAxis, tag="px", no_tick_labels=True)
            with dpg.plot_axis(dpg.mvYAxis, tag="py", no_tick_labels=True):
                dpg.add_image_series(self.texture, [0, 0], [1, 1], tag="preview_series")
        dpg.add_text("", tag="pixel_text")
        with dpg.plot(tag="hist_plot", width=-1, height=150, no_menus=True):
            dpg.add_plot_axis(dpg.mvXAxis, label="value", tag="hx")
            dpg.add_plot_axis(dpg.mvYAxis, label="log count", tag="hy")

    def _palette(self) -> None:
        with dpg.window(label="Add node", tag="palette", show=False, modal=True, width=360, height=420,
                        pos=(300, 150)):
            dpg.add_input_text(tag="palette_filter", hint="search nodes", callback=lambda: self._fill_palette(),
                               on_enter=True, width=-1)
            dpg.add_child_window(tag="palette_list", height=-1)

    def _help(self) -> None:
        with dpg.window(label="Keyboard shortcuts", tag="help", show=False, width=560, height=360, pos=(200, 120)):
            with dpg.table(header_row=True):
                dpg.add_table_column(label="keys")
                dpg.add_table_column(label="action")
                for keys, action in SHORTCUTS:
                    with dpg.table_row():
                        dpg.add_text(keys)
                        dpg.add_text(action)

    # ------------------------------------------------------------------ canvas
    def rebuild_canvas(self) -> None:
        """Draw every node and link of the graph from scratch (after any edit, undo or redo)."""
        dpg.delete_item("editor", children_only=True)
        self.attr_of.clear()
        self.pin_of.clear()
        self.node_item.clear()
        self.item_node.clear()
        self.link_item.clear()
        problems = self.state.problems_by_node()
        g = self.state.graph
        for nid, node in g.nodes.items():
            spec = g.registry.get(node.type)
            title = f"{node.label or nid}  [{node.type}]"
            with dpg.node(label=title, parent="editor", pos=[int(node.pos[0]), int(node.pos[1])]) as item:
                self.node_item[nid] = item
                self.item_node[item] = nid
                ports_in = spec.input_ports(node.params) if spec else []
                for p in ports_in:
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
                li = dpg.add_node_link(a, b, parent="editor")
                self.link_item[li] = (link.dst, link.dst_port)
        self.update_node_states()
        self._refresh_title()
        self._refresh_inspector(force=True)
        dpg.configure_item("compare_combo", items=list(g.nodes))

    def update_node_states(self) -> None:
        """Colour nodes by their run state and show progress lines (every frame)."""
        problems = None
        for nid, item in self.node_item.items():
            run = self.state.runs.get(nid)
            if run is None or run.state == "idle":
                if problems is None:
                    problems = self.state.problems_by_node()
                theme = "problem" if nid in problems else "idle"
                text = ""
            else:
                theme = run.state
                text = {"running": f"running {100 * run.fraction:.0f}% {run.message}",
                        "done": f"done in {run.seconds or 0:.2f} s", "cached": "cached",
                        "failed": f"failed: {run.message}", "queued": "queued"}.get(run.state, run.state)
            dpg.bind_item_theme(item, self.themes[theme])
            dpg.set_value(f"runinfo_{nid}", text)

    # ------------------------------------------------------------------ edits
    def apply(self, cmd) -> bool:
        try:
            self.state.apply(cmd)
        except MsgrError as exc:
            self.set_status(str(exc))
            self.state.log.append(f"refused: {exc}")
            return False
        self._forget_stale_runs()
        self.rebuild_canvas()
        return True

    def _current_keys(self) -> dict[str, str]:
        try:
            return self.executor.keys(self.state.graph)
        except Exception:  # an invalid graph has no keys; every state is stale then
            return {}

    def _forget_stale_runs(self) -> None:
        """After an edit only the nodes whose cache key changed (the edited node and its downstream
        cone) lose their run state; the rest stay shown as done or cached."""
        keys = self._current_keys()
        for nid in list(self.state.runs):
            if keys.get(nid) is None or keys.get(nid) != self.run_keys.get(nid):
                del self.state.runs[nid]

    def _on_link(self, sender, app_data) -> None:
        a, b = app_data
        src, dst = self.attr_of.get(a), self.attr_of.get(b)
        if src is None or dst is None:
            return
        if src[2] == "in":
            src, dst = dst, src
        if self.apply(AddLink(src[0], src[1], dst[0], dst[1])):
            self.set_status(f"linked {src[0]}.{src[1]} -> {dst[0]}.{dst[1]}")

    def _on_delink(self, sender, link) -> None:
        if link in self.link_item:
            dst, port = self.link_item[link]
            self.apply(RemoveLink(dst, port))

    def _sync_positions(self) -> None:
        moved = {}
        for nid, item in self.node_item.items():
            if not dpg.does_item_exist(item):
                continue
            x, y = dpg.get_item_pos(item)
            old = self.state.graph.nodes[nid].pos
            if abs(x - old[0]) > 0.5 or abs(y - old[1]) > 0.5:
                moved[nid] = (float(x), float(y))
        if moved:
            self.state.apply(MoveNodes(moved))
            self._refresh_title()

    def add_node(self, type_name: str, pos=None) -> str | None:
        if pos is None:
            pos = (60 + 20 * (len(self.state.graph.nodes) % 10), 60 + 20 * (len(self.state.graph.nodes) % 10))
        try:
            nid = self.state.add_node(type_name, pos)
        except MsgrError as exc:
            self.set_status(str(exc))
            return None
        self.state.selection = [nid]
        self.rebuild_canvas()
        return nid

    def delete_selection(self) -> None:
        self._read_selection()
        if self.state.selection:
            self.state.delete_selection()
            self.rebuild_canvas()

    def paste(self) -> None:
        if self.state.paste():
            self.rebuild_canvas()

    def duplicate(self) -> None:
        self._read_selection()
        if self.state.duplicate_selection():
            self.rebuild_canvas()

    def undo(self) -> None:
        if self.state.undo():
            self._forget_stale_runs()
            self.rebuild_canvas()

    def redo(self) -> None:
        if self.state.redo():
            self._forget_stale_runs()
            self.rebuild_canvas()

    def set_param(self, nid: str, name: str, value) -> None:
        if self.apply(SetParam(nid, name, value)):
            self.set_status(f"{nid}.{name} = {value!r}")

    # ------------------------------------------------------------------ inspector
    def _read_selection(self) -> None:
        sel = [self.item_node[i] for i in dpg.get_selected_nodes("editor") if i in self.item_node]
        self.state.selection = sel

    def select(self, nid: str) -> None:
        """Select one node (as a click would)."""
        dpg.clear_selected_nodes("editor")
        self.state.selection = [nid]
        self._refresh_inspector(force=True)
        self._refresh_preview(force=True)

    def _refresh_inspector(self, force: bool = False) -> None:
        sel = list(self.state.selection)
        if sel == self.shown_selection and not force:
            return
        self.shown_selection = sel
        dpg.delete_item("inspector", children_only=True)
        if len(sel) != 1 or sel[0] not in self.state.graph.nodes:
            dpg.add_text("Select a node to edit its parameters.", parent="inspector")
            return
        nid = sel[0]
        node = self.state.graph.nodes[nid]
        spec = self.state.graph.registry.get(node.type)
        dpg.add_text(f"{nid}  ({node.type} v{node.version})", parent="inspector")
        dpg.add_input_text(label="label", default_value=node.label, parent="inspector", on_enter=True,
                           callback=lambda s, a: self.apply(SetLabel(nid, a)))
        if spec is None:
            dpg.add_text(f"unknown node type {node.type}: parameters are kept as they are", parent="inspector")
            return
        dpg.add_text(spec.help, wrap=390, parent="inspector", color=(170, 170, 170))
        params = spec.effective_params(node.params)
        advanced = dpg.add_collapsing_header(label="advanced", parent="inspector", default_open=False)
        for p in spec.params:
            parent = advanced if p.advanced else "inspector"
            self._param_widget(nid, p, params.get(p.name), parent)
        problems = self.state.problems_by_node().get(nid, [])
        if problems:  # e.g. an expression's syntax error, under the field that holds it
            dpg.add_text("\n".join(problems), parent="inspector", color=(255, 120, 80), wrap=390,
                         tag=f"problems_{nid}")

    def _commit_on_release(self, widget, nid, name, convert=lambda v: v) -> None:
        """Apply a text or number field when its editing ends (not on every keystroke or drag step)."""
        with dpg.item_handler_registry() as handlers:
            dpg.add_item_deactivated_after_edit_handler(
                callback=lambda s, a, u: self.set_param(u[0], u[1], convert(dpg.get_value(u[2]))),
                user_data=(nid, name, widget))
        dpg.bind_item_handler_registry(widget, handlers)

    def _param_widget(self, nid, p, value, parent) -> None:
        cb = (lambda s, a, u: self.set_param(u[0], u[1], a))
        ud = (nid, p.name)
        tip = f"{p.help} ({p.describe_range()})"
        if p.kind == "bool":
            w = dpg.add_checkbox(label=p.name, default_value=bool(value), callback=cb, user_data=ud, parent=parent)
        elif p.kind == "choice":
            w = dpg.add_combo(list(p.choices), label=p.name, default_value=value, callback=cb, user_data=ud,
                              parent=parent, width=200)
        elif p.kind == "int":
            kw = {k: v for k, v in (("min_value", p.min), ("max_value", p.max)) if v is not None}
            w = dpg.add_input_int(label=p.name, default_value=int(value), parent=parent, width=200,
                                  min_clamped=p.min is not None, max_clamped=p.max is not None,
                                  **{k: int(v) for k, v in kw.items()})
            self._commit_on_release(w, nid, p.name)
        elif p.kind == "float":
            kw = {k: v for k, v in (("min_value", p.min), ("max_value", p.max)) if v is not None}
            w = dpg.add_drag_float(label=p.name, default_value=float(value), parent=parent, width=200,
                                   speed=max(abs(float(value)) * 0.01, 1e-3), clamped=bool(kw),
                                   **{k: float(v) for k, v in kw.items()})
            self._commit_on_release(w, nid, p.name)
        elif p.kind == "text":
            w = dpg.add_input_text(label=p.name, default_value=value or "", multiline=True, height=70,
                                   parent=parent, width=300)
            self._commit_on_release(w, nid, p.name)
        elif p.kind == "list":
            w = dpg.add_input_text(label=p.name, default_value=", ".join(value or []), parent=parent, width=250)
            self._commit_on_release(w, nid, p.name, lambda v: [t.strip() for t in v.split(",") if t.strip()])
        else:
            with dpg.group(horizontal=True, parent=parent):
                w = dpg.add_input_text(label=p.name, default_value=value or "", width=250)
                self._commit_on_release(w, nid, p.name)
                if p.kind == "path":
                    dpg.add_button(label="...", user_data=ud,
                                   callback=lambda s, a, u: (dpg.set_item_user_data("param_dialog", u),
                                                             dpg.show_item("param_dialog")))
        with dpg.tooltip(w):
            dpg.add_text(tip, wrap=350)

    def _on_param_file(self, sender, app_data) -> None:
        nid, name = dpg.get_item_user_data("param_dialog")
        self.set_param(nid, name, app_data["file_path_name"])

    # ------------------------------------------------------------------ palette
    def open_palette(self) -> None:
        dpg.set_value("palette_filter", "")
        self._fill_palette()
        dpg.show_item("palette")
        dpg.focus_item("palette_filter")

    def _fill_palette(self) -> None:
        query = dpg.get_value("palette_filter").lower()
        dpg.delete_item("palette_list", children_only=True)
        matches = [s for s in self.state.graph.registry
                   if query in s.type.lower() or query in s.help.lower() or query in s.category.lower()]
        for s in matches:
            dpg.add_selectable(label=f"{s.type}  ({s.category})", parent="palette_list", user_data=s.type,
                               callback=lambda snd, a, u: (dpg.hide_item("palette"), self.add_node(u)))

    # ------------------------------------------------------------------ files
    def new(self) -> None:
        self.state.new()
        self.rebuild_canvas()

    def open_sample(self) -> None:
        """Point the graph's narrow and wide Load nodes at the bundled sample pair (or load the
        recommended graph with it): press F5 to run (outputs in ~/msgr-sample)."""
        self.state = EditorState.sample(self.state.settings_dir, self.state.graph, self.state.path)
        self.state.sample_output.mkdir(parents=True, exist_ok=True)
        self.rebuild_canvas()
        self.set_status(f"the sample pair is loaded: press F5 to run (outputs go to {self.state.sample_output}); "
                        f"select RemoveModel and open the Preview tab to see the result")

    def open(self, path: str) -> None:
        try:
            st = EditorState.open(path, settings_dir=self.state.settings_dir)
        except MsgrError as exc:
            self.set_status(str(exc))
            return
        self.state = st
        self.rebuild_canvas()
        self._refresh_recent()
        problems = st.problems_by_node()
        self.set_status(f"opened {path}" + (f"; {sum(map(len, problems.values()))} problem(s) shown on the nodes"
                                            if problems else ""))

    def save(self, path: str | None = None) -> None:
        self._sync_positions()
        try:
            target = self.state.save(path)
        except MsgrError as exc:
            self.set_status(str(exc))
            dpg.show_item("save_dialog")
            return
        self.set_status(f"saved {target}")
        self._refresh_title()
        self._refresh_recent()

    def _on_open_file(self, sender, app_data) -> None:
        self.open(app_data["file_path_name"])

    def _on_save_file(self, sender, app_data) -> None:
        self.save(app_data["file_path_name"])

    def _refresh_recent(self) -> None:
        if not dpg.does_item_exist("recent_menu"):
            return
        dpg.delete_item("recent_menu", children_only=True)
        for p in self.state.recent():
            dpg.add_menu_item(label=p, parent="recent_menu", user_data=p, callback=lambda s, a, u: self.open(u))

    def _refresh_title(self) -> None:
        name = str(self.state.path) if self.state.path else "untitled"
        dpg.set_viewport_title(f"msgr-nodes - {name}{' *' if self.state.dirty else ''}")

    # ------------------------------------------------------------------ running
    def run_graph(self, outputs=None) -> None:
        if self.run_thread and self.run_thread.is_alive():
            self.set_status("a run is already going on")
            return
        self._sync_positions()
        problems = self.state.graph.validate(files=False)  # missing files fail their nodes; the rest runs
        if problems:
            self.set_status(f"{len(problems)} problem(s): " + "; ".join(str(p) for p in problems[:3]))
            self.update_node_states()
            return
        self.state.runs.clear()
        self.state.mark_queued(self.state.graph.nodes)
        self.run_keys = self._current_keys()
        self.cancel = CancelToken()
        self.executor.on_event = self.state.on_event
        graph = self.state.graph.copy()
        self.fps_during_run = []

        def work():
            try:
                res = self.executor.run(graph, outputs, cancel=self.cancel)
                self.last_result = res
                msg = "cancelled" if res.cancelled else (
                    f"done: {len(res.computed)} computed, {len(res.cached)} cached, {res.seconds:.1f} s"
                    if res.ok else f"{len(res.errors)} node(s) failed: " + "; ".join(res.errors.values()))
            except MsgrError as exc:
                msg = str(exc)
            self.state.log.append(msg)
            self.status = msg

        self.run_thread = threading.Thread(target=work, daemon=True)
        self.run_thread.start()
        self.set_status("running...")

    def cancel_run(self) -> None:
        if self.cancel is not None:
            self.cancel.cancel()

    @property
    def running(self) -> bool:
        return self.run_thread is not None and self.run_thread.is_alive()

    # ------------------------------------------------------------------ preview
    def _first_image(self, nid: str) -> Image | None:
        g = self.state.graph
        if nid not in g.nodes:
            return None
        try:
            key = self.executor.keys(g, [nid])[nid]
        except Exception:
            return None
        res = self.executor.cached_result(key)
        if res is None:
            return None
        return next((v for v in res.outputs.values() if isinstance(v, Image)), None)

    def _set_compare(self, nid: str) -> None:
        self.state.compare = nid
        self._refresh_preview(force=True)

    def _toggle_compare(self, on: bool) -> None:
        self.show_compare = bool(on)
        self._refresh_preview(force=True)

    def _refresh_preview(self, force: bool = False) -> None:
        sel = self.state.selection[0] if len(self.state.selection) == 1 else self.state.preview
        nid = self.state.compare if (self.show_compare and self.state.compare) else sel
        img = self._first_image(nid) if nid else None
        key = (nid, id(img), dpg.get_value("linked"))
        if key == self.preview_key and not force:
            return
        self.preview_key = key
        if img is None:
            dpg.set_value("preview_title", f"{nid or 'no node'}: run the graph to preview" if nid else "")
            self.preview_data = None
            return
        self.state.preview = sel
        flat, w, h, step = display_rgba(img.data, dpg.get_value("linked"))
        # a texture in use cannot be replaced under the same tag: make a new one, then drop the old
        old = self.texture
        with dpg.texture_registry():
            self.texture = dpg.add_static_texture(w, h, flat)
        dpg.configure_item("preview_series", texture_tag=self.texture,
                           bounds_min=[0, 0], bounds_max=[img.width, img.height])
        if old is not None and dpg.does_item_exist(old):
            dpg.delete_item(old)
        dpg.set_axis_limits_auto("px")
        dpg.set_axis_limits_auto("py")
        dpg.fit_axis_data("px")
        dpg.fit_axis_data("py")
        self.preview_data = img.data
        dpg.set_value("preview_title", f"{nid}: {img.describe()}, auto-stretched"
                      + (f" (shown 1:{step})" if step > 1 else ""))
        dpg.delete_item("hy", children_only=True)
        centres, hists = histogram(img.data)
        colours = [(255, 80, 80), (80, 255, 80), (80, 140, 255)] if len(hists) == 3 else [(220, 220, 220)]
        for c, (hst, col) in enumerate(zip(hists, colours)):
            s = dpg.add_line_series(list(centres), list(hst), parent="hy")
            with dpg.theme() as t:
                with dpg.theme_component(dpg.mvLineSeries):
                    dpg.add_theme_color(dpg.mvPlotCol_Line, col, category=dpg.mvThemeCat_Plots)
            dpg.bind_item_theme(s, t)
        dpg.fit_axis_data("hx")
        dpg.fit_axis_data("hy")

    def _update_pixel_readout(self) -> None:
        if self.preview_data is None or not dpg.is_item_hovered("preview_plot"):
            return
        x, y = dpg.get_plot_mouse_pos()
        hit = pixel_value(self.preview_data, x, y)
        if hit:
            col, row, vals = hit
            dpg.set_value("pixel_text", f"x {col}  y {row}  value " + " ".join(f"{v:.5f}" for v in vals))

    # ------------------------------------------------------------------ keys and loop
    def _on_key(self, sender, key) -> None:
        ctrl = dpg.is_key_down(dpg.mvKey_LControl) or dpg.is_key_down(dpg.mvKey_RControl)
        shift = dpg.is_key_down(dpg.mvKey_LShift) or dpg.is_key_down(dpg.mvKey_RShift)
        typing = any(dpg.is_item_active(i) for i in ("palette_filter",)) or dpg.is_item_visible("palette")
        if key == dpg.mvKey_F5:
            self.run_graph()
        elif key == dpg.mvKey_Escape:
            self.cancel_run() if self.running else dpg.hide_item("palette")
        elif key == dpg.mvKey_F1:
            dpg.show_item("help")
        elif ctrl and key == dpg.mvKey_Z:
            self.undo()
        elif ctrl and key == dpg.mvKey_Y:
            self.redo()
        elif ctrl and key == dpg.mvKey_C:
            self._read_selection()
            self.state.copy_selection()
        elif ctrl and key == dpg.mvKey_V:
            self.paste()
        elif ctrl and key == dpg.mvKey_D:
            self.duplicate()
        elif ctrl and key == dpg.mvKey_S:
            dpg.show_item("save_dialog") if shift or self.state.path is None else self.save()
        elif ctrl and key == dpg.mvKey_O:
            dpg.show_item("open_dialog")
        elif ctrl and key == dpg.mvKey_N:
            self.new()
        elif (ctrl and key == dpg.mvKey_Spacebar) or (key == dpg.mvKey_Tab and not typing):
            self.open_palette()
        elif key == dpg.mvKey_Delete and not typing:
            self.delete_selection()
        elif key == dpg.mvKey_B and not typing and not ctrl:
            self.show_compare = not self.show_compare
            dpg.set_value("compare_toggle", self.show_compare)
            self._refresh_preview(force=True)

    def set_status(self, text: str) -> None:
        self.status = text
        if dpg.does_item_exist("status_text"):
            dpg.set_value("status_text", text)

    def frame(self) -> None:
        """Work done once per frame: selection, run states, preview, log, frame rate."""
        now = time.perf_counter()
        self.frame_times.append(now)
        self.frame_times = self.frame_times[-60:]
        if len(self.frame_times) > 10:
            fps = (len(self.frame_times) - 1) / (self.frame_times[-1] - self.frame_times[0])
            dpg.set_value("fps_text", f"{fps:.0f} fps")
            if self.running:
                self.fps_during_run.append(fps)
        if dpg.does_item_exist("editor"):
            sel = [self.item_node[i] for i in dpg.get_selected_nodes("editor") if i in self.item_node]
            if sel and sel != self.state.selection:
                self.state.selection = sel
        self._refresh_inspector()
        if self.state.version != self.drawn_version:  # node states changed since the last frame
            self.drawn_version = self.state.version
            self.update_node_states()
            if not self.running:
                self._refresh_preview()
        running = self.running
        if self.was_running and not running:  # a run just ended: show its results
            self.update_node_states()
            self._refresh_preview()
        self.was_running = running
        sel = tuple(self.state.selection)
        if sel != self.preview_selection:
            self.preview_selection = sel
            self._refresh_preview()
        self._update_pixel_readout()
        if len(self.state.log) != self.log_len:
            self.log_len = len(self.state.log)
            dpg.set_value("log_text", "\n".join(self.state.log[-500:]))
        dpg.set_value("status_text", self.status)

    def _pace(self) -> None:
        """Wait out the rest of the frame: at most IDLE_FPS, and RUN_FPS while nodes compute, so that
        drawing (costly with a software OpenGL renderer) leaves the cores to the processing."""
        cap = RUN_FPS if self.running else IDLE_FPS
        wait = self._last_frame + 1.0 / cap - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self._last_frame = time.perf_counter()

    def loop(self, until=None) -> None:
        while dpg.is_dearpygui_running():
            self._pace()
            self.frame()
            dpg.render_dearpygui_frame()
            if until is not None and until():
                break

    def frames(self, n: int) -> None:
        """Draw n frames (scripts and tests drive the window with this)."""
        for _ in range(n):
            self._pace()
            self.frame()
            dpg.render_dearpygui_frame()

    def wait_run(self, timeout: float = 300.0) -> None:
        """Keep drawing until the background run ends."""
        t0 = time.perf_counter()
        while self.running and time.perf_counter() - t0 < timeout:
            self.frames(1)
        self.frames(5)

    def screenshot(self, path) -> None:
        """Save the window as a PNG (drawn by the GPU or Mesa; waits until the file exists)."""
        dpg.output_frame_buffer(file=str(path))
        for _ in range(200):
            self.frames(1)
            if Path(path).exists():
                break
            time.sleep(0.01)

    def close(self) -> None:
        self.cancel_run()
        if self.run_thread:
            self.run_thread.join(timeout=30)
        self.executor.close()
        dpg.destroy_context()


def main(graph_path: str | None = None) -> int:
    """``msgr-nodes gui [GRAPH]``: open the editor (on a graph file if given)."""
    state = EditorState.open(graph_path) if graph_path else EditorState()
    app = EditorApp(state)
    app.build()
    if graph_path:
        problems = state.problems_by_node()
        if problems:
            app.set_status(f"{sum(map(len, problems.values()))} problem(s), shown on the nodes")
    else:
        app.set_status("File > Use the bundled sample pair loads the recommended graph on it; "
                       "Ctrl+Space adds nodes")
    app.loop()
    app.close()
    return 0
