"""The executor: evaluates a graph with Merkle-keyed caching and a thread pool.

Cache keys
----------
The key of a node is the SHA-256 of its type, its spec's version, its canonical effective
parameters, the keys and ports of its inputs, the identity (path, size, mtime) of every file
it reads, its spec's ``fingerprint`` and the fingerprint of the package's computing code
(:func:`~msgr_nodes.cache.code_fingerprint`: an upgrade never reads back results of the code
before it). Node ids and positions never enter it, so editing one parameter recomputes exactly
that node and its downstream cone, and identical sub-chains are computed once.

State
-----
One run keeps a :class:`RunState`. Each needed node (a requested output or an ancestor of
one) is in exactly one of these states:

- *pending*: in ``pending``, waiting for its inputs;
- *running*: a leader, its future in ``running``; or a *follower*, in ``followers`` of the
  leader that computes the same key (two nodes with equal keys are computed once);
- *finished*: its value in ``values`` (until no consumer needs it, unless it is kept) and its
  id in ``result.computed`` or ``result.cached``;
- *failed* (``result.errors``), *skipped* because an ancestor failed (``result.skipped``),
  or *cancelled* (an event, and ``result.cancelled``).

Transitions are methods of :class:`Executor`: ``_ready`` (pending nodes whose inputs all
have values), ``_start`` (ready -> running, as leader or follower), ``_complete`` (a future
is done: ``_finish``, ``_fail`` or ``_cancel`` for the leader and its followers together).

Scheduling
----------
The loop in :meth:`Executor.run` starts every ready node (in graph-file order, so runs are
reproducible) on a pool of ``jobs`` threads, then waits for the first future to finish, and
repeats until nothing is pending or running. A failure skips the failed node's descendants
and lets independent branches go on. A cancel (the token, or Ctrl-C in the loop) moves
every pending node to cancelled; running nodes stop at their next ``ctx.progress``.
Events (:class:`Event`) are sent from the worker threads, one at a time, to ``on_event``.
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

from .cache import DiskCache, MemoryCache, NodeResult, code_fingerprint
from .errors import Cancelled, MsgrError
from .context import CancelToken, RunContext
from .model import GraphModel
from .provenance import files_read, graph_as_run
from .wires import dumps_canonical, jsonable


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


@dataclass
class RunState:
    """What one run knows; see "State" in the module docstring."""

    graph: GraphModel
    sub: nx.DiGraph                  # the needed nodes and the links among them
    keys: dict[str, str]             # node -> cache key
    keep: set[str]                   # nodes whose results the caller gets
    order: dict[str, int]            # node -> position in the graph file (start order)
    cancel: CancelToken
    result: RunResult
    graph_json: str                  # the graph as run, for provenance in saved files
    input_paths: frozenset[str]      # files the graph reads (never written over)
    pending: set[str]
    consumers: dict[str, int]        # node -> consumers that have not finished yet
    running: dict[Future, str] = field(default_factory=dict)
    leaders: dict[str, str] = field(default_factory=dict)          # key -> node computing it
    followers: dict[str, list[str]] = field(default_factory=dict)  # leader -> same-key nodes
    values: dict[str, NodeResult] = field(default_factory=dict)
    t_start: float = field(default_factory=time.perf_counter)


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
    def keys(self, graph: GraphModel, nodes: Iterable[str] | None = None) -> dict[str, str]:
        """The Merkle cache key of every node (or of ``nodes`` and their ancestors)."""
        g = graph.to_networkx()
        wanted = set(graph.nodes) if nodes is None else _with_ancestors(g, nodes)
        keys: dict[str, str] = {}
        code = code_fingerprint()
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
                        "inputs": inputs, "files": files, "code": code}
            if spec.fingerprint is not None:
                try:
                    material["fingerprint"] = jsonable(spec.fingerprint(params))
                except Exception as exc:  # a broken hook names its node instead of a bare traceback
                    raise MsgrError(f"{nid} ({node.type}): its fingerprint hook failed: {exc}") from exc
            if not spec.cacheable:
                material["node"] = nid  # side effects are per node, never shared
            keys[nid] = hashlib.sha256(dumps_canonical(material).encode()).hexdigest()
        return keys

    def cached_result(self, key: str) -> NodeResult | None:
        """A result from the memory cache (the editor's preview uses this)."""
        return self.memory.get(key)

    # ------------------------------------------------------------------ running
    def run(self, graph: GraphModel, outputs: Iterable[str] | None = None,
            cancel: CancelToken | None = None) -> RunResult:
        """Validate, then evaluate ``outputs`` (default: every node) and their ancestors.

        Raises :class:`GraphInvalid` before anything runs if the graph has problems.
        A failing node does not stop the others: its error is in ``errors`` and the
        nodes that depend on it are in ``skipped``. See the module docstring for the states.
        """
        graph.check(files=False)  # a missing file fails its node; the other branches still run
        state = self._plan(graph, outputs, cancel or CancelToken())
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="msgr-node")
        try:
            while state.pending or state.running:
                if state.cancel.cancelled:
                    self._cancel(state, sorted(state.pending))
                for nid in self._ready(state):
                    self._start(state, nid, pool)
                if not state.running:
                    # only followers of failed leaders can remain, and they were skipped
                    state.pending.clear()
                    break
                done, _ = wait(list(state.running), return_when=FIRST_COMPLETED)
                for fut in done:
                    self._complete(state, fut)
        except BaseException:
            # Ctrl-C (KeyboardInterrupt) or an error of the loop itself: ask the running nodes to
            # stop and do not wait for them (the caller decides whether to leave at once)
            state.cancel.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        state.result.cancelled = state.result.cancelled or state.cancel.cancelled
        state.result.seconds = time.perf_counter() - state.t_start
        return state.result

    def _plan(self, graph: GraphModel, outputs: Iterable[str] | None, cancel: CancelToken) -> "RunState":
        """The initial state: every needed node pending, none running, no values."""
        g = graph.to_networkx()
        targets = list(graph.nodes) if outputs is None else list(outputs)
        for t in targets:
            graph.node(t)  # an unknown id fails here, naming the graph's nodes
        needed = _with_ancestors(g, targets)
        sub = g.subgraph(needed)
        keep = set(targets)  # every node when no outputs are named
        keys = self.keys(graph, needed)
        return RunState(graph=graph, sub=sub, keys=keys, keep=keep, cancel=cancel,
                        order={n: i for i, n in enumerate(graph.nodes)},
                        pending=set(needed), consumers={n: sub.out_degree(n) for n in needed},
                        result=RunResult(keys=keys), graph_json=graph_as_run(graph),
                        input_paths=files_read(graph))

    def _ready(self, state: "RunState") -> list[str]:
        """pending -> ready: the pending nodes whose inputs all have values, in graph-file order."""
        ready = [n for n in state.pending if all(p in state.values for p in state.sub.predecessors(n))]
        return sorted(ready, key=state.order.__getitem__)

    def _start(self, state: "RunState", nid: str, pool: ThreadPoolExecutor) -> None:
        """ready -> running (a leader), or ready -> waiting on the leader of the same key (a follower)."""
        state.pending.discard(nid)
        key = state.keys[nid]
        if key in state.leaders:
            state.followers.setdefault(state.leaders[key], []).append(nid)
            return
        state.leaders[key] = nid
        inputs = {port: state.values[l.src].outputs[l.src_port]
                  for port, l in state.graph.incoming(nid).items()}
        fut = pool.submit(self._execute, state.graph, nid, key, inputs, state.cancel,
                          state.graph_json, state.input_paths)
        state.running[fut] = nid

    def _complete(self, state: "RunState", fut: Future) -> None:
        """running -> finished, failed or cancelled, for a leader and its followers together."""
        nid = state.running.pop(fut)
        state.leaders.pop(state.keys[nid], None)
        group = [nid] + state.followers.pop(nid, [])
        try:
            res, was_cached = fut.result()
        except Cancelled:
            self._cancel(state, group)
            state.result.cancelled = True
            state.cancel.cancel()
        except Exception as exc:
            self._fail(state, group, exc)
        else:
            self._finish(state, group, res, was_cached)

    def _finish(self, state: "RunState", group: list[str], res: NodeResult, was_cached: bool) -> None:
        """-> finished: store the value; drop the inputs' values once no consumer needs them."""
        for i, m in enumerate(group):
            (state.result.cached if was_cached or i > 0 else state.result.computed).append(m)
            if i > 0:
                self._emit(Event("finished", m, seconds=0.0, cached=True))
            state.values[m] = res
            if m in state.keep:
                state.result.results[m] = res
            for pred in state.sub.predecessors(m):
                state.consumers[pred] -= 1
                if state.consumers[pred] == 0 and pred not in state.keep:
                    state.values.pop(pred, None)

    def _fail(self, state: "RunState", group: list[str], exc: Exception) -> None:
        """-> failed: record the error (a traceback for internal errors); descendants -> skipped."""
        node_type = state.graph.nodes[group[0]].type
        if isinstance(exc, MsgrError):
            msg = str(exc)
        else:
            msg = (f"{type(exc).__name__}: {exc} (an internal error in {node_type}; "
                   f"please report it with the output of --debug)")
            state.result.tracebacks[group[0]] = "".join(traceback.format_exception(exc))
        for m in group:
            state.result.errors[m] = f"{m} ({node_type}): {msg}"
            self._emit(Event("failed", m, message=msg))
            for d in nx.descendants(state.sub, m):
                if d in state.pending:
                    state.pending.discard(d)
                    state.result.skipped[d] = f"{d}: not run because {m} failed"
                    self._emit(Event("skipped", d, message=msg))

    def _cancel(self, state: "RunState", nodes: list[str]) -> None:
        """pending or running -> cancelled."""
        for m in nodes:
            state.pending.discard(m)
            self._emit(Event("cancelled", m))

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            with self._lock:
                self.on_event(event)

    def _execute(self, graph: GraphModel, nid: str, key: str, inputs: dict, cancel: CancelToken,
                 graph_json: str, input_paths: frozenset[str]) -> tuple[NodeResult, bool]:
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
        ctx = RunContext(nid, node_type=node.type, emit=lambda kind, **kw: self._emit(Event(kind, nid, **kw)),
                         cancel=cancel, graph_dir=graph.base_dir, threads=self.jobs,
                         graph_json=graph_json, input_paths=input_paths)
        outputs = spec.run(ctx, inputs, graph.effective_params(nid))
        spec.check_outputs(outputs)
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


def _with_ancestors(g: nx.DiGraph, nodes: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for n in nodes:
        out.add(n)
        out |= nx.ancestors(g, n)
    return out
