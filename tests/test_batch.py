"""Batch runs on Dask: a LocalCluster on 127.0.0.1, an external scheduler and workers started
here, a worker killed mid-job, --resume, collisions and a bad input. Every test stops what it
starts; everything listens on loopback only."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from msgr_nodes import Job, batch
from msgr_nodes.batchrun import local_cluster, jobs_from_each, jobs_from_manifest, mosaic_settings
from msgr_nodes.cli import main
from msgr_nodes.errors import MsgrError
from msgr_nodes.graph import Graph
from synthpair import make_pair


@pytest.fixture(scope="module")
def client():
    from distributed import Client

    cluster = local_cluster(2)
    c = Client(cluster)
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in c.scheduler_info()["workers"])
    yield c
    c.close()
    cluster.close()


def _frames(folder: Path, n: int, size=(200, 300)) -> list[Path]:
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    paths = []
    for i in range(n):
        sky = 0.1 + 0.04 * xx / size[1] + 0.03 * yy / size[0] + 0.01 * i + rng.normal(0, 0.003, size)
        paths.append(folder / f"panel{i}.fits")
        fits.writeto(paths[-1], sky.astype(np.float32))
    return paths


def _graph(folder: Path, save="{source_dir}/{source_stem}_flat.fits") -> Path:
    g = Graph()
    g.add_node("Load", "narrow")
    g.add_node("ABE", "abe", {"degree": 1})
    g.add_node("Save", "save", {"path": save})
    g.link("narrow", "image", "abe", "image")
    g.link("abe", "image", "save", "image")
    g.save(folder / "flatten.json")
    return folder / "flatten.json"


def test_four_jobs_on_two_workers_give_what_msgr_nodes_run_gives(client, tmp_path):
    frames = _frames(tmp_path, 4)
    graph = Graph.load(_graph(tmp_path))
    jobs = jobs_from_each([("narrow.path", str(tmp_path / "panel*.fits"))])
    assert [j.name for j in jobs] == ["panel0", "panel1", "panel2", "panel3"]
    results = batch(graph, jobs, client)
    assert [r.status for r in results] == ["ok"] * 4, [r.error for r in results]
    for frame, r in zip(frames, results):
        assert r.written == [str(tmp_path / f"{frame.stem}_flat.fits")]
        out = tmp_path / "single" / f"{frame.stem}.fits"
        out.parent.mkdir(exist_ok=True)
        assert main(["run", str(tmp_path / "flatten.json"), "-s", f"narrow.path={frame}",
                     "-s", f"save.path={out}", "--no-cache"]) == 0
        assert np.array_equal(fits.getdata(r.written[0]), fits.getdata(out))


def test_a_bad_input_fails_its_job_only_and_is_named(tmp_path, capsys):
    _frames(tmp_path, 3)
    (tmp_path / "panel9.fits").write_bytes(b"not a FITS file")
    graph = _graph(tmp_path)
    code = main(["batch", str(graph), "--each", f"narrow.path={tmp_path / 'panel*.fits'}", "--workers", "1",
                 "--no-cache", "--report", str(tmp_path / "report.json")])
    assert code == 1
    out, err = capsys.readouterr()
    assert f"error: job panel9 (narrow.path={tmp_path / 'panel9.fits'}): " in err
    assert sorted(p.name for p in tmp_path.glob("*_flat.fits")) == ["panel0_flat.fits", "panel1_flat.fits",
                                                                    "panel2_flat.fits"]
    assert "panel9  failed" in out and "panel0  ok" in out
    import json
    report = json.loads((tmp_path / "report.json").read_text())
    assert [r["status"] for r in report] == ["ok", "ok", "ok", "failed"]


def test_two_jobs_that_would_write_one_file_are_refused_before_anything_runs(tmp_path):
    _frames(tmp_path, 2)
    graph = Graph.load(_graph(tmp_path, save=str(tmp_path / "out.fits")))
    jobs = jobs_from_each([("narrow.path", str(tmp_path / "panel*.fits"))])
    with pytest.raises(MsgrError, match=r"jobs panel0 and panel1 would both write .*out.fits \(save.path\)"):
        batch(graph, jobs)
    assert not (tmp_path / "out.fits").exists()
    # {job} gives each its own file
    graph.set("save.path", str(tmp_path / "{job}_out.fits"))
    assert [r.status for r in batch(graph, jobs, workers=1)] == ["ok", "ok"]
    assert (tmp_path / "panel0_out.fits").is_file() and (tmp_path / "panel1_out.fits").is_file()


def test_each_globs_are_zipped_and_must_match_as_many_files(tmp_path):
    _frames(tmp_path, 2)
    (tmp_path / "w").mkdir()
    _frames(tmp_path / "w", 3)
    with pytest.raises(MsgrError, match="the --each globs match different numbers of files"):
        jobs_from_each([("narrow.path", str(tmp_path / "panel*.fits")), ("wide.path", str(tmp_path / "w" / "*.fits"))])
    (tmp_path / "m.csv").write_text("job,narrow.path\nfirst,panel0.fits\nsecond,panel1.fits\n")
    jobs = jobs_from_manifest(tmp_path / "m.csv")
    assert jobs == [Job("first", {"narrow.path": str(tmp_path / "panel0.fits")}),
                    Job("second", {"narrow.path": str(tmp_path / "panel1.fits")})]


def test_resume_skips_jobs_whose_outputs_came_from_the_same_graph(client, tmp_path):
    _frames(tmp_path, 3)
    graph = Graph.load(_graph(tmp_path))
    jobs = jobs_from_each([("narrow.path", str(tmp_path / "panel*.fits"))])
    assert [r.status for r in batch(graph, jobs, client)] == ["ok"] * 3
    (tmp_path / "panel1_flat.fits").unlink()
    again = batch(graph, jobs, client, resume=True)
    assert [r.status for r in again] == ["skipped", "ok", "skipped"]
    graph.set("abe.degree", 2)  # another graph: the outputs are not its own
    graph.set("save.overwrite", True)
    assert [r.status for r in batch(graph, jobs, client, resume=True)] == ["ok"] * 3


def _slow_graph(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    fits.writeto(tmp_path / "big.fits", (0.1 + rng.normal(0, 0.01, (1500, 1500))).astype(np.float32))
    g = Graph()
    g.add_node("Load", "narrow", {"path": str(tmp_path / "big.fits")})
    g.add_node("MMT", "mmt", {"remove_layers": 0, "layers": 7, "enabled": "R", "method": "exact"})
    g.add_node("Save", "save", {"path": str(tmp_path / "{job}.fits")})
    g.link("narrow", "image", "mmt", "image")
    g.link("mmt", "image", "save", "image")
    return g


def test_a_worker_killed_mid_job_has_its_job_retried_on_another(client, tmp_path):
    graph = _slow_graph(tmp_path)
    out, started = {}, []
    t = threading.Thread(target=lambda: out.setdefault("r", batch(graph, [Job("slow")], client, on_start=started.append)))
    t.start()
    victim = None
    for _ in range(400):  # wait until a worker runs the job, then kill that worker's process
        busy = [w for w, keys in client.processing().items() if keys]
        if busy:
            victim = busy[0]
            break
        time.sleep(0.05)
    assert victim is not None
    time.sleep(1.0)
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    t.join(300)
    assert not t.is_alive()
    (result,) = out["r"]
    assert result.status == "ok", result.error
    assert not result.worker.endswith(f":{pid}")  # it ran again, in another process
    assert started == ["slow"]  # the progress was told when it started (once, though it ran twice)
    assert (tmp_path / "slow.fits").is_file()
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it: the next tests have two again


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_scheduler_file(path: Path, proc: subprocess.Popen, seconds: float = 180) -> str:
    """The address the scheduler wrote once it listens; a slow machine may take long to import distributed."""
    import json

    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, "the dask scheduler exited before it listened"
        try:
            return json.loads(path.read_text())["address"]
        except (FileNotFoundError, ValueError, KeyError):  # not there yet, or half written
            time.sleep(0.2)
    raise AssertionError(f"the dask scheduler did not listen within {seconds} s")


def test_an_existing_cluster_started_with_dask_scheduler_and_dask_worker(tmp_path, capsys):
    _frames(tmp_path, 2)
    graph = _graph(tmp_path)
    scheduler_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    # port 0 and a scheduler file: no race for a port picked beforehand, and the test waits for the
    # scheduler to listen instead of guessing how long its start takes
    procs = [subprocess.Popen(dask + ["--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
                                      "--scheduler-file", str(scheduler_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        address = _wait_for_scheduler_file(scheduler_file, procs[0])
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                       "--host", "127.0.0.1", "--no-dashboard"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="60s") as c:
            c.wait_for_workers(1, timeout=180)
        code = main(["batch", str(graph), "--each", f"narrow.path={tmp_path / 'panel*.fits'}", "--scheduler", address,
                     "--no-cache"])
        assert code == 0, capsys.readouterr().err
        assert (tmp_path / "panel0_flat.fits").is_file() and (tmp_path / "panel1_flat.fits").is_file()
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(30)


def test_a_scheduler_that_does_not_answer_is_named_in_one_line(tmp_path, capsys):
    _frames(tmp_path, 1)
    code = main(["batch", str(_graph(tmp_path)), "--each", f"narrow.path={tmp_path / 'panel*.fits'}",
                 "--scheduler", f"tcp://127.0.0.1:{_free_port()}", "--no-cache"])
    assert code == 1
    err = capsys.readouterr().err
    assert "no Dask scheduler answers there" in err and err.count("error:") == 1


def _kill_the_worker_running(client, dead: set) -> str:
    """Wait until a live worker (not one of ``dead``) runs a job, then SIGKILL its process; its address."""
    import dask

    deadline = time.time() + 120
    with dask.config.set({"distributed.comm.timeouts.connect": "3s"}):
        while time.time() < deadline:
            alive = set(client.scheduler_info()["workers"])
            busy = [w for w, keys in client.processing().items() if keys and w in alive and w not in dead]
            if busy:
                time.sleep(1.0)
                try:
                    pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                except Exception:  # it went away meanwhile: look again
                    continue
                os.kill(pid, signal.SIGKILL)
                return busy[0]
            time.sleep(0.05)
    raise AssertionError("no worker took the job")


def test_a_job_whose_worker_dies_twice_is_reported_failed_and_the_others_finish(client, tmp_path):
    graph = _slow_graph(tmp_path)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", batch(graph, [Job("doomed")], client)))
    t.start()
    first = _kill_the_worker_running(client, set())
    _kill_the_worker_running(client, {first})  # the job moved on to another worker: kill that one too
    t.join(300)
    (result,) = out["r"]
    assert result.status == "failed"
    assert result.error == "its worker died (killed or out of memory), and again on a second worker"
    client.wait_for_workers(2, timeout=60)


def test_mosaic_settings_give_every_panel_the_median_slope(client, small_pair, tmp_path):
    import shutil

    for k in range(2):
        shutil.copy(small_pair / "narrow.fits", tmp_path / f"panel{k}.fits")
    graph = Graph.load("msgr_additive")
    graph.set("wide.path", str(small_pair / "wide.fits"))
    jobs = jobs_from_each([("narrow.path", str(tmp_path / "panel*.fits"))])
    settings = dict(mosaic_settings(graph, jobs, client))
    assert float(settings["detail_fit.slope"]) > 0
    assert settings["detail_fit.offset"] == "none" and settings["gradient_model.zero_median"] == "false"
    assert not list(tmp_path.glob("*_msgr*.fits"))  # the first pass saves nothing


def test_mosaic_settings_leave_the_cascades_shared_stage_alone(client, tmp_path):
    """In the cascade, wide_fit fits the wide image to the ultra-wide one: the same for every panel,
    so the mosaic's common slope and offset are for detail_fit (the panels') only."""
    import shutil

    pair = make_pair(tmp_path / "triplet", seed=3, ultra_ratio=6.0, ultra_fov=3.6)
    for k in range(2):
        shutil.copy(pair / "narrow.fits", tmp_path / f"panel{k}.fits")
    graph = Graph.load("msgr_cascade")
    graph.set("wide.path", str(pair / "wide.fits"))
    graph.set("ultra.path", str(pair / "ultra.fits"))
    settings = dict(mosaic_settings(graph, jobs_from_each([("narrow.path", str(tmp_path / "panel*.fits"))]), client))
    assert sorted(settings) == ["detail_fit.offset", "detail_fit.slope", "gradient_model.zero_median"]
    # the panels' slope (narrow = 1.25 x wide in this pair), not the wide image's slope on the ultra-wide one (1)
    assert abs(float(settings["detail_fit.slope"]) - 1.25) < 0.05


def test_batch_mosaic_corrects_every_panel_with_one_slope(small_pair, tmp_path, capsys):
    import shutil

    for k in range(2):
        shutil.copy(small_pair / "narrow.fits", tmp_path / f"panel{k}.fits")
    code = main(["batch", "msgr_additive", "--mosaic", "--each", f"narrow.path={tmp_path / 'panel*.fits'}",
                 "-s", f"wide.path={small_pair / 'wide.fits'}", "--workers", "2", "--no-cache"])
    err = capsys.readouterr().err
    assert code == 0, err
    line = next(x for x in err.splitlines() if x.startswith("mosaic: "))
    assert "-s detail_fit.offset=none" in line and "-s gradient_model.zero_median=false" in line
    slope = line.split("detail_fit.slope=")[1].split()[0]
    for k in range(2):
        history = " ".join(str(h) for h in fits.getheader(tmp_path / f"panel{k}_msgr.fits")["HISTORY"])
        assert f"slope given: {float(slope):.4f}" in history.replace(" MSGR check ch1+ ", "")


def test_the_progress_shows_a_row_per_job_on_a_terminal():
    import io

    from msgr_nodes import JobResult
    from msgr_nodes.progress import batch_progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    with batch_progress(["night1", "night2"], out) as bar:
        bar.start("night1")
        bar(JobResult("night1", "ok", 2.5))
        bar(JobResult("night2", "failed", 0.5, error="bad"))
    text = out.getvalue()
    assert "night1" in text and "ok (2.5 s)" in text and "failed (0.5 s)" in text and "2/2" in text
