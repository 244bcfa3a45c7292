"""The executor in a child process (what the editor runs graphs with)."""
import os
import signal
import threading

import numpy as np
import pytest

from msgr_nodes.executor import Executor
from msgr_nodes.graph import Graph
from msgr_nodes.context import CancelToken
from msgr_nodes.process_executor import ProcessExecutor


@pytest.fixture
def worker():
    ex = ProcessExecutor(jobs=1, numba_threads=1)
    yield ex
    ex.close()


def _graph(path, method="accurate", layers=4):
    g = Graph()
    g.add_node("Load", "load", {"path": str(path)})
    g.add_node("MMT", "mmt", {"layers": layers, "remove_layers": layers, "method": method})
    g.link("load", "image", "mmt", "image")
    return g


def test_results_events_and_cache_match_the_in_process_executor(worker, small_pair):
    g = _graph(small_pair / "narrow.fits")
    events, threads = [], set()
    worker.on_event = lambda e: (events.append(e), threads.add(threading.current_thread()))
    res = worker.run(g)
    assert res.ok and sorted(res.computed) == ["load", "mmt"] and not res.results
    assert [(e.kind, e.node) for e in events if e.kind in ("started", "finished")] == \
        [("started", "load"), ("finished", "load"), ("started", "mmt"), ("finished", "mmt")]
    assert threads == {threading.current_thread()}  # delivered in the calling thread, as the editor expects
    local = Executor(jobs=1).run(g)
    key = worker.keys(g)["mmt"]
    assert key == local.keys["mmt"]  # the editor's keys find the child's results
    remote = worker.cached_result(key)
    np.testing.assert_array_equal(remote.outputs["image"].data, local.output("mmt").data)
    # the child keeps its cache: a re-run computes nothing, an edit recomputes the edited node only
    assert sorted(worker.run(g).cached) == ["load", "mmt"]
    g.set("mmt.remove_layers", 2)
    again = worker.run(g)
    assert again.computed == ["mmt"] and again.cached == ["load"]


def test_cancel_reaches_the_child(worker, medium_pair):
    g = _graph(medium_pair / "narrow.fits", method="exact", layers=8)
    cancel = CancelToken()
    worker.on_event = lambda e: e.kind == "started" and e.node == "mmt" and cancel.cancel()
    res = worker.run(g, cancel=cancel)
    assert res.cancelled and "mmt" not in res.computed


def test_a_dead_child_fails_its_nodes_and_the_next_run_restarts_it(worker, medium_pair):
    g = _graph(medium_pair / "narrow.fits", method="exact", layers=8)
    failed = []

    def on_event(e):
        if e.kind == "started" and e.node == "mmt":
            os.kill(worker._proc.pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
        if e.kind == "failed":
            failed.append(e.node)

    worker.on_event = on_event
    res = worker.run(g)
    assert not res.ok and "killed" in res.errors["mmt"] and failed == ["mmt"]
    worker.on_event = None
    g.set("mmt.method", "preview")
    assert worker.run(g).ok and worker.alive
