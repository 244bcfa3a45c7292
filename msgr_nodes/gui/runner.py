"""The run controller: runs the edited graph in the worker process without blocking the window.

Threads: ``start``, ``cancel``, ``keys``, ``find_image``, ``forget_stale_runs`` and ``close`` are
called from the GUI thread. ``start`` hands a copy of the graph to a background *run thread*,
which waits on :class:`ProcessExecutor`; the executor's events reach ``EditorState.on_event``
from that thread (the state only records them; the GUI thread draws them on its next frame).
The run thread writes ``last_result`` and ``status`` once, when the run ends.
"""
from __future__ import annotations

import os
import threading

from ..context import CancelToken
from ..errors import MsgrError
from ..image import Image
from ..process_executor import ProcessExecutor
from .state import EditorState


def run_summary(res) -> str:
    """One status line for a finished run; a failed run names its first failing node first."""
    if res.cancelled:
        return "cancelled"
    if res.ok:
        return f"done: {len(res.computed)} computed, {len(res.cached)} cached, {res.seconds:.1f} s"
    first = next(iter(res.errors.values()), "")
    more = len(res.errors) - 1
    skipped = f"; {len(res.skipped)} skipped" if res.skipped else ""
    return (f"failed: {first}" + (f" (and {more} more node(s) failed, see the Log)" if more > 0 else "")
            + skipped)


class RunController:
    """One worker process, at most one run at a time."""

    def __init__(self, on_done=lambda status: None) -> None:
        # nodes compute in a child process (its own GIL) at the lowest priority, on every core but one:
        # the window is served first and processing takes whatever drawing leaves
        cores = os.cpu_count() or 2
        self.executor = ProcessExecutor(jobs=max(1, cores - 1), numba_threads=max(1, cores - 1))
        self.cancel_token: CancelToken | None = None
        self.thread: threading.Thread | None = None
        self.last_result = None
        self.status = ""
        self.run_keys: dict[str, str] = {}
        self.on_done = on_done  # called from the run thread with the run's status line

    def prepare(self) -> None:
        """Start the worker now: it imports the processing libraries while the window opens."""
        self.executor.start()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def keys(self, state: EditorState) -> dict[str, str]:
        """The cache keys of the graph as it is now ({} for an invalid graph: every state is stale)."""
        try:
            return self.executor.keys(state.graph)
        except Exception:
            return {}

    def forget_stale_runs(self, state: EditorState) -> None:
        """After an edit only the nodes whose cache key changed (the edited node and its downstream
        cone) lose their run state; the rest stay shown as done or cached."""
        keys = self.keys(state)
        for nid in list(state.runs):
            if keys.get(nid) is None or keys.get(nid) != self.run_keys.get(nid):
                del state.runs[nid]

    def find_image(self, state: EditorState, nid: str) -> Image | None:
        """The first image output of a node, if the worker's memory cache holds its current result."""
        if nid not in state.graph.nodes:
            return None
        try:
            key = self.executor.keys(state.graph, [nid])[nid]
        except Exception:
            return None
        res = self.executor.cached_result(key)
        if res is None:
            return None
        return next((v for v in res.outputs.values() if isinstance(v, Image)), None)

    def start(self, state: EditorState, outputs=None) -> str:
        """Validate and start a run; returns the status line to show."""
        if self.running:
            return "a run is already going on"
        problems = state.graph.validate(files=False)  # missing files fail their nodes; the rest runs
        if problems:
            return f"{len(problems)} problem(s): " + "; ".join(str(p) for p in problems[:3])
        state.runs.clear()
        state.mark_queued(state.graph.nodes)
        self.run_keys = self.keys(state)
        self.cancel_token = CancelToken()
        self.executor.on_event = state.on_event
        graph, cancel = state.graph.copy(), self.cancel_token

        def work():  # the run thread
            try:
                res = self.executor.run(graph, outputs, cancel=cancel)
                self.last_result = res
                msg = run_summary(res)
            except MsgrError as exc:
                msg = str(exc)
            state.log.append(msg)
            self.status = msg
            self.on_done(msg)

        self.status = "running..."
        self.thread = threading.Thread(target=work, daemon=True, name="msgr-editor-run")
        self.thread.start()
        return self.status

    def cancel(self) -> None:
        if self.cancel_token is not None:
            self.cancel_token.cancel()

    def close(self) -> None:
        """Cancel a run, wait for its thread and stop the worker."""
        self.cancel()
        if self.thread:
            self.thread.join(timeout=30)
        self.executor.close()
