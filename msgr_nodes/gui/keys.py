"""The editor's keyboard shortcuts (F1 lists them): which key calls which command of the app.

Thread: the GUI thread (dearpygui's key-press handler).
"""
from __future__ import annotations

import dearpygui.dearpygui as dpg


def on_key(app, key) -> None:
    """Dispatch one key press to ``app`` (an :class:`~msgr_nodes.gui.app.EditorApp`): function
    keys always, Ctrl+key with Ctrl held, and single keys only while no text field has the focus."""
    ctrl = dpg.is_key_down(dpg.mvKey_LControl) or dpg.is_key_down(dpg.mvKey_RControl)
    shift = dpg.is_key_down(dpg.mvKey_LShift) or dpg.is_key_down(dpg.mvKey_RShift)
    typing = app.dialogs.palette_open or app.inspector.editing()
    plain = {dpg.mvKey_F5: app.run_graph, dpg.mvKey_F1: lambda: app.dialogs.show("help"),
             dpg.mvKey_F3: app.large_view.show,
             dpg.mvKey_Escape: lambda: app.cancel_run() if app.running else app.dialogs.close_palette()}
    with_ctrl = {dpg.mvKey_Z: app.undo, dpg.mvKey_Y: app.redo, dpg.mvKey_V: app.paste,
                 dpg.mvKey_D: app.duplicate, dpg.mvKey_N: app.new,
                 dpg.mvKey_C: app.copy,
                 dpg.mvKey_O: lambda: app.dialogs.show("open_dialog"),
                 dpg.mvKey_S: lambda: app.dialogs.show("save_dialog") if shift else app.save_or_ask(),
                 dpg.mvKey_Q: app.quit, dpg.mvKey_L: app.arrange,
                 dpg.mvKey_Spacebar: app.dialogs.open_palette}
    untyped = {dpg.mvKey_Tab: app.dialogs.open_palette, dpg.mvKey_Delete: app.delete_selection,
               dpg.mvKey_B: lambda: app.preview.toggle_compare(app.state)}
    if key in plain:
        plain[key]()
    elif ctrl and key in with_ctrl:
        with_ctrl[key]()
    elif not ctrl and not typing and key in untyped:
        untyped[key]()
