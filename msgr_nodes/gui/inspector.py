"""The Node tab: the selected node's id, label, help, problems and one widget per parameter,
built from the parameter schema (ranges, choices, help as tooltips, advanced ones folded).

Thread: the GUI thread only. Edits leave through ``set_param(node, name, value)`` and
``set_label(node, label)``; the app turns them into undoable commands. A text or number field
commits when its editing ends, not on every keystroke.
"""
from __future__ import annotations

from typing import Any, Callable

import dearpygui.dearpygui as dpg

from .state import EditorState

PANEL = "inspector"          # the dearpygui tag of the tab's group
FILE_DIALOG = "param_dialog"
WRAP = 390


class Inspector:
    """Shows one node's parameters and reports edits."""

    def __init__(self, set_param: Callable[[str, str, Any], None], set_label: Callable[[str, str], None]):
        self.set_param, self.set_label = set_param, set_label
        self.shown_selection: list[str] = []

    def build(self) -> None:
        dpg.add_group(tag=PANEL)

    def refresh(self, state: EditorState, force: bool = False) -> None:
        """Redraw for the current selection (only when it changed, unless ``force``)."""
        sel = list(state.selection)
        if sel == self.shown_selection and not force:
            return
        self.shown_selection = sel
        dpg.delete_item(PANEL, children_only=True)
        if len(sel) != 1 or sel[0] not in state.graph.nodes:
            dpg.add_text("Select a node to edit its parameters.", parent=PANEL)
            return
        nid = sel[0]
        node = state.graph.nodes[nid]
        spec = state.graph.registry.get(node.type)
        dpg.add_text(f"{nid}  ({node.type} v{node.version})", parent=PANEL)
        dpg.add_input_text(label="label", default_value=node.label, parent=PANEL, on_enter=True,
                           callback=lambda s, a: self.set_label(nid, a))
        if spec is None:
            dpg.add_text(f"unknown node type {node.type}: parameters are kept as they are", parent=PANEL)
            return
        dpg.add_text(spec.help, wrap=WRAP, parent=PANEL, color=(170, 170, 170))
        params = spec.effective_params(node.params)
        advanced = dpg.add_collapsing_header(label="advanced", parent=PANEL, default_open=False)
        for p in spec.params:
            self._param_widget(nid, p, params.get(p.name), advanced if p.advanced else PANEL)
        problems = state.problems_by_node().get(nid, [])
        if problems:  # e.g. an expression's syntax error, under the field that holds it
            dpg.add_text("\n".join(problems), parent=PANEL, color=(255, 120, 80), wrap=WRAP,
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
                    dpg.add_button(label="...", user_data=(nid, p), callback=lambda s, a, u: self._choose_file(*u))
        with dpg.tooltip(w):
            dpg.add_text(f"{p.help} ({p.describe_range()})", wrap=350)

    def _choose_file(self, nid: str, p) -> None:
        """A file dialog for a path parameter, offering the file types it declares."""
        if dpg.does_item_exist(FILE_DIALOG):
            dpg.delete_item(FILE_DIALOG)
        with dpg.file_dialog(tag=FILE_DIALOG, width=700, height=450, user_data=(nid, p.name),
                             callback=lambda s, a, u: self.set_param(u[0], u[1], a["file_path_name"])):
            if p.extensions:
                dpg.add_file_extension(",".join(p.extensions), custom_text="images")
            dpg.add_file_extension(".*")
