"""The large view: the previewed node's image in a window of its own (movable, resizable), fit to
the window or at 1:1 (the image's own pixels, no resampling), with pan, a before/after split
against the compare node, the stretch linked or per channel, and pixel values in the source's
units.

Thread: the GUI thread only. Images come through ``find_image(node)`` (the run controller's
cache lookup); nothing here runs a node.
"""
from __future__ import annotations

from typing import Callable

import dearpygui.dearpygui as dpg
import numpy as np

from ..image import Image
from .display import display_rgba, pixel_value, screen_stf, source_units, split_rgba, window_rgba
from .state import EditorState

WINDOW = "big_preview"


class LargeView:
    """A window showing one node's image large; ``show(state)`` opens it, ``refresh`` redraws."""

    def __init__(self, find_image: Callable[[str], Image | None], get_state: Callable[[], EditorState]):
        self.find_image, self.get_state = find_image, get_state
        self.one_to_one = False
        self.split = 1.0            # share of the width showing the selected node (1 = no split)
        self.origin = (0, 0)        # 1:1: image pixel at the window's bottom-left
        self.shown: tuple | None = None
        self.texture = None
        self.image: Image | None = None
        self.window_box = (0, 0, 1, 1)  # 1:1: x0, y0, w, h of the image shown
        self._drag_from = None
        self.pending_origin = (0, 0)

    def build(self) -> None:
        vw, vh = dpg.get_viewport_client_width() or 1200, dpg.get_viewport_client_height() or 800
        with dpg.texture_registry():
            self.texture = dpg.add_static_texture(1, 1, [0.0, 0.0, 0.0, 1.0])
        with dpg.window(label="Large view", tag=WINDOW, show=False, width=int(vw * 0.85), height=int(vh * 0.85),
                        pos=(int(vw * 0.05), int(vh * 0.05)), on_close=lambda: setattr(self, "shown", None)):
            with dpg.group(horizontal=True):
                dpg.add_button(label="Fit", callback=lambda: self.set_scale(False), tag="big_fit")
                dpg.add_button(label="1:1", callback=lambda: self.set_scale(True), tag="big_1to1")
                dpg.add_slider_float(label="before/after split", tag="big_split", default_value=1.0, min_value=0.0,
                                     max_value=1.0, width=200, callback=lambda s, a: self.set_split(a))
                dpg.add_text("", tag="big_title")
            dpg.add_text("", tag="big_pixel")
            with dpg.plot(tag="big_plot", width=-1, height=-1, equal_aspects=True, no_menus=True):
                dpg.add_plot_axis(dpg.mvXAxis, tag="big_px", no_tick_labels=True)
                with dpg.plot_axis(dpg.mvYAxis, tag="big_py", no_tick_labels=True):
                    dpg.add_image_series(self.texture, [0, 0], [1, 1], tag="big_series")
            with dpg.child_window(tag="big_pixels", width=-1, height=-1, show=False, no_scrollbar=True):
                dpg.add_image(self.texture, tag="big_image", width=1, height=1)
        with dpg.handler_registry():
            dpg.add_mouse_drag_handler(button=dpg.mvMouseButton_Left, callback=self._dragging)
            dpg.add_mouse_release_handler(button=dpg.mvMouseButton_Left, callback=self._dropped)

    # ------------------------------------------------------------------ commands
    def show(self) -> None:
        dpg.show_item(WINDOW)
        dpg.focus_item(WINDOW)
        self.refresh(force=True)

    @property
    def visible(self) -> bool:
        return dpg.does_item_exist(WINDOW) and dpg.is_item_shown(WINDOW)

    def set_scale(self, one_to_one: bool) -> None:
        self.one_to_one = one_to_one
        if one_to_one and self.image is not None:  # start centred on the image
            w, h = self._pixels_size()
            self.origin = (max(0, (self.image.width - w) // 2), max(0, (self.image.height - h) // 2))
        self.refresh(force=True)

    def set_split(self, fraction: float) -> None:
        self.split = float(fraction)
        self.refresh(force=True)

    # ------------------------------------------------------------------ drawing
    def _nodes(self, state: EditorState) -> tuple[str | None, str | None]:
        sel = state.selection[0] if len(state.selection) == 1 else state.preview
        return sel, (state.compare if state.compare and state.compare != sel else None)

    def _pixels_size(self) -> tuple[int, int]:
        w, h = dpg.get_item_rect_size("big_pixels") if dpg.is_item_shown("big_pixels") else \
            dpg.get_item_rect_size("big_plot")
        return max(16, int(w) - 16), max(16, int(h) - 16)

    def refresh(self, force: bool = False) -> None:
        """Redraw if the shown node, its result, the scale or the split changed (or ``force``)."""
        if not self.visible:
            return
        state = self.get_state()
        nid, other = self._nodes(state)
        img = self.find_image(nid) if nid else None
        after = self.find_image(other) if (other and self.split < 1.0) else None
        key = (nid, id(img), other, id(after), self.one_to_one, self.split, self.origin, dpg.get_value("linked"))
        if key == self.shown and not force:
            return
        self.shown, self.image = key, img
        dpg.configure_item("big_plot", show=not self.one_to_one)
        dpg.configure_item("big_pixels", show=self.one_to_one)
        if img is None:
            dpg.set_value("big_title", f"{nid or 'no node'}: run the graph to see it here")
            return
        if after is not None and after.data.shape != img.data.shape:
            dpg.set_value("big_title", f"{other} is {after.describe()}, {nid} {img.describe()}: no split")
            after = None
        stf = screen_stf(img.data, dpg.get_value("linked"))
        if self.one_to_one:
            w, h = self._pixels_size()
            flat, x0, y0, w, h = window_rgba(img.data, *self.origin, w, h, stf)
            if after is not None:
                flat = split_rgba(flat, window_rgba(after.data, x0, y0, w, h, stf)[0], w, self.split)
            self.window_box = (x0, y0, w, h)
            self._replace_texture(w, h, flat)
            dpg.configure_item("big_image", texture_tag=self.texture, width=w, height=h)
            where = f"1:1, x {x0}-{x0 + w - 1}, y {y0}-{y0 + h - 1}; drag to pan"
        else:
            flat, w, h, step = display_rgba(img.data, dpg.get_value("linked"), stf)
            if after is not None:
                flat = split_rgba(flat, display_rgba(after.data, dpg.get_value("linked"), stf)[0], w, self.split)
            self._replace_texture(w, h, flat)
            dpg.configure_item("big_series", texture_tag=self.texture, bounds_min=[0, 0],
                               bounds_max=[img.width, img.height])
            for axis in ("big_px", "big_py"):
                dpg.set_axis_limits_auto(axis)
                dpg.fit_axis_data(axis)
            where = "fit" + (f" (shown 1:{step}; 1:1 shows every pixel)" if step > 1 else "")
        split = f"; left {nid}, right {other}" if after is not None else ""
        dpg.set_value("big_title", f"{nid}: {img.describe()}, {where}{split}")

    def _replace_texture(self, w: int, h: int, flat: np.ndarray) -> None:
        old = self.texture  # a texture in use cannot be replaced under its tag: make a new one first
        with dpg.texture_registry():
            self.texture = dpg.add_static_texture(w, h, flat)
        for item in ("big_series", "big_image"):
            dpg.configure_item(item, texture_tag=self.texture)
        if old is not None and dpg.does_item_exist(old):
            dpg.delete_item(old)

    # ------------------------------------------------------------------ mouse
    def image_pixel(self) -> tuple[int, int] | None:
        """The image pixel (x, y, FITS order) under the mouse, or None."""
        if self.image is None or not self.visible:
            return None
        if self.one_to_one:
            if not dpg.is_item_hovered("big_image"):
                return None
            mx, my = dpg.get_mouse_pos(local=False)
            ix, iy = dpg.get_item_rect_min("big_image")
            x0, y0, w, h = self.window_box
            dx, dy = int(mx - ix), int(my - iy)
            return (x0 + dx, y0 + h - 1 - dy) if 0 <= dx < w and 0 <= dy < h else None
        if not dpg.is_item_hovered("big_plot"):
            return None
        x, y = dpg.get_plot_mouse_pos()
        return int(np.floor(x)), int(np.floor(y))

    def update_pixel_readout(self) -> None:
        hit = self.image_pixel()
        if hit is None:
            return
        found = pixel_value(self.image.data, *hit)
        if found:
            col, row, vals = found
            text = f"x {col}  y {row}  value " + " ".join(f"{v:.5f}" for v in vals)
            units = source_units(vals, self.image.meta)
            if units is not None:
                text += "  (file: " + " ".join(f"{u:.1f}" for u in units) + ")"
            dpg.set_value("big_pixel", text)

    def _dragging(self, sender, delta) -> None:
        if self.one_to_one and (self._drag_from is not None or dpg.is_item_hovered("big_image")):
            if self._drag_from is None:
                self._drag_from = self.origin
            _, dx, dy = delta
            self.pending_origin = (self._drag_from[0] - int(dx), self._drag_from[1] + int(dy))

    def _dropped(self, sender, data) -> None:
        if self._drag_from is not None and self.image is not None:
            x, y = self.pending_origin
            w, h = self.window_box[2:]
            self.origin = (max(0, min(x, self.image.width - w)), max(0, min(y, self.image.height - h)))
            self._drag_from = None
            self.refresh(force=True)
