"""Executor overhead: per-node cost with trivial nodes, and the cache-hit time of a 20-node graph
(memory cache in the same executor; disk cache from a new executor, as a new process would).

    python benchmarks/executor.py
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
import nodepack  # noqa: E402  (small real node types used by the tests)

from msgr_nodes.executor import Executor  # noqa: E402
from msgr_nodes.graph import Graph  # noqa: E402


def chain(n: int, size: int) -> Graph:
    g = Graph(nodepack.registry(with_builtins=False))
    g.add_node("Const", "n0", {"value": 0.1, "width": size, "height": size})
    for i in range(1, n):
        g.add_node("Scale", f"n{i}", {"factor": 1.0 + i / 1000})
        g.link(f"n{i - 1}", "image", f"n{i}", "image")
    return g


def main():
    for size in (8, 512):
        g = chain(20, size)
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            Executor(jobs=2, memory_bytes=0).run(g)
            runs.append(time.perf_counter() - t)
        work = []
        for _ in range(5):
            t = time.perf_counter()
            x = np.full((1, size, size), 0.1, np.float32)
            for i in range(1, 20):
                x = x * np.float32(1.0 + i / 1000)
            work.append(time.perf_counter() - t)
        per_node = (min(runs) - min(work)) / 20 * 1e3
        ex = Executor(jobs=2)
        ex.run(g)
        hits = []
        for _ in range(5):
            t = time.perf_counter()
            res = ex.run(g)
            hits.append(time.perf_counter() - t)
        assert res.computed == []
        keep = tempfile.TemporaryDirectory(prefix="msgr-cache-")  # removed when the function returns
        d = keep.name
        Executor(cache_dir=d).run(g)
        t = time.perf_counter()
        res = Executor(cache_dir=d).run(g)
        disk = time.perf_counter() - t
        assert res.computed == []
        print(f"20-node chain of {size}x{size} images: cold {min(runs) * 1e3:.1f} ms "
              f"(numpy alone {min(work) * 1e3:.2f} ms) -> executor overhead {per_node:.2f} ms per node; "
              f"memory-cache re-run {min(hits) * 1e3:.1f} ms; disk-cache re-run in a new executor "
              f"{disk * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
