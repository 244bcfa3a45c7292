"""The executor: evaluates a graph with Merkle-keyed caching and a thread pool.

Cache key of a node = SHA-256 of (node type, node version, canonical effective
parameters, the keys and ports of its inputs, and the identity of every file it
reads). Node ids and positions never enter it, so editing one parameter
recomputes exactly that node and its downstream cone, and identical sub-chains
are computed once.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import networkx as nx

from .cache import DiskCache, MemoryCache, NodeResult
from .errors import Cancelled, MsgrError
from .graph import Graph
from .spec import CancelToken, RunContext
from .types import dumps_canonical, jsonable


@dataclass(frozen=True)
class Event:
    """Something that happened to a node during a run.

    kind: ``started``, ``progress`` (``fraction`` in [0, 1], ``message``),
    ``warning``, ``finished`` (``cached``, ``seconds``), ``failed`` (``message``),
    ``skipped`` (an upstream node failed), ``cancelled``.
    """

    kind: str
    node: str
    fraction: float | None = None
    message: str = ""
    seconds: float | None = None
    cached: bool = False


@dataclass
class RunResult:
    """The outcome of one run: results of the kept nodes, errors, what was computed."""

    keys: dict[str, str]
    results: dict[str, NodeResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    tracebacks: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors and not self.skipped and not self.cancelled

    def output(self, node: str, port: str | None = None) -> Any:
        """A node's output value (the first output when ``port`` is not given)."""
        if node not in self.results:
            why = self.errors.get(node) or self.skipped.get(node) or "not kept by this run"
            raise MsgrError(f"{node}: no result ({why})")
        outs = self.results[node].outputs
        return outs[port] if port is not None else next(iter(outs.values()))

    def raise_for_errors(self) -> None:
        if self.cancelled:
            raise Cancelled("the run was cancelled")
        if self.errors:
            raise MsgrError("; ".join(self.errors.values()))


def _default_memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.25)
    except (ValueError, OSError, AttributeError):
        return 2 * 1024**3


def file_identity(path: str) -> list:
    """What enters a cache key for a file a node reads: path, size and mtime."""
    try:
        st = os.stat(path)
        return [os.path.realpath(path), st.st_size, st.st_mtime_ns]
    except OSError:
        return [path, "missing"]


class Executor:
    """Runs graphs; keeps a memory cache (and optionally a disk cache) across runs.

    ``jobs`` threads run independent branches concurrently (numpy/scipy/numba
    release the GIL). ``on_event`` receives :class:`Event` objects from worker
    threads. ``memory_bytes`` bounds the memory cache (default: a quarter of RAM).
    """

    def __init__(self, jobs: int = 2, memory_bytes: int | None = None,
                 cache_dir: str | os.PathLike | None = None, disk_bytes: int = 20 * 1024**3,
                 on_event: Callable[[Event], None] | None = None):
        self.jobs = max(1, int(jobs))
        self.memory = MemoryCache(_default_memory_bytes() if memory_bytes is None else memory_bytes)
        self.disk = DiskCache(cache_dir, disk_bytes) if cache_dir else None
        self.on_event = on_event
        self.run_counts: dict[str, int] = {}  # node type -> times computed (tests, stats)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ keys
    def keys(self, graph: Graph, nodes: Iterable[str] | None = None) -> dict[str, str]:
        """The Merkle cache key of every node (or of ``nodes`` and their ancestors)."""
        g = graph.to_networkx()
        wanted = set(graph.nodes) if nodes is None else _with_ancestors(g, nodes)
        keys: dict[str, str] = {}
        for nid in nx.topological_sort(g.subgraph(wanted)):
            node = graph.nodes[nid]
            spec = graph.registry.get(node.type)
            params = graph.effective_params(nid)
            files = {}
            for p in spec.params:
                if p.kind == "path" and p.reads and params.get(p.name):
                    files[p.name] = file_identity(params[p.name])
            inputs = {port: [keys[l.src], l.src_port] for port, l in sorted(graph.incoming(nid).items())}
            material = {"type": node.type, "version": spec.version, "params": params,
                        "inputs": inputs, "files": files}
            if not spec.cacheable:
                material["node"] = nid  # side effects are per node, never shared
            keys[nid] = hashlib.sha256(dumps_canonical(material).encode()).hexdigest()
        return keys

    def cached_result(self, key: str) -> NodeResult | None:
        """A result from the memory cache (the editor's preview uses this)."""
        return self.memory.get(key)

    # ------------------------------------------------------------------ running
    def run(self, graph: Graph, outputs: Iterable[str] | None = None,
            cancel: CancelToken | None = None) -> RunResult:
        """Validate, then evaluate ``outputs`` (default: every node) and their ancestors.

        Raises :class:`GraphInvalid` before anything runs if the graph has problems.
        A failing node does not stop the others: its error is in ``errors`` and the
        nodes that depend on it are in ``skipped``.
        """
        graph.check(files=False)  # a missing file fails its node; the other branches still run
        t_start = time.perf_counter()
        cancel = cancel or CancelToken()
        g = graph.to_networkx()
        targets = list(graph.nodes) if outputs is None else list(outputs)
        for t in targets:
            graph.node(t)
        needed = _with_ancestors(g, targets)
        sub = g.subgraph(needed)
        keys = self.keys(graph, needed)
        keep = set(targets) if outputs is not None else {n for n in needed if sub.out_degree(n) == 0} | set(targets)
        result = RunResult(keys=keys)
        graph_json = provenance_json(graph)
        input_paths = graph.input_paths()

        order = {n: i for i, n in enumerate(graph.nodes)}
        values: dict[str, NodeResult] = {}
        consumers = {n: sum(1 for _ in sub.successors(n)) for n in needed}
        pending = set(needed)
        running: dict[Future, str] = {}
        leaders: dict[str, str] = {}        # key -> node computing it now
        followers: dict[str, list[str]] = {}  # leader node -> nodes with the same key

        def finish_value(nid: str, res: NodeResult) -> None:
            values[nid] = res
            if nid in keep:
                result.results[nid] = res
            for pred in sub.predecessors(nid):
                consumers[pred] -= 1
                if consumers[pred] == 0 and pred not in keep:
                    values.pop(pred, None)

        def fail_downstream(nid: str, why: str) -> None:
            for d in nx.descendants(sub, nid):
                if d in pending:
                    pending.discard(d)
                    result.skipped[d] = f"{d}: not run because {nid} failed"
                    self._emit(Event("skipped", d, message=why))

        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="msgr-node")
        try:
            while pending or running:
                if cancel.cancelled:
                    for nid in sorted(pending):
                        self._emit(Event("cancelled", nid))
                    pending.clear()
                ready = [n for n in pending if all(p in values for p in sub.predecessors(n))]
                for nid in sorted(ready, key=order.__getitem__):
                    pending.discard(nid)
                    key = keys[nid]
                    if key in leaders:
                        followers.setdefault(leaders[key], []).append(nid)
                        continue
                    leaders[key] = nid
                    inputs = {port: values[l.src].outputs[l.src_port]
                              for port, l in graph.incoming(nid).items()}
                    fut = pool.submit(self._execute, graph, nid, key, inputs, cancel, graph_json, input_paths)
                    running[fut] = nid
                if not running:
                    if pending:  # only followers of failed leaders can remain; they were skipped
                        pending.clear()
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    nid = running.pop(fut)
                    leaders.pop(keys[nid], None)
                    group = [nid] + followers.pop(nid, [])
                    try:
                        res, was_cached = fut.result()
                    except Cancelled:
                        result.cancelled = True
                        for m in group:
                            self._emit(Event("cancelled", m))
                        cancel.cancel()
                        continue
                    except Exception as exc:
                        spec_type = graph.nodes[nid].type
                        if isinstance(exc, MsgrError):
                            msg = str(exc)
                        else:
                            msg = (f"{type(exc).__name__}: {exc} (an internal error in {spec_type}; "
                                   f"please report it with the output of --debug)")
                            result.tracebacks[nid] = traceback.format_exc()
                        for m in group:
                            result.errors[m] = f"{m} ({spec_type}): {msg}"
                            self._emit(Event("failed", m, message=msg))
                            fail_downstream(m, msg)
                        continue
                    for i, m in enumerate(group):
                        cached_now = was_cached or i > 0
                        (result.cached if cached_now else result.computed).append(m)
                        if i > 0:
                            self._emit(Event("finished", m, seconds=0.0, cached=True))
                        finish_value(m, res)
        except BaseException:
            # Ctrl-C (KeyboardInterrupt) or an error of the loop itself: ask the running nodes to
            # stop and do not wait for them (the caller decides whether to leave at once)
            cancel.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        if cancel.cancelled:
            result.cancelled = True
        result.seconds = time.perf_counter() - t_start
        return result

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            with self._lock:
                self.on_event(event)

    def _execute(self, graph: Graph, nid: str, key: str, inputs: dict, cancel: CancelToken,
                 graph_json: str, input_paths: set[str]) -> tuple[NodeResult, bool]:
        """Run one node (or fetch it from a cache). Returns (result, came from cache)."""
        if cancel.cancelled:
            raise Cancelled("cancelled")
        node = graph.nodes[nid]
        spec = graph.registry.get(node.type)
        port_types = {p.name: p.type for p in spec.outputs}
        t0 = time.perf_counter()
        if spec.cacheable:
            hit = self.memory.get(key)
            if hit is None and self.disk is not None:
                hit = self.disk.get(key, port_types)
                if hit is not None:
                    self.memory.put(key, hit)
            if hit is not None:
                for message in hit.warnings:  # a verdict must reach the user on every run, not only the first
                    self._emit(Event("warning", nid, message=message))
                self._emit(Event("finished", nid, seconds=time.perf_counter() - t0, cached=True))
                return hit, True
        self._emit(Event("started", nid))
        ctx = RunContext(nid, emit=lambda kind, **kw: self._emit(Event(kind, nid, **kw)),
                         cancel=cancel, graph_dir=graph.base_dir, threads=self.jobs)
        ctx.graph_json, ctx.input_paths, ctx.node_type = graph_json, input_paths, node.type
        params = graph.effective_params(nid)
        outputs = spec.run(ctx, inputs, params)
        missing = [p.name for p in spec.outputs if p.name not in outputs]
        if missing:
            raise RuntimeError(f"{node.type} returned no value for output(s) {', '.join(missing)}")
        for p in spec.outputs:
            if not p.port_type.check(outputs[p.name]):
                raise RuntimeError(f"{node.type} output {p.name!r} is not a {p.type}")
        seconds = time.perf_counter() - t0
        res = NodeResult(dict(outputs), jsonable(ctx.metadata), list(ctx.warnings), seconds)
        with self._lock:
            self.run_counts[node.type] = self.run_counts.get(node.type, 0) + 1
        if spec.cacheable:
            self.memory.put(key, res)
            if self.disk is not None:
                try:
                    self.disk.put(key, res, port_types)
                except OSError as exc:  # a full or read-only cache must not lose a computed result
                    self._emit(Event("warning", nid, message=f"not stored in the disk cache: {exc}"))
        self._emit(Event("finished", nid, seconds=seconds, cached=False))
        return res, False


def provenance_json(graph: Graph) -> str:
    """The graph as run: every parameter explicit and every path absolute (for saved files)."""
    from . import __version__

    g = graph.copy()
    for nid, node in g.nodes.items():
        if graph.registry.get(node.type) is not None:
            node.params = graph.effective_params(nid)
    g.meta["run_with"] = f"msgr-nodes {__version__}"
    return g.to_json()


def _with_ancestors(g: nx.DiGraph, nodes: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for n in nodes:
        out.add(n)
        out |= nx.ancestors(g, n)
    return out
