"""The editor's menu bar: every command the keys reach, and those only the menu offers (Arrange,
Copy as command, Large view, Minimap, Quit).

Thread: the GUI thread only (built once; its callbacks run on the GUI thread).
"""
from __future__ import annotations

import dearpygui.dearpygui as dpg


def build_menu(app) -> None:
    """The menu bar of ``app`` (an :class:`~msgr_nodes.gui.app.EditorApp`)."""
    item = dpg.add_menu_item
    with dpg.menu_bar():
        with dpg.menu(label="File"):
            item(label="New", shortcut="Ctrl+N", callback=lambda: app.new())
            item(label="Open...", shortcut="Ctrl+O", callback=lambda: app.dialogs.show("open_dialog"))
            item(label="Use the bundled sample pair", callback=lambda: app.open_sample())
            item(label="Save", shortcut="Ctrl+S", callback=lambda: app.save_or_ask())
            item(label="Save as...", shortcut="Ctrl+Shift+S", callback=lambda: app.dialogs.show("save_dialog"))
            with dpg.menu(label="Recent", tag="recent_menu"):
                pass
            dpg.add_separator()
            item(label="Import PixInsight icons...", callback=lambda: app.dialogs.show("import_xpsm_dialog"))
            item(label="Export PixInsight icons...", callback=lambda: app.dialogs.show("export_xpsm_dialog"))
            dpg.add_separator()
            item(label="Quit", shortcut="Ctrl+Q", callback=lambda: app.quit())
        with dpg.menu(label="Edit"):
            item(label="Undo", shortcut="Ctrl+Z", callback=lambda: app.undo())
            item(label="Redo", shortcut="Ctrl+Y", callback=lambda: app.redo())
            item(label="Copy", shortcut="Ctrl+C", callback=lambda: app.copy())
            item(label="Paste", shortcut="Ctrl+V", callback=lambda: app.paste())
            item(label="Duplicate", shortcut="Ctrl+D", callback=lambda: app.duplicate())
            item(label="Delete", shortcut="Del", callback=lambda: app.delete_selection())
            dpg.add_separator()
            item(label="Arrange", shortcut="Ctrl+L", callback=lambda: app.arrange())
            item(label="Copy as command", callback=lambda: app.copy_as("command"))
            item(label="Copy as Python", callback=lambda: app.copy_as("python"))
        with dpg.menu(label="View"):
            item(label="Large view of the preview", shortcut="F3", callback=lambda: app.large_view.show())
            item(label="Minimap", check=True, default_value=app.canvas.minimap, tag="minimap_item",
                 callback=lambda s, a: app.canvas.show_minimap(a))
        with dpg.menu(label="Nodes"):
            item(label="Add node...", shortcut="Ctrl+Space", callback=lambda: app.dialogs.open_palette())
            for spec in app.state.graph.registry:
                item(label=f"{spec.category} / {spec.type}", callback=lambda s, a, u: app.add_node(u),
                     user_data=spec.type)
        with dpg.menu(label="Run"):
            item(label="Run graph", shortcut="F5", callback=lambda: app.run_graph())
            item(label="Cancel", shortcut="Esc", callback=lambda: app.cancel_run())
        with dpg.menu(label="Help"):
            item(label="Keyboard shortcuts", shortcut="F1", callback=lambda: app.dialogs.show("help"))
