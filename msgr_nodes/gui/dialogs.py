"""The editor's small windows: the node palette (type to search, Enter to add), the keyboard
shortcuts and the graph file dialogs.

Thread: the GUI thread only. Choices leave through the callbacks given to :meth:`Dialogs.build`.
"""
from __future__ import annotations

from typing import Callable

import dearpygui.dearpygui as dpg

from ..registry import Registry

SHORTCUTS = [
    ("Ctrl+N / Ctrl+O / Ctrl+S", "new, open, save (Ctrl+Shift+S: save as; a stock graph asks for a file)"),
    ("Ctrl+Q", "quit (stops the processing process)"),
    ("Ctrl+Space or Tab", "node palette: type to search, Enter to add"),
    ("Delete", "delete the selected nodes"),
    ("Ctrl+C / Ctrl+V / Ctrl+D", "copy, paste, duplicate the selection"),
    ("Ctrl+Z / Ctrl+Y", "undo, redo (every edit: add, delete, link, parameter, move, label)"),
    ("F5 / Esc", "run the graph / cancel the run"),
    ("F3", "large view of the preview: fit or 1:1, pan, before/after split"),
    ("Ctrl+L", "arrange the graph as layers, without overlaps"),
    ("B", "before/after: toggle the preview between the selected node and the compare node"),
    ("F1", "this help"),
    ("drag from pin to pin", "link (refused with a reason when the types do not match)"),
    ("Ctrl+click a link", "unlink"),
]


class Dialogs:
    """The palette, help and file dialogs (hidden until shown)."""

    def __init__(self, registry: Callable[[], Registry]):
        self.registry = registry  # the current graph's node types
        self.add_node: Callable[[str], None] = lambda type_name: None

    def build(self, add_node: Callable[[str], None], open_file: Callable[[str], None],
              save_file: Callable[[str], None], import_icons: Callable[[str], None],
              export_icons: Callable[[str], None]) -> None:
        self.add_node = add_node
        with dpg.window(label="Add node", tag="palette", show=False, modal=True, width=360, height=420,
                        pos=(300, 150)):
            dpg.add_input_text(tag="palette_filter", hint="search nodes", callback=lambda: self._fill_palette(),
                               on_enter=True, width=-1)
            dpg.add_child_window(tag="palette_list", height=-1)
        with dpg.window(label="Keyboard shortcuts", tag="help", show=False, width=640, height=440, pos=(120, 80)):
            with dpg.table(header_row=True, policy=dpg.mvTable_SizingStretchProp):
                dpg.add_table_column(label="keys", init_width_or_weight=0.35)
                dpg.add_table_column(label="action", init_width_or_weight=0.65)
                for keys, action in SHORTCUTS:
                    with dpg.table_row():
                        dpg.add_text(keys, wrap=0)
                        dpg.add_text(action, wrap=0)
        with dpg.file_dialog(show=False, callback=lambda s, a: open_file(a["file_path_name"]), tag="open_dialog",
                             width=700, height=450):
            dpg.add_file_extension(".json")
        with dpg.file_dialog(show=False, callback=lambda s, a: save_file(a["file_path_name"]), tag="save_dialog",
                             width=700, height=450, default_filename="graph"):
            dpg.add_file_extension(".json")
        with dpg.file_dialog(show=False, callback=lambda s, a: import_icons(a["file_path_name"]),
                             tag="import_xpsm_dialog", width=700, height=450):
            dpg.add_file_extension(".xpsm", custom_text="PixInsight icons")
        with dpg.file_dialog(show=False, callback=lambda s, a: export_icons(a["file_path_name"]),
                             tag="export_xpsm_dialog", width=700, height=450, default_filename="icons"):
            dpg.add_file_extension(".xpsm", custom_text="PixInsight icons")

    @property
    def palette_open(self) -> bool:
        return dpg.is_item_visible("palette") or dpg.is_item_active("palette_filter")

    def open_palette(self) -> None:
        dpg.set_value("palette_filter", "")
        self._fill_palette()
        dpg.show_item("palette")
        dpg.focus_item("palette_filter")

    def close_palette(self) -> None:
        dpg.hide_item("palette")

    def _fill_palette(self) -> None:
        query = dpg.get_value("palette_filter").lower()
        dpg.delete_item("palette_list", children_only=True)
        matches = [s for s in self.registry()
                   if query in s.type.lower() or query in s.help.lower() or query in s.category.lower()]
        for s in matches:
            dpg.add_selectable(label=f"{s.type}  ({s.category})", parent="palette_list", user_data=s.type,
                               callback=lambda snd, a, u: (dpg.hide_item("palette"), self.add_node(u)))

    @staticmethod
    def show(tag: str) -> None:
        """Show one of the windows: ``help``, ``open_dialog``, ``save_dialog``, ``import_xpsm_dialog``,
        ``export_xpsm_dialog``."""
        dpg.show_item(tag)
