"""The size of the screen the editor opens on, so the window fits it.

Thread: called once by the GUI thread before the window is created. No dearpygui here (it can
only tell the viewport's size once the viewport exists).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

FALLBACK = (1280, 800)  # the smallest screen the editor is laid out for


def screen_size() -> tuple[int, int]:
    """(width, height) in px of the X display's default screen; ``MSGR_NODES_SCREEN=WxH`` overrides
    it; FALLBACK when neither is known (no X, e.g. Wayland without XWayland or Windows)."""
    forced = os.environ.get("MSGR_NODES_SCREEN", "")
    if "x" in forced:
        try:
            w, h = (int(v) for v in forced.lower().split("x", 1))
            return w, h
        except ValueError:
            pass
    name = ctypes.util.find_library("X11")
    if not name or not os.environ.get("DISPLAY"):
        return FALLBACK
    try:
        x11 = ctypes.CDLL(name)
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XDefaultScreen.argtypes = [ctypes.c_void_p]
        x11.XDisplayWidth.argtypes = x11.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        display = x11.XOpenDisplay(None)
        if not display:
            return FALLBACK
        try:
            screen = x11.XDefaultScreen(display)
            return int(x11.XDisplayWidth(display, screen)), int(x11.XDisplayHeight(display, screen))
        finally:
            x11.XCloseDisplay(display)
    except (OSError, AttributeError):
        return FALLBACK


def window_geometry(screen: tuple[int, int], wanted: tuple[int, int] = (1500, 900)) -> tuple[int, int, int, int]:
    """(width, height, x, y) of a window as large as ``wanted`` that fits ``screen`` with room for
    a panel and a title bar, centred."""
    sw, sh = screen
    w, h = min(wanted[0], sw - 40), min(wanted[1], sh - 80)
    return w, h, max(0, (sw - w) // 2), max(0, (sh - h) // 3)
