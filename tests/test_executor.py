import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import nodepack
from msgr_nodes.errors import GraphInvalid
from msgr_nodes.executor import Executor
from msgr_nodes.graph import Graph
from msgr_nodes.context import CancelToken

TESTS = Path(__file__).parent


def test_values_flow_through_the_graph(chain):
    res = Executor().run(chain)
    assert res.ok
    assert np.allclose(res.output("s2").data, 0.25 * 2 * 3)
    assert np.allclose(res.output("s3").data, 0.25 * 4)
    assert res.output("s2").data.dtype == np.float32


def test_parameter_edit_recomputes_exactly_the_downstream_cone(chain):
    ex = Executor()
    first = ex.run(chain)
    assert sorted(first.computed) == ["c1", "c2", "s1", "s2", "s3"]
    chain.set("s1.factor", 5.0)
    second = ex.run(chain)
    assert sorted(second.computed) == ["s1", "s2"]
    assert sorted(second.cached) == ["c1", "c2", "s3"]
    assert np.allclose(second.output("s2").data, 0.25 * 5 * 3)


def test_keys_ignore_ids_and_positions(chain, reg):
    other = Graph(reg)
    other.add_node("Const", "zz", {"value": 0.25}, pos=(500, 500))
    other.add_node("Scale", "yy", {"factor": 2.0})
    other.link("zz", "image", "yy", "image")
    ex = Executor()
    assert ex.keys(chain)["s1"] == ex.keys(other)["yy"]
    ex.run(chain)
    again = ex.run(other)
    assert again.computed == [] and sorted(again.cached) == ["yy", "zz"]


def test_identical_subchains_are_computed_once(reg):
    g = Graph(reg)
    g.add_node("Const", "a", {"value": 0.5})
    g.add_node("Const", "b", {"value": 0.5})
    g.add_node("Scale", "sa", {"factor": 3.0})
    g.add_node("Scale", "sb", {"factor": 3.0})
    g.add_node("Add", "sum")
    g.link("a", "image", "sa", "image")
    g.link("b", "image", "sb", "image")
    g.link("sa", "image", "sum", "a")
    g.link("sb", "image", "sum", "b")
    ex = Executor(jobs=2)
    res = ex.run(g)
    assert res.ok
    assert ex.run_counts == {"Const": 1, "Scale": 1, "Add": 1}
    assert np.allclose(res.output("sum").data, 3.0)


def test_failing_node_leaves_independent_siblings_computed(chain):
    chain.add_node("Fail", "bad", {"message": "the input is mono; give an RGB image"})
    chain.add_node("Scale", "after_bad")
    chain.link("s1", "image", "bad", "image")
    chain.link("bad", "image", "after_bad", "image")
    ex = Executor()
    res = ex.run(chain)
    assert not res.ok
    assert res.errors["bad"] == "bad (Fail): the input is mono; give an RGB image"
    assert "after_bad" in res.skipped
    assert set(res.computed) == {"c1", "c2", "s1", "s2", "s3"}
    # and they stay cached
    chain.remove_node("bad")
    chain.remove_node("after_bad")
    assert sorted(ex.run(chain).cached) == ["c1", "c2", "s1", "s2", "s3"]


def test_internal_error_is_reported_with_the_node_and_a_traceback(reg):
    g = Graph(reg)
    g.add_node("Const", "c")
    g.add_node("Crash", "boom")
    g.link("c", "image", "boom", "image")
    res = Executor().run(g)
    assert "boom (Crash): ZeroDivisionError" in res.errors["boom"]
    assert "Traceback" in res.tracebacks["boom"]


def test_independent_branches_run_concurrently(reg):
    nodepack.new_barrier(2)
    g = Graph(reg)
    g.add_node("Const", "c")
    g.add_node("Meet", "m1", {"tag": "1"})
    g.add_node("Meet", "m2", {"tag": "2"})
    g.link("c", "image", "m1", "image")
    g.link("c", "image", "m2", "image")
    res = Executor(jobs=2).run(g)
    assert res.ok, res.errors  # with one thread the barrier would time out and raise


def test_events_are_emitted_in_order(chain):
    events = []
    chain.add_node("Slow", "slow", {"steps": 4})
    chain.link("s2", "image", "slow", "image")
    Executor(on_event=events.append).run(chain)
    slow = [e for e in events if e.node == "slow"]
    assert [e.kind for e in slow][0] == "started"
    assert [e.kind for e in slow][-1] == "finished"
    fractions = [e.fraction for e in slow if e.kind == "progress"]
    assert fractions == sorted(fractions) and len(fractions) == 4


def test_cancel_stops_the_run(chain):
    token = CancelToken()
    chain.add_node("Slow", "slow", {"steps": 1000})
    chain.link("s2", "image", "slow", "image")

    def on_event(ev):
        if ev.kind == "progress" and ev.node == "slow" and ev.fraction > 0.01:
            token.cancel()

    res = Executor(on_event=on_event).run(chain, cancel=token)
    assert res.cancelled
    assert "slow" not in res.results


def test_invalid_graph_raises_before_running(chain):
    chain.nodes["s1"].params["factor"] = 1000.0
    ex = Executor()
    with pytest.raises(GraphInvalid) as err:
        ex.run(chain)
    assert "s1.factor" in str(err.value)
    assert ex.run_counts == {}


def test_memory_cache_is_bounded_in_bytes(reg):
    g = Graph(reg)
    g.add_node("Const", "c", {"width": 100, "height": 100})  # 40 kB
    ex = Executor(memory_bytes=60_000)
    ex.run(g)
    g.set("c.value", 0.1)
    ex.run(g)
    assert ex.memory.nbytes <= 60_000
    g.set("c.value", 0.5)
    assert ex.run(g).computed == ["c"]  # the first result was evicted


RUN_IN_NEW_PROCESS = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    import nodepack
    from msgr_nodes.executor import Executor
    from msgr_nodes.graphfile import load_graph
    g = load_graph({graph!r}, nodepack.registry())
    res = Executor(cache_dir={cache!r}).run(g)
    print(json.dumps({{"computed": sorted(res.computed), "cached": sorted(res.cached),
                      "value": float(res.output("s2").data.mean())}}))
""")


def _run_new_process(graph_path, cache_dir):
    code = RUN_IN_NEW_PROCESS.format(tests=str(TESTS), graph=str(graph_path), cache=str(cache_dir))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_disk_cache_makes_a_new_process_compute_nothing(chain, tmp_path):
    chain.save(tmp_path / "g.json")
    first = _run_new_process(tmp_path / "g.json", tmp_path / "cache")
    assert first["computed"] == ["c1", "c2", "s1", "s2", "s3"]
    second = _run_new_process(tmp_path / "g.json", tmp_path / "cache")
    assert second["computed"] == [] and second["cached"] == first["computed"]
    assert second["value"] == pytest.approx(1.5)


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupt_disk_cache_entry_is_discarded_and_recomputed(chain, tmp_path, damage):
    ex = Executor(cache_dir=tmp_path / "cache")
    ex.run(chain)
    key = ex.keys(chain)["s2"]
    npy = next((tmp_path / "cache").glob(f"??/{key}/*.npy"))
    raw = npy.read_bytes()
    if damage == "truncate":
        npy.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        npy.write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF]))
    else:
        npy.unlink()
    fresh = Executor(cache_dir=tmp_path / "cache")
    res = fresh.run(chain)
    assert res.computed == ["s2"]
    assert fresh.disk.discarded == [key]
    assert np.allclose(res.output("s2").data, 1.5)
    assert Executor(cache_dir=tmp_path / "cache").run(chain).computed == []


def test_a_disk_cache_written_by_other_code_is_not_read_back(chain, tmp_path, monkeypatch):
    """An upgrade (or an edit of a node's computing code) must recompute: the spec versions alone
    stayed the same while StarRemove's star test changed, and a disk cache served the old starless
    images to the new code."""
    import msgr_nodes.executor as executor

    assert sorted(Executor(cache_dir=tmp_path).run(chain).computed) == ["c1", "c2", "s1", "s2", "s3"]
    assert Executor(cache_dir=tmp_path).run(chain).computed == []
    monkeypatch.setattr(executor, "code_fingerprint", lambda: "the code of another release")
    assert sorted(Executor(cache_dir=tmp_path).run(chain).computed) == ["c1", "c2", "s1", "s2", "s3"]


def test_the_code_fingerprint_follows_every_source_file_but_the_editors(tmp_path):
    from msgr_nodes.cache import code_fingerprint, source_fingerprint

    pkg = tmp_path / "pkg"
    (pkg / "ops").mkdir(parents=True)
    (pkg / "gui").mkdir()
    (pkg / "ops" / "stars.py").write_text("THRESHOLD = 0.3\n")
    (pkg / "gui" / "editor.py").write_text("SIZE = 1\n")
    before = source_fingerprint([pkg], ("gui",))
    (pkg / "gui" / "editor.py").write_text("SIZE = 2\n")
    assert source_fingerprint([pkg], ("gui",)) == before
    (pkg / "ops" / "stars.py").write_text("THRESHOLD = 0.2\n")
    assert source_fingerprint([pkg], ("gui",)) != before
    assert len(code_fingerprint()) == 64


def test_non_image_values_are_disk_cached_as_json(reg, tmp_path):
    g = Graph(reg)
    g.add_node("Stars", "st")
    Executor(cache_dir=tmp_path).run(g)
    res = Executor(cache_dir=tmp_path).run(g)
    assert res.cached == ["st"] and res.output("st") == {"x": [1.0]}
    assert not list(tmp_path.rglob("*.pkl"))


def test_concurrent_writes_to_the_disk_cache_never_fail_a_node(chain, tmp_path):
    # two worker threads store entries while evicting: each sees the other's half-written folder
    for i in range(25):
        res = Executor(jobs=2, cache_dir=tmp_path / f"c{i}").run(chain)
        assert res.ok, res.errors


def test_a_failing_disk_cache_keeps_the_result_and_warns(chain, tmp_path, monkeypatch):
    from msgr_nodes.cache import DiskCache

    def full(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DiskCache, "put", full)
    events = []
    res = Executor(cache_dir=tmp_path, on_event=events.append).run(chain)
    assert res.ok and np.allclose(res.output("s2").data, 1.5)
    assert any(e.kind == "warning" and "No space left" in e.message for e in events)


def test_three_channels_on_two_threads_run_at_once():
    """A node's channels on ctx.map: three on two threads all run together (two rounds would leave a
    core idle in the second); one thread still runs them one by one."""
    import threading

    from msgr_nodes.context import RunContext

    barrier = threading.Barrier(3, timeout=5)

    def channel(c):
        barrier.wait()  # raises BrokenBarrierError unless all three channels are running together
        return c * 10

    assert list(RunContext("n", threads=2).map(channel, range(3))) == [0, 10, 20]
    running, most = 0, 0
    lock = threading.Lock()

    def counted(c):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        threading.Event().wait(0.05)
        with lock:
            running -= 1
        return c

    assert list(RunContext("n", threads=1).map(counted, range(3))) == [0, 1, 2]
    assert most == 1
    most = 0
    assert list(RunContext("n", threads=2).map(counted, range(4))) == [0, 1, 2, 3]
    assert most == 2
