"""What a running node may use besides its inputs: :class:`RunContext`, and the
:class:`CancelToken` a run checks between nodes and inside long loops."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import Cancelled


class CancelToken:
    """Set once to ask a run to stop; checked between nodes and inside long loops."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class RunContext:
    """What a running node may use besides its inputs: progress, warnings, cancel, metadata.

    Parameters
    ----------
    node_id, node_type : str
        The running node's id in its graph and its type name.
    emit : callable, optional
        ``emit(kind, **fields)`` sends an event (``progress``, ``warning``) to whoever runs the graph.
    cancel : CancelToken, optional
        Checked by :meth:`progress` and :meth:`check_cancel`.
    graph_dir : Path, optional
        The graph file's folder.
    threads : int
        Threads a node may use for independent work (channels), see :meth:`map`.
    graph_json : str, optional
        The graph as it runs (every parameter explicit, paths absolute), for provenance in saved files.
    input_paths : frozenset of str
        Real paths of the files the graph reads; a node that writes files never writes over them.
    """

    def __init__(self, node_id: str, *, node_type: str = "", emit: Callable[..., None] | None = None,
                 cancel: CancelToken | None = None, graph_dir: Path | None = None, threads: int = 1,
                 graph_json: str | None = None, input_paths: Iterable[str] = ()):
        self.node_id = node_id
        self.node_type = node_type
        self.threads = max(1, int(threads))
        self.graph_dir = graph_dir
        self.graph_json = graph_json
        self.input_paths = frozenset(input_paths)
        self._emit = emit
        self._cancel = cancel
        self.metadata: dict[str, Any] = {}
        self.warnings: list[str] = []

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress in [0, 1]; also a cancel point."""
        self.check_cancel()
        if self._emit:
            self._emit("progress", fraction=max(0.0, min(1.0, float(fraction))), message=message)

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``fn`` over independent items (e.g. channels) on ``threads`` threads; results in order.
        numpy, scipy and numba release the GIL, so the threads share the work. Fewer items than two
        rounds' worth run all at once: three channels on two threads would otherwise take two rounds,
        the second with one core idle (DetailFit on a 6000x4000 RGB frame: 18.4 -> 14.3 s, 0.15 GB more)."""
        items = list(items)
        workers = len(items) if len(items) < 2 * self.threads else self.threads
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            yield from pool.map(fn, items)

    def warn(self, message: str) -> None:
        """Record a warning for the user (shown in the log, kept with cached results)."""
        self.warnings.append(message)
        if self._emit:
            self._emit("warning", message=message)

    def check_cancel(self) -> None:
        """Raise :class:`Cancelled` if the run was asked to stop."""
        if self._cancel is not None and self._cancel.cancelled:
            raise Cancelled("cancelled")
