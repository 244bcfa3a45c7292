"""The frame loop: draws frames at a capped rate, measures the frame rate, and offers the hooks
scripts and tests drive the window with (draw n frames, wait for a run, take a screenshot).

Thread: the GUI thread only (it calls ``frame()`` and renders).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import dearpygui.dearpygui as dpg

IDLE_FPS = 60   # frame-rate caps (a display's vsync may cap lower)
RUN_FPS = 40    # during a run: above the 30 fps aim, the rest of the CPU goes to the nodes


class FrameLoop:
    """Calls ``frame()`` once per frame, at most IDLE_FPS (RUN_FPS while ``running()``)."""

    def __init__(self, frame: Callable[[], None], running: Callable[[], bool]):
        self.frame, self.running = frame, running
        self._last = 0.0
        self.frame_times: list[float] = []
        self.fps_during_run: list[float] = []

    def measure(self) -> float | None:
        """Record this frame's time; the frame rate over the last 60 frames (None at first)."""
        self.frame_times = (self.frame_times + [time.perf_counter()])[-60:]
        if len(self.frame_times) <= 10:
            return None
        fps = (len(self.frame_times) - 1) / (self.frame_times[-1] - self.frame_times[0])
        if self.running():
            self.fps_during_run.append(fps)
        return fps

    def _pace(self) -> None:
        """Wait out the rest of the frame, so that drawing (costly with a software OpenGL renderer)
        leaves the cores to the processing."""
        cap = RUN_FPS if self.running() else IDLE_FPS
        wait = self._last + 1.0 / cap - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self._last = time.perf_counter()

    def frames(self, n: int | None = None, until=None) -> None:
        """Draw n frames, or until ``until()`` is true or the window closes (None: until it closes)."""
        drawn = 0
        while dpg.is_dearpygui_running() and (n is None or drawn < n):
            self._pace()
            self.frame()
            dpg.render_dearpygui_frame()
            drawn += 1
            if until is not None and until():
                break

    def wait_run(self, timeout: float = 300.0) -> None:
        """Keep drawing until the background run ends."""
        t0 = time.perf_counter()
        while self.running() and time.perf_counter() - t0 < timeout:
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
