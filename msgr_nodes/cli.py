"""The ``msgr-nodes`` command: a thin layer over the core.

Exit status: 0 success; 1 bad graph, bad input or a failed node (one line per
problem on stderr); 2 bad usage.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from .version import __version__
from .errors import GraphInvalid, MsgrError, Problem, UsageError


def default_cache_dir() -> Path:
    """The disk cache folder: $MSGR_NODES_CACHE, else $XDG_CACHE_HOME/msgr-nodes or ~/.cache/msgr-nodes."""
    if os.environ.get("MSGR_NODES_CACHE"):
        return Path(os.environ["MSGR_NODES_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "msgr-nodes"


def _fail(lines) -> int:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    return 1


def parse_settings(settings: list[str]) -> list[tuple[str, str]]:
    """``NODE.PARAM=VALUE`` strings as (``NODE.PARAM``, ``VALUE``); every malformed one is
    reported at once, as bad usage."""
    parsed, bad = [], []
    for s in settings:
        target, eq, value = s.partition("=")
        node_id, dot, name = target.partition(".")
        if not eq or not dot or not node_id or not name:
            bad.append(s)
        else:
            parsed.append((target, value))
    if bad:
        raise UsageError(f"-s {', -s '.join(repr(b) for b in bad)}: expected NODE.PARAM=VALUE, "
                         f"e.g. -s narrow.path=N.fits")
    return parsed


def apply_settings(graph, settings: list[str]) -> None:
    """Apply ``NODE.PARAM=VALUE`` strings; relative paths given here resolve against the current
    folder. Every problem (unknown node, parameter or bad value) is reported at once."""
    problems = []
    for target, value in parse_settings(settings):
        try:
            graph.set(target, value, parse=True)
        except MsgrError as exc:
            problems.append(Problem(None, str(exc)))
    if problems:
        raise GraphInvalid(problems)


def _cache_dir(args) -> Path | None:
    return None if args.no_cache else (args.cache_dir or default_cache_dir())


def cmd_run(args) -> int:
    """``msgr-nodes run``: validate, run with progress on stderr, print written files on stdout."""
    from .executor import Executor
    from .graph import Graph
    from .progress import make_progress, print_failures

    graph = Graph.load(args.graph)
    apply_settings(graph, args.set or [])
    problems = graph.validate()
    if problems:
        return _fail(str(p) for p in problems)
    labels = {nid: (n.label or nid) for nid, n in graph.nodes.items()}
    ex = Executor(jobs=args.jobs, memory_bytes=0, cache_dir=_cache_dir(args))
    with make_progress(labels) as progress:
        ex.on_event = progress
        result = ex.run(graph, args.output or None)
    for nid, res in result.results.items():
        for path in res.metadata.get("written", []):
            print(path)
    if result.cancelled:
        return _fail(["the run was cancelled"])
    if result.errors:
        print_failures(result, args.debug)
        return 1
    print(f"done: {len(result.computed)} computed, {len(result.cached)} from cache, "
          f"{result.seconds:.1f} s", file=sys.stderr)
    return 0


def cmd_validate(args) -> int:
    """``msgr-nodes validate``: list every problem of a graph, one line each."""
    from .graph import Graph

    graph = Graph.load(args.graph)
    apply_settings(graph, args.set or [])
    problems = graph.validate()
    if problems:
        return _fail(str(p) for p in problems)
    print(f"{args.graph}: valid ({len(graph.nodes)} nodes, {len(graph.links)} links)")
    return 0


def cmd_nodes(args) -> int:
    """``msgr-nodes nodes``: the node reference, as text or JSON."""
    from .registry import default_registry

    reg = default_registry()
    for err in reg.load_errors:
        print(f"warning: {err}", file=sys.stderr)
    if args.json:
        print(json.dumps([s.to_dict() for s in reg], indent=2))
        return 0
    from .docs import node_reference_text
    print(node_reference_text(reg))
    return 0


def cmd_extract_graph(args) -> int:
    """``msgr-nodes extract-graph``: write or print the graph stored in an image."""
    from .graphfile import loads_graph
    from .io.atomic import write_bytes_atomic
    from .io.formats import read_graph_from_image

    text = read_graph_from_image(args.image)
    graph = loads_graph(text, source=f"graph stored in {args.image}")  # checks it is a graph file
    if args.output is None:
        sys.stdout.write(text)
        return 0
    if args.output.exists() and not args.overwrite:
        raise MsgrError(f"{args.output}: already exists; pass --overwrite to replace it")
    write_bytes_atomic(args.output, text.encode("utf-8"))
    problems = graph.validate()
    print(f"wrote {args.output} ({len(graph.nodes)} nodes"
          + (f"; {len(problems)} validation problem(s): run msgr-nodes validate" if problems else "") + ")",
          file=sys.stderr)
    return 0


def cmd_import_xpsm(args) -> int:
    """``msgr-nodes import-xpsm``: a PixInsight icon set as a graph file."""
    from .graph import Graph

    if args.output.exists() and not args.overwrite:
        raise MsgrError(f"{args.output}: already exists; pass --overwrite to replace it")
    graph, warnings = Graph.from_xpsm(args.icons, with_warnings=True)
    graph.save(args.output)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    problems = graph.validate(files=False)
    print(f"wrote {args.output} ({len(graph.nodes)} nodes, {len(graph.links)} links"
          + (f"; {len(problems)} problem(s) to fix before it runs: msgr-nodes validate {args.output}"
             if problems else "") + ")", file=sys.stderr)
    return 0


def cmd_export_xpsm(args) -> int:
    """``msgr-nodes export-xpsm``: a graph (a file or a stock graph name) as a PixInsight icon set."""
    from .graph import Graph

    graph = Graph.load(args.graph)
    apply_settings(graph, args.set or [])
    n = graph.to_xpsm(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output} ({n} icons)", file=sys.stderr)
    return 0


def cmd_batch(args) -> int:
    """``msgr-nodes batch``: one graph over many files, on this machine or a Dask cluster."""
    from .batchrun import local_cluster, batch, jobs_from_each, jobs_from_manifest, mosaic_settings, write_report
    from .graph import Graph
    from .progress import batch_progress, print_batch_summary

    graph = Graph.load(args.graph)
    shared = parse_settings(args.set or [])
    if args.manifest and args.each:
        raise UsageError("give --each or --manifest, not both")
    each = parse_settings(args.each or []) if not args.manifest else []
    jobs = jobs_from_manifest(args.manifest) if args.manifest else jobs_from_each(each)
    from distributed import Client

    cluster = client = None  # without either, batch starts a local cluster only if a job needs it
    if args.scheduler:
        try:
            client = Client(args.scheduler, timeout="10s")
        except OSError as exc:
            raise MsgrError(f"--scheduler {args.scheduler}: no Dask scheduler answers there ({exc}); "
                            f"start one with  dask scheduler  and workers with  dask worker ADDRESS") from None
    elif args.mosaic:  # two passes: one cluster for both
        cluster = local_cluster(args.workers)
        client = Client(cluster)
    try:
        if args.mosaic:
            mosaic = mosaic_settings(graph, jobs, client, shared=shared, cache_dir=_cache_dir(args))
            print("mosaic: " + " ".join(f"-s {k}={v}" for k, v in mosaic), file=sys.stderr)
            shared = shared + mosaic
        with batch_progress([j.name for j in jobs]) as bar:
            results = batch(graph, jobs, client, shared=shared, workers=args.workers, resume=args.resume,
                            cache_dir=_cache_dir(args), on_done=bar, on_start=bar.start)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    print_batch_summary(results)
    if args.report:
        write_report(results, args.report)
        print(f"report: {args.report}", file=sys.stderr)
    return 1 if any(r.status == "failed" for r in results) else 0


def cmd_mosaic(args) -> int:
    """``msgr-nodes mosaic``: corrected panels reprojected onto one WCS and averaged."""
    from astropy.wcs import WCS

    from .image import Image
    from .io.formats import read_image, write_image
    from .ops.mosaic import coadd

    panels = []
    for path in args.panels:
        img = read_image(path)
        wcs = WCS(img.header, naxis=2)
        if not wcs.has_celestial:
            raise MsgrError(f"{path}: has no celestial WCS (plate-solve it first): a mosaic places panels by it")
        panels.append((img.data, wcs))
    try:
        data, wcs, footprint = coadd(panels, match_background=args.match_background)
    except ValueError as exc:
        raise MsgrError(f"mosaic: {exc}") from None
    header = wcs.to_header()
    header["MSGRMOS"] = (len(panels), "panels in this mosaic")
    written, _, _ = write_image(args.output, Image(data, header, "mosaic"), "auto", "float32", args.overwrite)
    covered = float((footprint > 0).mean())
    print(f"wrote {written} ({data.shape[2]}x{data.shape[1]}, {len(panels)} panels, "
          f"{100 * covered:.0f} % covered)", file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    """``msgr-nodes demo``: the recommended graph on the bundled sample pair."""
    from .demo import run_demo

    return run_demo(args.out, args.jobs, _cache_dir(args), debug=args.debug)


def cmd_graphs(args) -> int:
    """``msgr-nodes graphs``: the installed stock graphs, one line each (usable by name)."""
    from .stock import stock_graph_titles

    titles = stock_graph_titles()
    width = max(map(len, titles), default=0)
    for name, title in titles.items():
        print(f"{name:<{width}}  {title}")
    return 0


def cmd_sample(args) -> int:
    """``msgr-nodes sample``: copy the bundled sample pair into a folder, to try the commands on."""
    from .io.atomic import make_folder, write_bytes_atomic
    from .stock import asset

    out = make_folder(args.out, "sample --out", "give another folder")
    names = ("narrow.fits.fz", "wide.fits.fz")
    existing = [n for n in names if (out / n).exists()]
    if existing and not args.overwrite:
        raise MsgrError(f"{out / existing[0]}: already exists; pass --overwrite to replace it")
    for name in names:
        write_bytes_atomic(out / name, asset(name).read_bytes())
        print(out / name)
    return 0


def cmd_gui(args) -> int:
    """``msgr-nodes gui``: open the visual editor."""
    try:
        from .gui.app import main as gui_main
    except ImportError as exc:
        raise MsgrError(f"the editor needs dearpygui ({exc}): pip install 'msgr-nodes[gui]'") from None
    return gui_main(args.graph)


def _jobs(text: str) -> int:
    """``--jobs``: a whole number of at least 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n}: must be 1 or more (the number of threads)")
    return n


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``msgr-nodes`` command."""
    p = argparse.ArgumentParser(prog="msgr-nodes", description="Node graphs for astronomical images.")
    p.add_argument("--version", action="version", version=f"msgr-nodes {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks for internal errors")
    sub = p.add_subparsers(dest="command", required=True)
    graph_help = "graph file (.json), or the name of a stock graph (msgr-nodes graphs lists them)"

    def command(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        # also after the command (as error messages suggest); SUPPRESS keeps the top-level value
        c.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show Python tracebacks for internal errors")
        return c

    def cache_options(c: argparse.ArgumentParser) -> None:
        g = c.add_mutually_exclusive_group()
        g.add_argument("--cache-dir", type=Path, help=f"disk cache folder (default {default_cache_dir()})")
        g.add_argument("--no-cache", action="store_true", help="do not read or write the disk cache")

    r = command("run", "run a graph headless")
    r.add_argument("graph", help=graph_help)
    r.add_argument("-s", "--set", action="append", metavar="NODE.PARAM=VALUE",
                   help="set a parameter (repeatable); relative paths resolve against the current folder")
    r.add_argument("-j", "--jobs", type=_jobs, default=2, help="threads for independent branches (default 2)")
    r.add_argument("-o", "--output", action="append", metavar="NODE",
                   help="run only this node and what it needs (repeatable)")
    cache_options(r)
    r.set_defaults(func=cmd_run)

    v = command("validate", "check a graph and list every problem")
    v.add_argument("graph", help=graph_help)
    v.add_argument("-s", "--set", action="append", metavar="NODE.PARAM=VALUE")
    v.set_defaults(func=cmd_validate)

    gr = command("graphs", "list the installed stock graphs (usable by name)")
    gr.set_defaults(func=cmd_graphs)

    n = command("nodes", "list node types, their ports and parameters")
    n.add_argument("--json", action="store_true", help="machine-readable output")
    n.set_defaults(func=cmd_nodes)

    x = command("extract-graph", "get back the graph stored in an image msgr-nodes saved")
    x.add_argument("image", help="an image written by msgr-nodes")
    x.add_argument("-o", "--output", type=Path, help="graph file to write (default: print it)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    x.set_defaults(func=cmd_extract_graph)

    im = command("import-xpsm", "turn a PixInsight icon set (.xpsm) into a graph file")
    im.add_argument("icons", help="the .xpsm file")
    im.add_argument("-o", "--output", type=Path, required=True, help="graph file to write (.json)")
    im.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    im.set_defaults(func=cmd_import_xpsm)

    ex = command("export-xpsm", "write a graph as a PixInsight icon set (.xpsm)")
    ex.add_argument("graph", help=graph_help)
    ex.add_argument("-o", "--output", type=Path, required=True, help="icon set to write (.xpsm)")
    ex.add_argument("-s", "--set", action="append", metavar="NODE.PARAM=VALUE")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    ex.set_defaults(func=cmd_export_xpsm)

    b = command("batch", "run a graph once per file (or manifest row), on this machine or a Dask cluster")
    b.add_argument("graph", help=graph_help)
    b.add_argument("--each", action="append", metavar="NODE.PARAM=GLOB",
                   help="one job per file the glob matches (several --each are zipped in sorted order)")
    b.add_argument("--manifest", type=Path, help="CSV with one NODE.PARAM column per setting and a row per job")
    b.add_argument("-s", "--set", action="append", metavar="NODE.PARAM=VALUE", help="a setting every job gets")
    b.add_argument("--workers", type=_jobs, help="worker processes of the local cluster (default: the cores)")
    b.add_argument("--scheduler", metavar="ADDRESS", help="run on an existing Dask cluster, e.g. tcp://host:8786")
    b.add_argument("--resume", action="store_true", help="skip jobs whose outputs exist from the same graph and inputs")
    b.add_argument("--report", type=Path, help="write the summary as CSV (.csv) or JSON")
    b.add_argument("--mosaic", action="store_true", help="the files are panels of one mosaic: one slope b (their "
                   "median) and no pedestal of their own, so that all sit on the wide image's background")
    cache_options(b)
    b.set_defaults(func=cmd_batch)

    mo = command("mosaic", "reproject panels (with WCS) onto one frame and average them")
    mo.add_argument("panels", nargs="+", help="the (corrected) panel files")
    mo.add_argument("-o", "--output", type=Path, required=True, help="the mosaic to write (FITS)")
    mo.add_argument("--match-background", action="store_true",
                    help="offset panels to each other first (reproject's matching; MSGR-corrected panels "
                         "share one background already)")
    mo.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    mo.set_defaults(func=cmd_mosaic)

    d = command("demo", "run the recommended MSGR graph on the bundled sample pair")
    d.add_argument("--out", type=Path, default=Path("msgr-demo"), help="output folder (default ./msgr-demo)")
    d.add_argument("-j", "--jobs", type=_jobs, default=2)
    cache_options(d)
    d.set_defaults(func=cmd_demo)

    sa = command("sample", "copy the bundled sample pair (narrow.fits.fz, wide.fits.fz) into a folder")
    sa.add_argument("--out", type=Path, default=Path("."), help="folder to write (default: the current one)")
    sa.add_argument("--overwrite", action="store_true", help="replace existing files")
    sa.set_defaults(func=cmd_sample)

    gui = command("gui", "open the visual editor")
    gui.add_argument("graph", nargs="?", help=graph_help)
    gui.set_defaults(func=cmd_gui)
    return p


def _interrupted() -> None:
    """Ctrl-C: remove half-written files and leave at once (worker threads cannot be stopped
    mid-computation, and waiting for them could take minutes)."""
    from .io.atomic import remove_partial_files

    remove_partial_files()
    print("error: interrupted", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the exit status (0 ok, 1 bad graph/input/failed node, 2 usage, 130 Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"msgr-nodes: error: {exc}", file=sys.stderr)
        return 2
    except GraphInvalid as exc:
        return _fail(str(p) for p in exc.problems)
    except MsgrError as exc:
        return _fail([str(exc)])
    except KeyboardInterrupt:
        _interrupted()
        return 130
    except Exception as exc:  # an internal error: one line unless --debug
        if args.debug:
            traceback.print_exc()
        return _fail([f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)"])


if __name__ == "__main__":
    sys.exit(main())
