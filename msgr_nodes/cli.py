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

from . import __version__
from .errors import GraphInvalid, MsgrError


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


def apply_settings(graph, settings: list[str]) -> None:
    """Apply ``NODE.PARAM=VALUE`` strings; relative paths given here resolve against the current folder."""
    for s in settings:
        if "=" not in s or "." not in s.split("=", 1)[0]:
            raise MsgrError(f"-s {s!r}: expected NODE.PARAM=VALUE, e.g. -s narrow.path=N.fits")
        target, value = s.split("=", 1)
        node_id, name = target.split(".", 1)
        spec = graph.spec(node_id)
        p = spec.param(name) if spec else None
        if p is not None and p.kind == "path" and value:
            value = str(Path(os.path.expanduser(value)).resolve())
        graph.set(target, value, parse=True)


def cmd_run(args) -> int:
    """``msgr-nodes run``: validate, run with progress on stderr, print written files on stdout."""
    from .executor import Executor
    from .graph import Graph
    from .progress import make_progress

    graph = Graph.load(args.graph)
    apply_settings(graph, args.set or [])
    problems = graph.validate()
    if problems:
        return _fail(str(p) for p in problems)
    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
    labels = {nid: (n.label or nid) for nid, n in graph.nodes.items()}
    with make_progress(labels) as progress:
        ex = Executor(jobs=args.jobs, memory_bytes=0, cache_dir=cache_dir, on_event=progress)
        result = ex.run(graph, args.output or None)
    for nid, res in result.results.items():
        for path in res.metadata.get("written", []):
            print(path)
    if result.cancelled:
        return _fail(["the run was cancelled"])
    if result.errors:
        if args.debug:
            for tb in result.tracebacks.values():
                print(tb, file=sys.stderr)
        return _fail(list(result.errors.values()) + list(result.skipped.values()))
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


def cmd_demo(args) -> int:
    """``msgr-nodes demo``: the recommended graph on the bundled sample pair."""
    from .demo import run_demo

    cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
    return run_demo(args.out, args.jobs, cache)


def cmd_gui(args) -> int:
    """``msgr-nodes gui``: open the visual editor."""
    try:
        from .gui.app import main as gui_main
    except ImportError as exc:
        raise MsgrError(f"the editor needs dearpygui ({exc}): pip install 'msgr-nodes[gui]'") from None
    return gui_main(args.graph)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``msgr-nodes`` command."""
    p = argparse.ArgumentParser(prog="msgr-nodes", description="Node graphs for astronomical images.")
    p.add_argument("--version", action="version", version=f"msgr-nodes {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks for internal errors")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a graph file headless")
    r.add_argument("graph", help="graph file (.json)")
    r.add_argument("-s", "--set", action="append", metavar="NODE.PARAM=VALUE",
                   help="set a parameter (repeatable); relative paths resolve against the current folder")
    r.add_argument("-j", "--jobs", type=int, default=2, help="threads for independent branches (default 2)")
    r.add_argument("-o", "--output", action="append", metavar="NODE",
                   help="run only this node and what it needs (repeatable)")
    c = r.add_mutually_exclusive_group()
    c.add_argument("--cache-dir", type=Path, help=f"disk cache folder (default {default_cache_dir()})")
    c.add_argument("--no-cache", action="store_true", help="do not read or write the disk cache")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check a graph file and list every problem")
    v.add_argument("graph")
    v.add_argument("-s", "--set", action="append", metavar="NODE.PARAM=VALUE")
    v.set_defaults(func=cmd_validate)

    n = sub.add_parser("nodes", help="list node types, their ports and parameters")
    n.add_argument("--json", action="store_true", help="machine-readable output")
    n.set_defaults(func=cmd_nodes)

    x = sub.add_parser("extract-graph", help="get back the graph stored in an image msgr-nodes saved")
    x.add_argument("image", help="an image written by msgr-nodes")
    x.add_argument("-o", "--output", type=Path, help="graph file to write (default: print it)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    x.set_defaults(func=cmd_extract_graph)

    d = sub.add_parser("demo", help="run the recommended MSGR graph on the bundled sample pair")
    d.add_argument("--out", type=Path, default=Path("msgr-demo"), help="output folder (default ./msgr-demo)")
    d.add_argument("-j", "--jobs", type=int, default=2)
    dc = d.add_mutually_exclusive_group()
    dc.add_argument("--cache-dir", type=Path, help="disk cache folder")
    dc.add_argument("--no-cache", action="store_true", help="compute everything")
    d.set_defaults(func=cmd_demo)

    gui = sub.add_parser("gui", help="open the visual editor")
    gui.add_argument("graph", nargs="?", help="graph file to open")
    gui.set_defaults(func=cmd_gui)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the exit status (0 ok, 1 bad graph/input/failed node, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except GraphInvalid as exc:
        return _fail(str(p) for p in exc.problems)
    except MsgrError as exc:
        return _fail([str(exc)])
    except KeyboardInterrupt:
        return _fail(["interrupted"])
    except Exception as exc:  # an internal error: one line unless --debug
        if args.debug:
            traceback.print_exc()
        return _fail([f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)"])


if __name__ == "__main__":
    sys.exit(main())
