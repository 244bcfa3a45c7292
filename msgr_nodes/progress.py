"""Draw executor events on stderr: rich progress bars on a terminal, plain lines otherwise."""
from __future__ import annotations

import sys
import threading
from typing import TextIO

from .executor import Event


class PlainProgress:
    """One line per event that matters (for logs and pipes)."""

    def __init__(self, stream: TextIO | None = None, labels: dict[str, str] | None = None):
        self.stream = stream or sys.stderr
        self.labels = labels or {}
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, ev: Event) -> None:
        name = self.labels.get(ev.node, ev.node)
        line = None
        if ev.kind == "started":
            line = f"[{name}] started"
        elif ev.kind == "progress":
            step = int((ev.fraction or 0) * 4)  # at most every 25 %
            if step > self._last.get(ev.node, -1):
                self._last[ev.node] = step
                line = f"[{name}] {100 * (ev.fraction or 0):3.0f}% {ev.message}".rstrip()
        elif ev.kind == "finished":
            line = f"[{name}] {'cached' if ev.cached else 'done'} in {ev.seconds or 0:.2f} s"
        elif ev.kind in ("failed", "warning", "skipped", "cancelled"):
            line = f"[{name}] {ev.kind}" + (f": {ev.message}" if ev.message else "")
        if line:
            with self._lock:
                print(line, file=self.stream, flush=True)

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        pass


class RichProgress:
    """A progress bar per node (rich), for an interactive terminal."""

    def __init__(self, labels: dict[str, str], stream: TextIO | None = None):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(file=stream or sys.stderr)
        self.progress = Progress(TextColumn("{task.description:<24}"), BarColumn(),
                                 TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                 console=self.console, transient=False)
        self.labels = labels
        self.tasks: dict[str, int] = {}

    def _task(self, node: str) -> int:
        if node not in self.tasks:
            self.tasks[node] = self.progress.add_task(self.labels.get(node, node), total=1.0, status="")
        return self.tasks[node]

    def __call__(self, ev: Event) -> None:
        t = self._task(ev.node)
        if ev.kind == "started":
            self.progress.update(t, status="running")
        elif ev.kind == "progress":
            self.progress.update(t, completed=ev.fraction or 0, status=ev.message[:40])
        elif ev.kind == "finished":
            self.progress.update(t, completed=1.0, status="cached" if ev.cached else f"{ev.seconds:.1f} s")
        elif ev.kind == "warning":
            self.progress.console.print(f"[yellow]{self.labels.get(ev.node, ev.node)}: {ev.message}")
        elif ev.kind in ("failed", "skipped", "cancelled"):
            self.progress.update(t, status=ev.kind)

    def __enter__(self) -> "RichProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()


def make_progress(labels: dict[str, str], stream: TextIO | None = None):
    """Rich bars when ``stream`` (default stderr) is a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    if stream.isatty():
        return RichProgress(labels, stream)
    return PlainProgress(stream, labels)


def print_failures(result, debug: bool = False, stream: TextIO | None = None) -> None:
    """A failed run on stderr: one line per failed node, then one line naming the nodes that were
    skipped because of them (tracebacks too with ``debug``)."""
    stream = stream or sys.stderr
    if debug:
        for tb in result.tracebacks.values():
            print(tb, file=stream)
    lines = list(result.errors.values())
    if result.skipped:
        names = sorted(result.skipped)
        lines.append(f"{len(names)} node(s) not run because of the error{'s' if len(result.errors) > 1 else ''} "
                     f"above: {', '.join(names)}")
    for line in lines:
        print(f"error: {line}", file=stream)
