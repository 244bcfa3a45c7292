"""One graph over many files, on this machine or a Dask cluster: ``msgr_nodes.batch(graph, jobs)``
(``msgr-nodes batch`` is a thin layer over it).

A job is a set of ``NODE.PARAM=VALUE`` settings applied to the graph (``--each`` globs zipped in
sorted order, or the rows of a CSV manifest). Each job runs exactly as ``msgr-nodes run`` would
(same validation, cache keys and outputs) in a Dask worker process; a failing job does not stop
the others. Save paths may use ``{job}`` besides Save's own ``{source_stem}``, ``{source_dir}``
and ``{source_name}``; two jobs that would write one file are refused before anything runs.

Without a client, a LocalCluster on 127.0.0.1 runs the jobs: one single-threaded worker process
per core (BLAS and numba pools sized to one thread, so the machine is not oversubscribed) with a
share of the memory each. A worker that dies mid-job (killed, out of memory) has its job retried
once on another worker, then the job is reported as failed.
"""
from __future__ import annotations

import csv
import glob
import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import networkx as nx

from .errors import GraphInvalid, MsgrError
from .executor import Executor
from .graph import Graph
from .graphfile import dumps, graph_to_dict
from .io.atomic import write_bytes_atomic
from .io.formats import ImageFileError, read_graph_from_image
from .io.paths import SOURCE_FIELDS, fill_source_fields
from .model import GraphModel
from .provenance import files_read, graph_as_run, graph_for_output

JOB_PLACEHOLDER = "{job}"
ALLOWED_WORKER_DEATHS = 1  # a job whose worker died once is retried once elsewhere


@dataclass
class Job:
    """One run of the graph: its name (``{job}`` in output paths) and its settings."""

    name: str
    settings: dict[str, str] = field(default_factory=dict)


@dataclass
class JobResult:
    """What one job did: ``status`` ok, failed or skipped (``--resume``), the reason of a failure,
    its seconds, the DetailFit verdict and the files it wrote."""

    job: str
    status: str
    seconds: float = 0.0
    verdict: str = ""
    error: str = ""
    written: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    worker: str = ""  # host:pid of the process that ran it
    slopes: list[float] = field(default_factory=list)  # DetailFit's measured b, per channel


# ---------------------------------------------------------------------------- jobs
def jobs_from_each(each: list[tuple[str, str]]) -> list[Job]:
    """Jobs from ``(NODE.PARAM, GLOB)`` pairs: each glob's matches in sorted order, zipped."""
    if not each:
        raise MsgrError("no jobs: give --each NODE.PARAM=GLOB (or --manifest FILE.csv)")
    columns = []
    for target, pattern in each:
        files = sorted(glob.glob(os.path.expanduser(pattern)))
        if not files:
            raise MsgrError(f"--each {target}={pattern}: matches no file")
        columns.append((target, files))
    counts = {f"{t}={p}": len(c[1]) for (t, p), c in zip(each, columns)}
    if len(set(counts.values())) > 1:
        raise MsgrError("the --each globs match different numbers of files ("
                        + ", ".join(f"{k}: {v}" for k, v in counts.items()) + "): they are zipped in sorted order, "
                        "so each must match one file per job")
    jobs = []
    for i in range(len(columns[0][1])):
        settings = {target: str(Path(files[i]).absolute()) for target, files in columns}
        name = Path(columns[0][1][i]).name.split(".")[0]
        jobs.append(Job(name, settings))
    return _unique_names(jobs)


def jobs_from_manifest(path: str | os.PathLike) -> list[Job]:
    """Jobs from a CSV file: a header of NODE.PARAM columns (and optionally ``job``), a row per job;
    relative paths resolve against the manifest's folder."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise MsgrError(f"{p}: no such manifest") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MsgrError(f"{p}: not a CSV manifest ({exc})") from None
    if not rows:
        raise MsgrError(f"{p}: no jobs (a header of NODE.PARAM columns and one row per job)")
    bad = [c for c in rows[0] if c != "job" and "." not in (c or "")]
    if bad:
        raise MsgrError(f"{p}: column(s) {', '.join(map(repr, bad))} are not NODE.PARAM (e.g. narrow.path)")
    jobs = []
    for i, row in enumerate(rows, 1):
        settings = {}
        for col, value in row.items():
            if col == "job" or value is None:
                continue
            looks_like_path = col.endswith(".path") and value and not os.path.isabs(os.path.expanduser(value))
            settings[col] = str((p.parent / value).absolute()) if looks_like_path else value
        jobs.append(Job(row.get("job") or f"job{i}", settings))
    return _unique_names(jobs)


def _unique_names(jobs: list[Job]) -> list[Job]:
    seen: dict[str, int] = {}
    for job in jobs:
        k = seen.get(job.name, 0)
        seen[job.name] = k + 1
        if k:
            job.name = f"{job.name}_{k + 1}"
    return jobs


# ---------------------------------------------------------------------------- one job's graph
def job_graph(graph: GraphModel, job: Job, shared: Iterable[tuple[str, str]] = ()) -> GraphModel:
    """The graph as this job runs it: the shared settings, then the job's, ``{job}`` filled in."""
    g = graph.copy()
    problems = []
    for target, value in list(shared) + list(job.settings.items()):
        try:
            g.set(target, value, parse=True)
        except MsgrError as exc:
            problems.append(f"job {job.name}: {exc}")
    for nid, node in g.nodes.items():
        for name, value in list(node.params.items()):
            if isinstance(value, str) and JOB_PLACEHOLDER in value:
                node.params[name] = value.replace(JOB_PLACEHOLDER, job.name)
    if problems:
        raise MsgrError("; ".join(problems))
    return g


def _source_load(g: GraphModel, nid: str) -> str | None:
    """The Load whose file an image arriving at ``nid`` was read from (its main input, upstream)."""
    seen = set()
    while nid not in seen:
        seen.add(nid)
        node = g.nodes[nid]
        if node.type == "Load":
            return nid
        incoming = g.incoming(nid)
        link = incoming.get(g.main_input(nid)) or next(iter(incoming.values()), None)
        if link is None:
            return None
        nid = link.src
    return None


def output_paths(g: GraphModel) -> dict[str, str]:
    """Save node -> the file it will write, placeholders filled from the Load it descends from."""
    out = {}
    for nid, node in g.nodes.items():
        spec = g.registry.get(node.type)
        if spec is None:
            continue
        for p in spec.params:
            if not p.writes:
                continue
            value = g.effective_params(nid).get(p.name)
            if not value:
                continue
            if p.is_template(value) or any(f in value for f in SOURCE_FIELDS):
                load = _source_load(g, nid)
                source = g.effective_params(load).get("path") if load else None
                if not source:
                    continue
                try:
                    value = fill_source_fields(value, source)  # as Save fills it
                except ValueError:
                    continue  # Save names the bad placeholder when the job runs
            out[nid] = os.path.realpath(value)
    return out


def check_collisions(graphs: dict[str, GraphModel]) -> None:
    """Refuse (MsgrError) when two jobs would write one file, naming both and the file."""
    writers: dict[str, str] = {}
    clashes = []
    for name, g in graphs.items():
        for nid, path in output_paths(g).items():
            if path in writers and writers[path] != name:
                clashes.append(f"jobs {writers[path]} and {name} would both write {path} ({nid}.path)")
            writers.setdefault(path, name)
    if clashes:
        raise MsgrError("; ".join(clashes[:3]) + (f" (and {len(clashes) - 3} more)" if len(clashes) > 3 else "")
                        + ": put {job} or {source_stem} in the Save paths")


def is_done(g: GraphModel) -> bool:
    """Whether every output of this job's graph exists and was made by the same graph and inputs
    (the provenance msgr-nodes stores in each file), newer than the files it read."""
    outputs = output_paths(g)
    if not outputs:
        return False
    wanted = graph_as_run(g)
    newest_input = max((os.stat(p).st_mtime for p in files_read(g) if os.path.exists(p)), default=0.0)
    for nid, path in outputs.items():
        try:
            stored = read_graph_from_image(path)
        except (ImageFileError, OSError):
            return False
        if _comparable(stored) != _comparable(graph_for_output(wanted, nid)) or os.stat(path).st_mtime < newest_input:
            return False
    return True


def _comparable(graph_json: str) -> dict:
    data = json.loads(graph_json)
    data.pop("meta", None)  # the run's msgr-nodes version and timestamps may differ
    for node in data.get("nodes", {}).values():
        node.pop("pos", None)
        node.get("params", {}).pop("overwrite", None)
    return data


# ---------------------------------------------------------------------------- running
def run_job(graph_json: str, base_dir: str, job: Job, cache_dir: str | None = None, threads: int = 1,
            outputs: list[str] | None = None) -> JobResult:
    """Run one job's graph (JSON) as ``msgr-nodes run`` would; never raises for a bad input: the
    result says what failed. This is what a Dask worker runs."""
    t0 = time.perf_counter()
    result = JobResult(job.name, "failed", inputs=dict(job.settings), worker=f"{socket.gethostname()}:{os.getpid()}")
    try:
        g = Graph.loads(graph_json, base_dir=base_dir)
        g.check(files=True)
        res = Executor(jobs=threads, memory_bytes=0, cache_dir=cache_dir).run(g, outputs)
    except GraphInvalid as exc:
        result.error = "; ".join(str(p) for p in exc.problems)
    except MsgrError as exc:
        result.error = str(exc)
    else:
        if res.ok:
            result.status = "ok"
        else:
            result.error = next(iter(res.errors.values()), "") or next(iter(res.skipped.values()), "cancelled")
        checks = set()
        for nid, r in res.results.items():
            channels = [c for c in r.metadata.get("channels", []) if isinstance(c, dict)]
            checks |= {c.get("check", "").split(":")[0].split(";")[0] for c in channels}
            if outputs is None or nid in outputs:  # a first pass measures only the nodes it was asked for
                result.slopes += [float(c.get("b_measured", c.get("b", 0.0))) for c in channels if "b" in c]
            result.written += r.metadata.get("written", [])
        result.verdict = ", ".join(sorted(c for c in checks if c))
    result.seconds = time.perf_counter() - t0
    return result


def local_cluster(workers: int | None = None):
    """A LocalCluster on 127.0.0.1: single-threaded worker processes sharing the memory."""
    import dask
    from distributed import LocalCluster

    cores = os.cpu_count() or 1
    n = max(1, workers or cores)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 1024**3
    pools = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_WORKER_DEATHS}):
        return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address="127.0.0.1:0", memory_limit=int(0.8 * total / n), env=pools,
                            silence_logs=40)


def batch(graph: GraphModel, jobs: list[Job], client=None, *, shared: Iterable[tuple[str, str]] = (),
          workers: int | None = None, resume: bool = False, cache_dir: str | os.PathLike | None = None,
          on_done: Callable[[JobResult], None] | None = None,
          outputs: list[str] | None = None, on_start: Callable[[str], None] | None = None) -> list[JobResult]:
    """Run ``graph`` once per job and return one :class:`JobResult` per job, in job order.

    Parameters
    ----------
    graph : GraphModel
        The graph (a Graph as loaded); it is not changed.
    jobs : list of Job
        What differs between runs (``jobs_from_each``, ``jobs_from_manifest``).
    client : distributed.Client, optional
        An existing cluster's client; default: a LocalCluster on this machine, closed at the end.
    shared : iterable of (NODE.PARAM, VALUE)
        Settings every job gets (``-s``), before its own.
    workers : int, optional
        LocalCluster's worker processes (default: the cores).
    resume : bool
        Skip jobs whose outputs exist and were made by the same graph and inputs.
    cache_dir : path, optional
        A disk cache the jobs share (on a cluster: a folder every worker can write).
    on_done : callable, optional
        Called with each JobResult as it finishes (progress).
    outputs : list of node ids, optional
        Run only these nodes and what they need (default: the whole graph).
    on_start : callable, optional
        Called with a job's name when a worker starts it (progress; from a polling thread).
    """
    shared = list(shared)
    graphs = {}
    for job in jobs:
        graphs[job.name] = job_graph(graph, job, shared)
    problems = [f"job {name}: {p}" for name, g in graphs.items() for p in g.validate(files=False)]
    if problems:
        raise MsgrError("; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    check_collisions(graphs)
    results: dict[str, JobResult] = {}
    todo = []
    for job in jobs:
        if resume and is_done(graphs[job.name]):
            results[job.name] = JobResult(job.name, "skipped", inputs=dict(job.settings),
                                          written=sorted(output_paths(graphs[job.name]).values()))
            if on_done:
                on_done(results[job.name])
        else:
            todo.append(job)
    if todo:
        own = client is None
        cluster = None
        if own:
            from distributed import Client

            cluster = local_cluster(workers)
            client = Client(cluster)
        try:
            results.update(_submit(client, graph, graphs, todo, cache_dir, on_done, outputs, on_start))
        finally:
            if own:
                client.close()
                cluster.close()
    return [results[job.name] for job in jobs]


def _watch_starts(client, names: dict[str, str], on_start, stop: threading.Event) -> None:
    """Tell ``on_start`` which jobs (by their task keys) a worker has started, as they start."""
    started = set()
    while not stop.wait(0.5):
        try:
            running = {k for keys in client.processing().values() for k in keys}
        except Exception:  # the scheduler is busy or going away: the next poll will tell
            continue
        for key in running & set(names) - started:
            started.add(key)
            on_start(names[key])


def _submit(client, graph, graphs, todo, cache_dir, on_done, outputs=None, on_start=None) -> dict[str, JobResult]:
    base = str(graph.base_dir)
    futures = {}
    for job in todo:
        payload = dumps(graph_to_dict(graphs[job.name]))
        futures[client.submit(run_job, payload, base, job, None if cache_dir is None else str(cache_dir), 1,
                              outputs, key=f"msgr-job-{job.name}-{time.time_ns()}", pure=False)] = job
    stop = threading.Event()
    if on_start is not None:
        threading.Thread(target=_watch_starts, args=(client, {f.key: j.name for f, j in futures.items()}, on_start,
                                                     stop), daemon=True, name="msgr-batch-starts").start()
    try:
        return _collect(futures, on_done)
    finally:
        stop.set()


def _collect(futures, on_done) -> dict[str, JobResult]:
    from distributed import as_completed

    out = {}
    for fut in as_completed(futures):
        job = futures[fut]
        try:
            res = fut.result()
        except Exception as exc:  # the worker died twice (KilledWorker), or the cluster went away
            why = "its worker died (killed or out of memory), and again on a second worker" \
                if type(exc).__name__ == "KilledWorker" else f"{type(exc).__name__}: {exc}"
            res = JobResult(job.name, "failed", error=why, inputs=dict(job.settings))
        out[job.name] = res
        if on_done:
            on_done(res)
    return out


def mosaic_settings(graph: GraphModel, jobs: list[Job], client=None, *, shared: Iterable[tuple[str, str]] = (),
                    workers: int | None = None, cache_dir: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """The settings that put a mosaic's panels on one background: a first pass runs each job up
    to the DetailFit nodes that fit the panels (nothing is saved) and measures the slopes b; those
    DetailFits then get their median and ``offset=none``, the LargeScales nodes below them
    ``zero_median=false``. The panel DetailFits are those downstream of a node the jobs set (the
    panel's Load); a DetailFit that only sees what every job shares (the cascade's wide image
    corrected by the ultra-wide one) is the same for every panel and is left as it is. Raises
    MsgrError when the graph has no DetailFit node or no job measured a slope."""
    nx_graph = graph.to_networkx()
    varied = {key.split(".")[0] for job in jobs for key in job.settings} & set(graph.nodes)
    below = set().union(*(nx.descendants(nx_graph, nid) | {nid} for nid in varied)) if varied else set(graph.nodes)
    fits = [nid for nid, n in graph.nodes.items() if n.type == "DetailFit" and nid in below]
    if not fits:
        raise MsgrError("--mosaic needs a graph with a DetailFit node below the panels' input (msgr_additive "
                        "has one)")
    first = batch(graph, jobs, client, shared=shared, workers=workers, cache_dir=cache_dir, outputs=fits)
    slopes = [b for r in first if r.status == "ok" for b in r.slopes if b > 0]
    if not slopes:
        raise MsgrError("--mosaic: no panel gave a slope (" + "; ".join(f"{r.job}: {r.error or r.verdict}"
                                                                         for r in first[:3]) + ")")
    b = float(sorted(slopes)[len(slopes) // 2])
    out = [(f"{nid}.slope", f"{b:.6f}") for nid in fits] + [(f"{nid}.offset", "none") for nid in fits]
    models = set().union(*(nx.descendants(nx_graph, nid) for nid in fits))
    out += [(f"{nid}.zero_median", "false") for nid, n in graph.nodes.items() if n.type == "LargeScales"
            and nid in models]
    return out


def write_report(results: list[JobResult], path: str | os.PathLike) -> None:
    """The results as CSV (``.csv``) or JSON (any other name), written atomically."""
    p = Path(path)
    if p.suffix.lower() == ".csv":
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["job", "status", "seconds", "slope_b", "verdict", "error", "written", "inputs"])
        for r in results:
            w.writerow([r.job, r.status, f"{r.seconds:.2f}", ";".join(f"{b:.6f}" for b in r.slopes), r.verdict,
                        r.error, ";".join(r.written),
                        ";".join(f"{k}={v}" for k, v in r.inputs.items())])
        data = buf.getvalue()
    else:
        data = json.dumps([asdict(r) for r in results], indent=1) + "\n"
    write_bytes_atomic(p, data.encode("utf-8"))
