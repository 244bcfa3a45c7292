"""An :class:`~msgr_nodes.executor.Executor` in a child process.

The editor draws in its own process: nodes that hold the GIL (pure-Python loops, SEP, parts of
scipy) would otherwise take frames from the window. The child keeps the memory cache between
runs, so a re-run after an edit recomputes only the edited cone, as in-process. If the child dies
(out of memory, a crash in a C library), the nodes it was running fail with the reason and the
next run starts a new child: the editor and the graph survive.

Same calls as ``Executor``: :meth:`ProcessExecutor.keys`, :meth:`~ProcessExecutor.cached_result`,
:meth:`~ProcessExecutor.run` (events arrive on ``on_event`` in the calling thread).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import threading
from typing import Callable, Iterable

from .errors import MsgrError
from .executor import Event, Executor, RunResult
from .graph import Graph
from .context import CancelToken


class _SharedCancel(CancelToken):
    """A cancel token backed by a multiprocessing event (set in the editor, read in the child)."""

    def __init__(self, event) -> None:  # no super().__init__: ``cancelled`` is a property here
        self._event = event

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        self._event.set()


def _child_main(control, query, cancel_event, jobs: int, memory_bytes: int | None, numba_threads: int,
                niceness: int) -> None:
    if niceness and hasattr(os, "nice"):
        # the window (and a software OpenGL renderer's threads) come first; processing takes what is left
        try:
            os.nice(niceness)
        except OSError:
            pass
    if numba_threads:
        try:
            import numba
            numba.set_num_threads(max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS)))
        except ImportError:
            pass
    ex = Executor(jobs=jobs, memory_bytes=memory_bytes)
    send_lock = threading.Lock()

    def serve_queries():
        while True:
            try:
                key = query.recv()
            except (EOFError, OSError):
                return
            query.send(ex.cached_result(key))

    threading.Thread(target=serve_queries, daemon=True, name="msgr-cache-queries").start()

    def send(msg):
        with send_lock:
            control.send(msg)

    ex.on_event = lambda ev: send(("event", ev))
    while True:
        try:
            msg = control.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        _, graph_dict, base_dir, outputs = msg
        try:
            graph = Graph.from_dict(graph_dict, base_dir=base_dir)
            res = ex.run(graph, outputs, cancel=_SharedCancel(cancel_event))
            # the images stay here, in the cache; the editor asks for the ones it shows
            send(("done", RunResult(keys=res.keys, errors=res.errors, tracebacks=res.tracebacks,
                                    skipped=res.skipped, computed=res.computed, cached=res.cached,
                                    cancelled=res.cancelled, seconds=res.seconds)))
        except MsgrError as exc:
            send(("error", MsgrError(str(exc))))
        except Exception as exc:  # anything else is reported, and the child goes on serving
            send(("error", MsgrError(f"{type(exc).__name__}: {exc}")))


class ProcessExecutor:
    """Runs graphs in a child process (started on first use, restarted if it dies).

    ``numba_threads``: threads for numba's parallel kernels in the child (default: all cores but
    one, so that the window keeps a core). ``niceness``: the child's scheduling priority is lowered
    by this much (Unix), so that the process that draws the window is served first.
    """

    def __init__(self, jobs: int = 1, memory_bytes: int | None = None,
                 on_event: Callable[[Event], None] | None = None, numba_threads: int | None = None,
                 niceness: int = 19):
        self.jobs, self.memory_bytes, self.on_event, self.niceness = jobs, memory_bytes, on_event, niceness
        self.numba_threads = numba_threads if numba_threads is not None else max(1, (os.cpu_count() or 2) - 1)
        self._local = Executor(jobs=1, memory_bytes=0)  # cache keys are computed here, no images kept
        self._proc = None
        self._control = self._query = self._cancel_event = None
        self._query_lock = threading.Lock()
        self._run_lock = threading.Lock()

    # ------------------------------------------------------------------ child process
    def start(self) -> None:
        """Start the child now (it imports the processing libraries before the first run needs them)."""
        with self._run_lock:
            self._ensure_child()

    def _ensure_child(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._discard_child()
        ctx = mp.get_context("spawn")  # never fork a process that holds a window and threads
        control, child_control = ctx.Pipe()
        query, child_query = ctx.Pipe()
        self._cancel_event = ctx.Event()
        self._proc = ctx.Process(target=_child_main, name="msgr-nodes-executor", daemon=True,
                                 args=(child_control, child_query, self._cancel_event, self.jobs,
                                       self.memory_bytes, self.numba_threads, self.niceness))
        # BLAS/OpenMP pools size themselves when the child imports numpy: give them the child's share
        # of cores (by default they take every core, and compete with the window's renderer)
        pools = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        saved = {k: os.environ.get(k) for k in pools}
        os.environ.update({k: str(self.numba_threads) for k in pools if saved[k] is None})
        try:
            self._proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
        child_control.close()
        child_query.close()
        self._control, self._query = control, query

    def _discard_child(self) -> None:
        for conn in (self._control, self._query):
            if conn is not None:
                conn.close()
        self._control = self._query = None
        self._proc = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the child (cancelling a run in progress)."""
        if self._proc is None:
            return
        self._cancel_event.set()
        try:
            if self._control is not None:
                self._control.send(("stop",))
        except (OSError, ValueError):
            pass
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout)
        self._discard_child()

    # ------------------------------------------------------------------ Executor's calls
    def keys(self, graph: Graph, nodes: Iterable[str] | None = None) -> dict[str, str]:
        """The Merkle cache key of every node (or of ``nodes`` and their ancestors)."""
        return self._local.keys(graph, nodes)

    def cached_result(self, key: str, timeout: float = 60.0):
        """A result from the child's memory cache, or None (no child, not cached, no answer)."""
        if not self.alive:
            return None
        with self._query_lock:
            try:
                self._query.send(key)
                return self._query.recv() if self._query.poll(timeout) else None
            except (EOFError, OSError):
                return None

    def run(self, graph: Graph, outputs: Iterable[str] | None = None,
            cancel: CancelToken | None = None) -> RunResult:
        """Run in the child; blocks the calling thread, which receives the events. Results stay in
        the child's cache (see :meth:`cached_result`); the returned result has no images."""
        graph.check(files=False)  # invalid graphs are refused here, as Executor.run does
        with self._run_lock:
            self._ensure_child()
            self._cancel_event.clear()
            base_dir = str(graph.base_dir) if graph.base_dir is not None else None
            self._control.send(("run", graph.to_dict(), base_dir, None if outputs is None else list(outputs)))
            running: set[str] = set()
            while True:
                if cancel is not None and cancel.cancelled:
                    self._cancel_event.set()
                if not self._control.poll(0.05):
                    if not self._proc.is_alive():
                        return self._child_died(running)
                    continue
                try:
                    kind, payload = self._control.recv()
                except (EOFError, OSError):
                    return self._child_died(running)
                if kind == "event":
                    if payload.kind == "started":
                        running.add(payload.node)
                    elif payload.kind != "progress" and payload.kind != "warning":
                        running.discard(payload.node)
                    if self.on_event:
                        self.on_event(payload)
                elif kind == "done":
                    return payload
                else:
                    raise payload

    def _child_died(self, running: set[str]) -> RunResult:
        self._proc.join(1.0)
        code = self._proc.exitcode
        why = ("it was killed (out of memory?)" if code is not None and code < 0 else f"exit code {code}")
        message = f"the processing process stopped: {why}; run again to restart it"
        self._discard_child()
        result = RunResult(keys={})
        for nid in sorted(running):
            result.errors[nid] = message
            if self.on_event:
                self.on_event(Event("failed", nid, message=message))
        if not running:
            result.errors["run"] = message
        return result
