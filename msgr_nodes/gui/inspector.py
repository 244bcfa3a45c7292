"""The Node tab: the selected node's id, label, help, problems and one widget per parameter,
built from the parameter schema (ranges, choices, help as tooltips, advanced ones folded).

Thread: the GUI thread only. Edits leave through ``set_param(node, name, value)`` and
``set_label(node, label)``; the app turns them into undoable commands. A text or number field
commits when it loses focus, not on every keystroke, and :meth:`Inspector.commit_pending` commits
what is typed but not committed yet (the app calls it before a run, a save or an export).
Numbers show (and store) as many significant digits as :func:`digits_for` gives their parameter.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import dearpygui.dearpygui as dpg

from .state import EditorState

PANEL = "inspector"          # the dearpygui tag of the tab's group
FILE_DIALOG = "param_dialog"
WRAP = 390


def digits_for(p) -> int:
    """Significant digits a float parameter needs: enough for its smallest meaningful value
    (its lower bound when positive, e.g. Register's smoothing 0.0001) next to its largest."""
    lo = p.min if p.min not in (None, 0) else None
    hi = p.max if p.max not in (None, 0) else None
    if lo is None or hi is None:
        return 6
    return max(4, min(10, int(math.ceil(math.log10(abs(hi) / abs(lo)))) + 3))


def as_typed(value: float, digits: int) -> float:
    """``value`` rounded to the digits the field shows (a drag step or float32 noise never lands
    in the graph file: 0.0004 stays 0.0004)."""
    return float(f"{float(value):.{digits}g}")


class Inspector:
    """Shows one node's parameters and reports edits."""

    def __init__(self, set_param: Callable[[str, str, Any], None], set_label: Callable[[str, str], None]):
        self.set_param, self.set_label = set_param, set_label
        self.shown_selection: list[str] = []
        self.fields: list[tuple[int, str, str, Callable]] = []  # (widget, node, parameter, convert)

    def build(self) -> None:
        dpg.add_group(tag=PANEL)

    def refresh(self, state: EditorState, force: bool = False) -> None:
        """Redraw for the current selection (only when it changed, unless ``force``)."""
        sel = list(state.selection)
        if sel == self.shown_selection and not force:
            return
        self.shown_selection = sel
        self.fields = []
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

    def editing(self) -> bool:
        """Whether a field has the keyboard (keys then type into it, they are no shortcuts)."""
        return any(dpg.does_item_exist(w) and dpg.is_item_active(w) for w, *_ in self.fields)

    def commit_pending(self, state: EditorState) -> None:
        """Apply every field whose shown value differs from the graph's (typed without Enter)."""
        for widget, nid, name, convert in list(self.fields):
            if not dpg.does_item_exist(widget) or nid not in state.graph.nodes:
                continue
            value = convert(dpg.get_value(widget))
            if value != state.graph.get(f"{nid}.{name}") and not (value == "" and not state.graph.get(f"{nid}.{name}")):
                self.set_param(nid, name, value)

    def _commit_on_release(self, widget, nid, name, convert=lambda v: v) -> None:
        """Apply a text or number field when it loses focus (not on every keystroke or drag step)."""
        self.fields.append((widget, nid, name, convert))
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
            digits = digits_for(p)
            w = dpg.add_drag_double(label=p.name, default_value=float(value), parent=parent, width=200,
                                    speed=max(abs(float(value)) * 0.01, (p.min or 0) * 0.1, 1e-6),
                                    clamped=bool(kw), format=f"%.{digits}g",
                                    **{k: float(v) for k, v in kw.items()})
            self._commit_on_release(w, nid, p.name, lambda v, d=digits: as_typed(v, d))
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
