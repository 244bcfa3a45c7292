"""The visual editor (dearpygui): a thin app that lays out the window and wires its rooms
(canvas, inspector, preview, dialogs, run controller) to one :class:`EditorState`. No processing
here, and no drawing logic beyond the layout: each room draws itself.

Threads: everything here runs on the GUI thread (dearpygui's callbacks included), except what the
run controller does on its run thread (see :mod:`.runner`). The frame loop (:meth:`EditorApp.frame`)
is where results of the run thread become visible: it reads the state's ``version`` and redraws.
"""
from __future__ import annotations

import time
from pathlib import Path

import dearpygui.dearpygui as dpg

from ..errors import MsgrError
from .canvas import Canvas
from .dialogs import Dialogs
from .inspector import Inspector
from .preview import Preview
from .runner import RunController
from .state import AddLink, EditorState, MoveNodes, RemoveLink, SetLabel, SetParam

IDLE_FPS = 60   # frame-rate caps (a display's vsync may cap lower)
RUN_FPS = 40    # during a run: above the 30 fps aim, the rest of the CPU goes to the nodes


class EditorApp:
    """The dearpygui editor around one :class:`EditorState`."""

    def __init__(self, state: EditorState, width: int = 1500, height: int = 900):
        self.state = state
        self.width, self.height = width, height
        self.status = ""
        self.runner = RunController(on_done=lambda msg: setattr(self, "status", msg))
        self.canvas = Canvas(on_link=self._link, on_unlink=lambda dst, port: self.apply(RemoveLink(dst, port)))
        self.inspector = Inspector(set_param=self.set_param,
                                   set_label=lambda nid, label: self.apply(SetLabel(nid, label)))
        self.preview = Preview(find_image=lambda nid: self.runner.find_image(self.state, nid),
                               get_state=lambda: self.state)
        self.dialogs = Dialogs(registry=lambda: self.state.graph.registry)
        self._last_frame = 0.0
        self.frame_times: list[float] = []
        self.fps_during_run: list[float] = []
        self.log_len = 0
        self.drawn_version = -1
        self.was_running = False
        self.preview_selection: tuple = ()

    # what scripts and tests read
    node_item = property(lambda self: self.canvas.node_item)
    link_item = property(lambda self: self.canvas.link_item)
    last_result = property(lambda self: self.runner.last_result)
    running = property(lambda self: self.runner.running)

    # ------------------------------------------------------------------ layout
    def build(self) -> None:
        self.runner.prepare()
        dpg.create_context()
        dpg.create_viewport(title="msgr-nodes", width=self.width, height=self.height)
        self.canvas.build()
        with dpg.window(tag="main", no_scrollbar=True):
            self._menu()
            with dpg.group(horizontal=True):
                with dpg.child_window(width=-430, tag="canvas_panel", no_scrollbar=True):
                    self.canvas.add_editor()
                with dpg.child_window(width=420, tag="side"):
                    with dpg.group(horizontal=True):
                        dpg.add_button(label="Run (F5)", callback=lambda: self.run_graph(), tag="run_btn")
                        dpg.add_button(label="Cancel (Esc)", callback=lambda: self.cancel_run(), tag="cancel_btn")
                        dpg.add_text("", tag="fps_text")
                    dpg.add_text("", tag="status_text", wrap=400, color=(230, 200, 120))
                    with dpg.tab_bar(tag="side_tabs"):
                        with dpg.tab(label="Node", tag="tab_node"):
                            self.inspector.build()
                        with dpg.tab(label="Preview", tag="tab_preview"):
                            self.preview.build()
                        with dpg.tab(label="Log", tag="tab_log"):
                            dpg.add_input_text(tag="log_text", multiline=True, readonly=True, width=-1, height=-1)
        self.dialogs.build(add_node=self.add_node, open_file=self.open, save_file=self.save)
        with dpg.handler_registry():
            dpg.add_key_press_handler(callback=self._on_key)
            dpg.add_mouse_release_handler(callback=lambda: self._sync_positions())
        dpg.set_primary_window("main", True)
        dpg.setup_dearpygui()
        dpg.show_viewport()
        self.rebuild_canvas()

    def _menu(self) -> None:
        item = dpg.add_menu_item
        with dpg.menu_bar():
            with dpg.menu(label="File"):
                item(label="New", shortcut="Ctrl+N", callback=lambda: self.new())
                item(label="Open...", shortcut="Ctrl+O", callback=lambda: self.dialogs.show("open_dialog"))
                item(label="Use the bundled sample pair", callback=lambda: self.open_sample())
                item(label="Save", shortcut="Ctrl+S", callback=lambda: self.save())
                item(label="Save as...", shortcut="Ctrl+Shift+S", callback=lambda: self.dialogs.show("save_dialog"))
                with dpg.menu(label="Recent", tag="recent_menu"):
                    pass
            with dpg.menu(label="Edit"):
                item(label="Undo", shortcut="Ctrl+Z", callback=lambda: self.undo())
                item(label="Redo", shortcut="Ctrl+Y", callback=lambda: self.redo())
                item(label="Copy", shortcut="Ctrl+C", callback=lambda: self.state.copy_selection())
                item(label="Paste", shortcut="Ctrl+V", callback=lambda: self.paste())
                item(label="Duplicate", shortcut="Ctrl+D", callback=lambda: self.duplicate())
                item(label="Delete", shortcut="Del", callback=lambda: self.delete_selection())
            with dpg.menu(label="Nodes"):
                item(label="Add node...", shortcut="Ctrl+Space", callback=lambda: self.dialogs.open_palette())
                for spec in self.state.graph.registry:
                    item(label=f"{spec.category} / {spec.type}", callback=lambda s, a, u: self.add_node(u),
                         user_data=spec.type)
            with dpg.menu(label="Run"):
                item(label="Run graph", shortcut="F5", callback=lambda: self.run_graph())
                item(label="Cancel", shortcut="Esc", callback=lambda: self.cancel_run())
            with dpg.menu(label="Help"):
                item(label="Keyboard shortcuts", shortcut="F1", callback=lambda: self.dialogs.show("help"))
        self._refresh_recent()

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

    def select(self, nid: str) -> None:
        """Select one node (as a click would)."""
        self.canvas.clear_selection()
        self.state.selection = [nid]
        self.inspector.refresh(self.state, force=True)
        self.preview.refresh(self.state, force=True)

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
        name = str(self.state.path) if self.state.path else "untitled"
        dpg.set_viewport_title(f"msgr-nodes - {name}{' *' if self.state.dirty else ''}")

    # ------------------------------------------------------------------ running
    def run_graph(self, outputs=None) -> None:
        if not self.running:
            self._sync_positions()
            self.fps_during_run = []
        self.set_status(self.runner.start(self.state, outputs))
        self.canvas.update_states(self.state)

    def cancel_run(self) -> None:
        self.runner.cancel()

    # ------------------------------------------------------------------ keys and frames
    def _on_key(self, sender, key) -> None:
        ctrl = dpg.is_key_down(dpg.mvKey_LControl) or dpg.is_key_down(dpg.mvKey_RControl)
        shift = dpg.is_key_down(dpg.mvKey_LShift) or dpg.is_key_down(dpg.mvKey_RShift)
        typing = self.dialogs.palette_open
        plain = {dpg.mvKey_F5: self.run_graph, dpg.mvKey_F1: lambda: self.dialogs.show("help"),
                 dpg.mvKey_Escape: lambda: self.cancel_run() if self.running else self.dialogs.close_palette()}
        with_ctrl = {dpg.mvKey_Z: self.undo, dpg.mvKey_Y: self.redo, dpg.mvKey_V: self.paste,
                     dpg.mvKey_D: self.duplicate, dpg.mvKey_N: self.new,
                     dpg.mvKey_C: lambda: (self._read_selection(), self.state.copy_selection()),
                     dpg.mvKey_O: lambda: self.dialogs.show("open_dialog"),
                     dpg.mvKey_S: lambda: self.dialogs.show("save_dialog") if shift or self.state.path is None
                     else self.save(),
                     dpg.mvKey_Spacebar: self.dialogs.open_palette}
        untyped = {dpg.mvKey_Tab: self.dialogs.open_palette, dpg.mvKey_Delete: self.delete_selection,
                   dpg.mvKey_B: lambda: self.preview.toggle_compare(self.state)}
        if key in plain:
            plain[key]()
        elif ctrl and key in with_ctrl:
            with_ctrl[key]()
        elif not ctrl and not typing and key in untyped:
            untyped[key]()

    def set_status(self, text: str) -> None:
        self.status = text
        if dpg.does_item_exist("status_text"):
            dpg.set_value("status_text", text)

    def frame(self) -> None:
        """Work done once per frame: selection, run states, preview, log, frame rate."""
        now = time.perf_counter()
        self.frame_times = (self.frame_times + [now])[-60:]
        if len(self.frame_times) > 10:
            fps = (len(self.frame_times) - 1) / (self.frame_times[-1] - self.frame_times[0])
            dpg.set_value("fps_text", f"{fps:.0f} fps")
            if self.running:
                self.fps_during_run.append(fps)
        sel = self.canvas.selected()
        if sel and sel != self.state.selection:
            self.state.selection = sel
        self.inspector.refresh(self.state)
        running = self.running
        if self.state.version != self.drawn_version:  # node states changed since the last frame
            self.drawn_version = self.state.version
            self.canvas.update_states(self.state)
            if not running:
                self.preview.refresh(self.state)
        if self.was_running and not running:  # a run just ended: show its results
            self.canvas.update_states(self.state)
            self.preview.refresh(self.state)
        self.was_running = running
        if tuple(self.state.selection) != self.preview_selection:
            self.preview_selection = tuple(self.state.selection)
            self.preview.refresh(self.state)
        self.preview.update_pixel_readout()
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

    def frames(self, n: int | None = None, until=None) -> None:
        """Draw n frames, or until ``until()`` is true or the window closes (scripts and tests
        drive the window with this; :meth:`loop` is the same without a limit)."""
        drawn = 0
        while dpg.is_dearpygui_running() and (n is None or drawn < n):
            self._pace()
            self.frame()
            dpg.render_dearpygui_frame()
            drawn += 1
            if until is not None and until():
                break

    def loop(self, until=None) -> None:
        self.frames(None, until)

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
    app.loop()
    app.close()
    return 0
