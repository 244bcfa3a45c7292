"""The Preview tab: the selected node's first image output, auto-stretched, with zoom and pan,
pixel values, a histogram and a before/after toggle against a second node.

Thread: the GUI thread only. It reads results from the executor's memory cache through
``find_image(node) -> Image | None`` (the run controller's), never runs anything itself.
"""
from __future__ import annotations

from typing import Callable

import dearpygui.dearpygui as dpg
import numpy as np

from ..image import Image
from .display import display_rgba, histogram, pixel_value
from .state import EditorState

CHANNEL_COLOURS = [(255, 80, 80), (80, 255, 80), (80, 140, 255)]


class Preview:
    """The preview panel's widgets and what they show."""

    def __init__(self, find_image: Callable[[str], Image | None], get_state: Callable[[], EditorState]):
        self.find_image = find_image
        self.get_state = get_state  # the app's current state (opening a file replaces it)
        self.texture = None
        self.key: tuple | None = None
        self.data: np.ndarray | None = None
        self.show_compare = False
        # what a change made in this panel (stretch, compare node) redraws: this panel, and the app
        # may add the large view
        self.changed: Callable[[], None] = lambda: self.refresh(self.get_state(), force=True)

    def build(self) -> None:
        with dpg.texture_registry():
            self.texture = dpg.add_static_texture(1, 1, [0.0, 0.0, 0.0, 1.0])
        with dpg.group(horizontal=True):
            dpg.add_text("compare with:")
            dpg.add_combo([], tag="compare_combo", width=160, callback=lambda s, a: self.set_compare(self.get_state(), a))
            dpg.add_checkbox(label="before/after (B)", tag="compare_toggle",
                             callback=lambda s, a: self.toggle_compare(self.get_state(), a))
        dpg.add_checkbox(label="linked stretch", default_value=True, tag="linked",
                         callback=lambda: self.changed())
        dpg.add_text("", tag="preview_title")
        with dpg.plot(tag="preview_plot", width=-1, height=330, equal_aspects=True, no_menus=True):
            dpg.add_plot_axis(dpg.mvXAxis, tag="px", no_tick_labels=True)
            with dpg.plot_axis(dpg.mvYAxis, tag="py", no_tick_labels=True):
                dpg.add_image_series(self.texture, [0, 0], [1, 1], tag="preview_series")
        dpg.add_text("", tag="pixel_text")
        with dpg.plot(tag="hist_plot", width=-1, height=150, no_menus=True):
            dpg.add_plot_axis(dpg.mvXAxis, label="value", tag="hx")
            dpg.add_plot_axis(dpg.mvYAxis, label="log count", tag="hy")

    def set_nodes(self, node_ids) -> None:
        """The nodes offered for comparison."""
        dpg.configure_item("compare_combo", items=list(node_ids))

    def set_compare(self, state: EditorState, nid: str) -> None:
        state.compare = nid
        self.changed()

    def toggle_compare(self, state: EditorState, on: bool | None = None) -> None:
        """Show the compare node instead of the selected one (``on`` None: flip)."""
        self.show_compare = (not self.show_compare) if on is None else bool(on)
        dpg.set_value("compare_toggle", self.show_compare)
        self.changed()

    def refresh(self, state: EditorState, force: bool = False) -> None:
        """Show the selected (or compared) node's image if it changed since the last call."""
        sel = state.selection[0] if len(state.selection) == 1 else state.preview
        nid = state.compare if (self.show_compare and state.compare) else sel
        img = self.find_image(nid) if nid else None
        key = (nid, id(img), dpg.get_value("linked"))
        if key == self.key and not force:
            return
        self.key = key
        if img is None:
            dpg.set_value("preview_title", f"{nid or 'no node'}: run the graph to preview" if nid else "")
            self.data = None
            return
        state.preview = sel
        self._show(img, nid)

    def _show(self, img: Image, nid: str) -> None:
        flat, w, h, step = display_rgba(img.data, dpg.get_value("linked"))
        # a texture in use cannot be replaced under the same tag: make a new one, then drop the old
        old = self.texture
        with dpg.texture_registry():
            self.texture = dpg.add_static_texture(w, h, flat)
        dpg.configure_item("preview_series", texture_tag=self.texture,
                           bounds_min=[0, 0], bounds_max=[img.width, img.height])
        if old is not None and dpg.does_item_exist(old):
            dpg.delete_item(old)
        for axis in ("px", "py"):
            dpg.set_axis_limits_auto(axis)
            dpg.fit_axis_data(axis)
        self.data = img.data
        dpg.set_value("preview_title", f"{nid}: {img.describe()}, auto-stretched"
                      + (f" (shown 1:{step})" if step > 1 else ""))
        dpg.delete_item("hy", children_only=True)
        centres, hists = histogram(img.data)
        colours = CHANNEL_COLOURS if len(hists) == 3 else [(220, 220, 220)]
        for hst, col in zip(hists, colours):
            s = dpg.add_line_series(list(centres), list(hst), parent="hy")
            with dpg.theme() as t:
                with dpg.theme_component(dpg.mvLineSeries):
                    dpg.add_theme_color(dpg.mvPlotCol_Line, col, category=dpg.mvThemeCat_Plots)
            dpg.bind_item_theme(s, t)
        dpg.fit_axis_data("hx")
        dpg.fit_axis_data("hy")

    def update_pixel_readout(self) -> None:
        """The value under the mouse, while it hovers the image (every frame)."""
        if self.data is None or not dpg.is_item_hovered("preview_plot"):
            return
        x, y = dpg.get_plot_mouse_pos()
        hit = pixel_value(self.data, x, y)
        if hit:
            col, row, vals = hit
            dpg.set_value("pixel_text", f"x {col}  y {row}  value " + " ".join(f"{v:.5f}" for v in vals))
