"""Batch throughput: 8 small jobs (the recommended graph on the bundled 1000x750 sample pair, copied
under 8 names) with 1 and 2 Dask workers, against a plain shell loop of ``msgr-nodes run``.

    python benchmarks/batch.py [--jobs 8]

Prints jobs per minute for each; for one worker (single-threaded, like the loop) the overhead per
job against the loop (cluster start-up and scheduling; negative: faster, as the worker imports the
libraries once), for two the speed-up. Nothing is cached.
"""
import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from msgr_nodes import Graph, batch
from msgr_nodes.batchrun import jobs_from_each
from msgr_nodes.stock import asset


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=8)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="msgr-batch-"))
    for k in range(a.jobs):
        shutil.copy(asset("narrow.fits.fz"), work / f"night{k}.fits.fz")
    wide = asset("wide.fits.fz")
    shared = [("wide.path", str(wide)), ("save.overwrite", "true"), ("save_model.overwrite", "true")]

    t0 = time.perf_counter()
    for k in range(a.jobs):
        subprocess.run([sys.executable, "-m", "msgr_nodes", "run", "msgr_additive", "--no-cache", "-j", "1",
                        "-s", f"narrow.path={work / f'night{k}.fits.fz'}", "-s", f"wide.path={wide}",
                        "-s", "save.overwrite=true", "-s", "save_model.overwrite=true"],
                       check=True, capture_output=True)
    loop = time.perf_counter() - t0
    print(f"{a.jobs} jobs (msgr_additive on the 1000x750 sample), no cache, on this machine")
    print("| how | seconds | jobs per minute | against the loop |")
    print("| --- | --- | --- | --- |")
    print(f"| loop of msgr-nodes run (1 thread each) | {loop:.1f} | {60 * a.jobs / loop:.1f} | - |")
    graph = Graph.load("msgr_additive")
    jobs = jobs_from_each([("narrow.path", str(work / "night*.fits.fz"))])
    for workers in (1, 2):
        t0 = time.perf_counter()
        results = batch(graph, jobs, workers=workers, shared=shared)
        dt = time.perf_counter() - t0
        bad = [r for r in results if r.status != "ok"]
        if bad:
            sys.exit(f"failed: {bad[0].job}: {bad[0].error}")
        versus = f"{(dt - loop) / a.jobs:+.2f} s per job" if workers == 1 else f"{loop / dt:.2f}x as fast"
        print(f"| batch, {workers} worker(s) | {dt:.1f} | {60 * a.jobs / dt:.1f} | {versus} |")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
