"""The visual editor (dearpygui): a thin app that lays out the window and wires its rooms
(canvas, inspector, preview, dialogs, run controller) to one :class:`EditorState`. No processing
here, and no drawing logic beyond the layout: each room draws itself.

Threads: everything here runs on the GUI thread (dearpygui's callbacks included), except what the
run controller does on its run thread (see :mod:`.runner`). The frame loop (:meth:`EditorApp.frame`)
is where results of the run thread become visible: it reads the state's ``version`` and redraws.
"""
from __future__ import annotations

import dearpygui.dearpygui as dpg

from ..errors import MsgrError
from .big_preview import LargeView
from .canvas import Canvas
from .dialogs import Dialogs
from .frame_loop import FrameLoop
from .inspector import Inspector
from .layout import layered_positions
from .keys import on_key
from .menus import build_menu
from .preview import Preview
from .runner import RunController
from .screen import screen_size, window_geometry
from .commands import AddLink, MoveNodes, RemoveLink, SetLabel, SetParam
from .state import EditorState


class EditorApp:
    """The dearpygui editor around one :class:`EditorState`."""

    def __init__(self, state: EditorState, width: int | None = None, height: int | None = None):
        self.state = state
        # as large as asked (default 1500x900) but never larger than the screen it opens on
        self.width, self.height, self.x, self.y = window_geometry(screen_size(), (width or 1500, height or 900))
        self.side_width = 360
        self.status = ""
        self.runner = RunController(on_done=lambda msg: setattr(self, "status", msg))
        self.canvas = Canvas(on_link=self._link, on_unlink=lambda dst, port: self.apply(RemoveLink(dst, port)))
        self.inspector = Inspector(set_param=self.set_param,
                                   set_label=lambda nid, label: self.apply(SetLabel(nid, label)))
        self.preview = Preview(find_image=lambda nid: self.runner.find_image(self.state, nid),
                               get_state=lambda: self.state)
        self.dialogs = Dialogs(registry=lambda: self.state.graph.registry)
        self.large_view = LargeView(find_image=lambda nid: self.runner.find_image(self.state, nid),
                                    get_state=lambda: self.state)
        self.preview.changed = lambda: self._refresh_previews(force=True)
        self.copied = ""  # the last text put on the clipboard (Copy as command / Python)
        self.pacer = FrameLoop(self.frame, lambda: self.running)
        self.log_len = 0
        self.drawn_version = -1
        self.was_running = False
        self.preview_selection: tuple = ()

    # what scripts and tests read
    node_item = property(lambda self: self.canvas.node_item)
    link_item = property(lambda self: self.canvas.link_item)
    last_result = property(lambda self: self.runner.last_result)
    running = property(lambda self: self.runner.running)
    frame_times = property(lambda self: self.pacer.frame_times)
    fps_during_run = property(lambda self: self.pacer.fps_during_run)
    frames = property(lambda self: self.pacer.frames)          # draw n frames (scripts and tests)
    wait_run = property(lambda self: self.pacer.wait_run)      # draw until the run ends
    screenshot = property(lambda self: self.pacer.screenshot)

    # ------------------------------------------------------------------ layout
    def build(self) -> None:
        self.runner.prepare()
        dpg.create_context()
        dpg.create_viewport(title="msgr-nodes", width=self.width, height=self.height, x_pos=self.x, y_pos=self.y)
        self.canvas.build()
        with dpg.window(tag="main", no_scrollbar=True):
            build_menu(self)
            self._refresh_recent()
            with dpg.group(horizontal=True):
                side = self.side_width = max(360, min(460, self.width // 3))
                with dpg.child_window(width=-(side + 10), tag="canvas_panel", no_scrollbar=True):
                    self.canvas.add_editor()
                with dpg.child_window(width=side, tag="side"):
                    with dpg.group(horizontal=True):
                        dpg.add_button(label="Run (F5)", callback=lambda: self.run_graph(), tag="run_btn")
                        dpg.add_button(label="Cancel (Esc)", callback=lambda: self.cancel_run(), tag="cancel_btn")
                        dpg.add_text("", tag="fps_text")
                    dpg.add_text("", tag="status_text", wrap=side - 20, color=(230, 200, 120))
                    with dpg.tab_bar(tag="side_tabs"):
                        with dpg.tab(label="Node", tag="tab_node"):
                            self.inspector.build()
                        with dpg.tab(label="Preview", tag="tab_preview"):
                            self.preview.build()
                        with dpg.tab(label="Log", tag="tab_log"):
                            dpg.add_child_window(tag="log_panel", width=-1, height=-1, horizontal_scrollbar=False)
        self.dialogs.build(add_node=self.add_node, open_file=self.open, save_file=self.save,
                           import_icons=self.import_xpsm, export_icons=self.export_xpsm)
        self.large_view.build()
        with dpg.handler_registry():
            dpg.add_key_press_handler(callback=lambda sender, key: on_key(self, key))
            dpg.add_mouse_release_handler(callback=lambda: self._sync_positions())
        dpg.set_primary_window("main", True)
        dpg.setup_dearpygui()
        dpg.show_viewport()
        self.rebuild_canvas()

    def rebuild_canvas(self) -> None:
        """Redraw the canvas and what depends on the graph (after any edit, undo or redo)."""
        self.canvas.rebuild(self.state)
        self._refresh_title()
        self.inspector.refresh(self.state, force=True)
        self.preview.set_nodes(self.state.graph.nodes)

    # ------------------------------------------------------------------ edits
    def apply(self, cmd) -> bool:
        """Apply an undoable command; a refused one is shown in the status line and the log."""
        try:
            self.state.apply(cmd)
        except MsgrError as exc:
            self.set_status(str(exc))
            self.state.log.append(f"refused: {exc}")
            return False
        self.runner.forget_stale_runs(self.state)
        self.rebuild_canvas()
        return True

    def _link(self, src: str, src_port: str, dst: str, dst_port: str) -> None:
        if self.apply(AddLink(src, src_port, dst, dst_port)):
            self.set_status(f"linked {src}.{src_port} -> {dst}.{dst_port}")

    def _sync_positions(self) -> None:
        moved = self.canvas.moved(self.state)
        if moved:
            self.state.apply(MoveNodes(moved))
            self._refresh_title()

    def _read_selection(self) -> None:
        self.state.selection = self.canvas.selected()

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
            self.runner.forget_stale_runs(self.state)
            self.rebuild_canvas()

    def redo(self) -> None:
        if self.state.redo():
            self.runner.forget_stale_runs(self.state)
            self.rebuild_canvas()

    def set_param(self, nid: str, name: str, value) -> None:
        if self.apply(SetParam(nid, name, value)):
            self.set_status(f"{nid}.{name} = {value!r}")

    def copy(self) -> None:
        self._read_selection()
        self.state.copy_selection()

    def arrange(self) -> None:
        """Edit > Arrange: lay the graph out as layers of its DAG, measured node sizes, no overlaps."""
        if not all(dpg.get_item_rect_size(item)[1] > 0 for item in self.canvas.node_item.values()):
            self.frames(1)  # nodes are measured once drawn
        # room for the thumbnails a run will add, so that the next run does not make nodes overlap
        sizes = {nid: (dpg.get_item_rect_size(item)[0],
                       dpg.get_item_rect_size(item)[1] + self.canvas.room_for_thumbnail(self.state, nid))
                 for nid, item in self.canvas.node_item.items()}
        width = dpg.get_item_state("canvas_panel").get("rect_size", [0])[0] or self.width - self.side_width - 30
        if self.apply(MoveNodes(layered_positions(self.state.graph, sizes, max_width=width - 40))):
            self.set_status("arranged (Ctrl+Z undoes it)")

    def copy_as(self, kind: str) -> None:
        """Edit > Copy as command / Copy as Python: what repeats this graph and its edits headless."""
        self.inspector.commit_pending(self.state)
        try:
            text = self.state.as_command() if kind == "command" else self.state.as_python()
        except MsgrError as exc:
            self.set_status(str(exc))
            return
        dpg.set_clipboard_text(text)
        self.copied = text
        self.state.log.append(f"copied: {text}")
        self.set_status("copied to the clipboard: " + (text if kind == "command" else "a Python script (see the Log)"))

    def select(self, nid: str) -> None:
        """Select one node (as a click would)."""
        self.canvas.clear_selection()
        self.state.selection = [nid]
        self.inspector.refresh(self.state, force=True)
        self._refresh_previews(force=True)

    def _refresh_previews(self, force: bool = False) -> None:
        """The Preview tab and the large view, when what they show may have changed (each looks
        its result up in the worker's cache, so this is not done every frame)."""
        self.preview.refresh(self.state, force)
        self.large_view.refresh(force)

    # ------------------------------------------------------------------ files
    def new(self) -> None:
        self.inspector.commit_pending(self.state)
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

    def import_xpsm(self, path: str) -> None:
        """File > Import PixInsight icons: the icon set as a new graph, its warnings in the Log."""
        try:
            st, warnings = EditorState.from_xpsm(path, settings_dir=self.state.settings_dir)
        except MsgrError as exc:
            return self.set_status(str(exc))
        self.state = st
        st.log += [f"import: {w}" for w in warnings]
        self.rebuild_canvas()
        self.set_status(f"imported {path}: {len(st.graph.nodes)} nodes" + (f"; {len(warnings)} warning(s) in the Log"
                                                                          if warnings else ""))

    def export_xpsm(self, path: str) -> None:
        """File > Export PixInsight icons."""
        self.inspector.commit_pending(self.state)
        try:
            self.set_status(f"wrote {path} ({self.state.export_xpsm(path)} icons)")
        except MsgrError as exc:
            self.set_status(str(exc))

    def save_or_ask(self) -> None:
        """Ctrl+S: save to the graph's file; a new graph or a stock graph (a template) asks for one."""
        if self.state.path is None:
            self.inspector.commit_pending(self.state)
            if self.state.template:
                self.set_status(f"{self.state.template} is a stock graph: choose a file of your own to save it")
            self.dialogs.show("save_dialog")
        else:
            self.save()

    def quit(self) -> None:
        """File > Quit: commit what is typed, then leave the loop (``close`` stops the worker)."""
        self.inspector.commit_pending(self.state)
        dpg.stop_dearpygui()

    def save(self, path: str | None = None) -> None:
        self.inspector.commit_pending(self.state)
        self._sync_positions()
        try:
            target = self.state.save(path)
        except MsgrError as exc:
            self.set_status(str(exc))
            self.dialogs.show("save_dialog")
            return
        self.set_status(f"saved {target}")
        self._refresh_title()
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        if not dpg.does_item_exist("recent_menu"):
            return
        dpg.delete_item("recent_menu", children_only=True)
        for p in self.state.recent():
            dpg.add_menu_item(label=p, parent="recent_menu", user_data=p, callback=lambda s, a, u: self.open(u))

    def _refresh_title(self) -> None:
        name = str(self.state.path) if self.state.path else (
            f"{self.state.template} (stock graph: Save as to keep your changes)" if self.state.template else "untitled")
        dpg.set_viewport_title(f"msgr-nodes - {name}{' *' if self.state.dirty else ''}")

    # ------------------------------------------------------------------ running
    def run_graph(self, outputs=None) -> None:
        if not self.running:
            self.inspector.commit_pending(self.state)  # a path typed without Enter counts
            self._sync_positions()
            self.pacer.fps_during_run = []
        self.set_status(self.runner.start(self.state, outputs))
        self.canvas.update_states(self.state)

    def cancel_run(self) -> None:
        self.runner.cancel()

    # ------------------------------------------------------------------ keys and frames
    def set_status(self, text: str) -> None:
        self.status = text
        if dpg.does_item_exist("status_text"):
            dpg.set_value("status_text", text)

    def frame(self) -> None:
        """Work done once per frame: selection, run states, preview, log, frame rate."""
        fps = self.pacer.measure()
        if fps is not None:
            dpg.set_value("fps_text", f"{fps:.0f} fps")
        sel = self.canvas.new_selection()  # only a click changes it, never a redraw
        if sel and sel != self.state.selection:
            self.inspector.commit_pending(self.state)  # the field typed into belongs to the old node
            self.state.selection = sel
        self.inspector.refresh(self.state)
        running = self.running
        if self.state.version != self.drawn_version:  # node states changed since the last frame
            self.drawn_version = self.state.version
            self.canvas.update_states(self.state)
            if not running:
                self._refresh_previews()
        if self.was_running and not running:  # a run just ended: show its results
            self.canvas.update_states(self.state)
            self._refresh_previews()
            self.canvas.refresh_thumbnails(self.state, self.runner.keys(self.state),
                                           lambda nid: self.runner.find_image(self.state, nid))
        self.was_running = running
        if tuple(self.state.selection) != self.preview_selection:
            self.preview_selection = tuple(self.state.selection)
            self._refresh_previews()
        self.preview.update_pixel_readout()
        self.large_view.update_pixel_readout()
        if len(self.state.log) != self.log_len:
            self.log_len = len(self.state.log)
            dpg.delete_item("log_panel", children_only=True)
            for line in self.state.log[-300:]:  # wrapped to the panel: no line is cut off
                dpg.add_text(line, wrap=self.side_width - 40, parent="log_panel")
            dpg.set_y_scroll("log_panel", -1.0)
        dpg.set_value("status_text", self.status)

    def close(self) -> None:
        self.runner.close()
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
    app.frames()
    app.close()
    return 0
