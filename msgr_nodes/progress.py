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


class batch_progress:
    """Progress over a batch: on a terminal a rich bar over the jobs and a row per job (queued,
    running, then its status and seconds), otherwise a line per finished job. Used as
    ``with batch_progress(names) as bar: batch(..., on_start=bar.start, on_done=bar)``."""

    MAX_ROWS = 40  # more jobs than this: the bar over jobs only

    def __init__(self, names: list[str], stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.names = list(names)
        self.total, self.count = len(self.names), 0
        self._lock = threading.Lock()
        self.progress = None
        self.rows: dict[str, int] = {}

    def __enter__(self):
        if self.stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                     console=Console(file=self.stream))
            self.task = self.progress.add_task("jobs", total=self.total, status="")
            if self.total <= self.MAX_ROWS:
                self.rows = {n: self.progress.add_task(n, total=1, status="queued", start=False) for n in self.names}
            self.progress.start()
        return self

    def start(self, name: str) -> None:
        """A worker started this job."""
        with self._lock:
            if self.progress is not None and name in self.rows:
                self.progress.start_task(self.rows[name])
                self.progress.update(self.rows[name], status="running")

    def __call__(self, result) -> None:
        with self._lock:
            self.count += 1
            if self.progress is not None:
                self.progress.update(self.task, advance=1)
                if result.job in self.rows:
                    self.progress.update(self.rows[result.job], completed=1,
                                         status=f"{result.status} ({result.seconds:.1f} s)")
            else:
                print(f"[{self.count}/{self.total}] {result.job}: {result.status} ({result.seconds:.1f} s)",
                      file=self.stream)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


def print_batch_summary(results, stream: TextIO | None = None) -> None:
    """One line per failed job (its input and the reason) on stderr, then a table of every job on
    stdout: job, status, seconds, DetailFit's measured slope b and its verdict."""
    stream = stream or sys.stderr
    for r in results:
        if r.status == "failed":
            inputs = ", ".join(f"{k}={v}" for k, v in r.inputs.items())
            print(f"error: job {r.job} ({inputs}): {r.error}", file=stream)
    width = max([3] + [len(r.job) for r in results])
    print(f"{'job':<{width}}  status   seconds  slope b  verdict")
    for r in results:
        slope = " ".join(f"{b:.4f}" for b in r.slopes) or "-"
        print(f"{r.job:<{width}}  {r.status:<7}  {r.seconds:7.1f}  {slope:<7}  {r.verdict or '-'}")
    ok = sum(r.status == "ok" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    print(f"{ok} ok, {len(results) - ok - skipped} failed, {skipped} skipped (--resume)", file=stream)
