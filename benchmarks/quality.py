"""Quality benchmark: uncorrected, our ABE at its best degree, msgr.json and msgr_additive.json,
scored with ../shared/bench/score.py on pairs made with make_pairs.py, in one run.

    python benchmarks/quality.py [--workdir DIR] [--out DIR] [--size 2000 1500] [--realpairs]

Prints a table of resid_rms, grad_left and gain_spread (% of sky; see score.py) and writes
before / after / model PNGs (PixInsight's AutoSTF) per scene into --out. --realpairs adds pairs of
two differently processed real photographs (make_pairs.py --mode realpair; needs Debian's
stellarium-data, fetched with apt-get download), where the graph must not make the image worse.
"""
import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pairs import SHARED, make_pair  # noqa: E402

from msgr_nodes.demo import before_after_png, self_check  # noqa: E402
from msgr_nodes.stock import stock_graph  # noqa: E402
from msgr_nodes.executor import Executor  # noqa: E402
from msgr_nodes.graph import Graph  # noqa: E402
from msgr_nodes.io.formats import read_image  # noqa: E402

SCENES = [
    ("rcw32 r3 simple", ["--preset", "rcw32", "--seed", "1", "--ratio", "3"]),
    ("rcw32 r3 complex", ["--preset", "rcw32", "--seed", "2", "--ratio", "3", "--gradient-kind", "complex"]),
    ("rcw32 r5 complex x2", ["--preset", "rcw32", "--seed", "5", "--ratio", "5", "--wide-fov", "2.5",
                             "--gradient-kind", "complex", "--gradient-strength", "2"]),
    ("virgo r2 simple x2", ["--preset", "virgo", "--seed", "3", "--ratio", "2", "--gradient-strength", "2"]),
    ("virgo r4 complex", ["--preset", "virgo", "--seed", "4", "--ratio", "4", "--gradient-kind", "complex"]),
    ("n7000 r3 complex", ["--preset", "n7000", "--seed", "6", "--ratio", "3", "--gradient-kind", "complex"]),
    ("m42 r2.5 simple x2", ["--preset", "m42", "--seed", "7", "--ratio", "2.5", "--gradient-strength", "2"]),
]
REALPAIRS = [("real sh2-263/264", ["--mode", "realpair", "--pair", "sh2_263_in_sh2_264"]),
             ("real m4/rho oph", ["--mode", "realpair", "--pair", "m4_in_rho_oph"])]


def load_score():
    spec = importlib.util.spec_from_file_location("score", SHARED / "bench" / "score.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_graph(name, pair, out, ex):
    g = Graph.load(stock_graph(name))
    g.set("narrow.path", str(pair / "narrow.fits"))
    g.set("wide.path", str(pair / "wide.fits"))
    g.set("save.path", str(out / f"{name[:-5]}.fits"))
    g.set("save_model.path", str(out / f"{name[:-5]}_model.fits"))
    g.set("save.overwrite", True)
    g.set("save_model.overwrite", True)
    t = time.perf_counter()
    res = ex.run(g)
    if not res.ok:
        return None, time.perf_counter() - t, "; ".join(list(res.errors.values()) + list(res.skipped.values()))
    check = self_check(res)
    return out / f"{name[:-5]}.fits", time.perf_counter() - t, check


def best_abe(pair, out, ex, score_mod, sky):
    best = None
    for degree in (1, 2, 3, 4):
        g = Graph()
        g.add_node("Load", "narrow", {"path": str(pair / "narrow.fits")})
        g.add_node("ABE", "abe", {"degree": degree})
        g.add_node("Save", "save", {"path": str(out / f"abe_d{degree}.fits"), "overwrite": True})
        g.link("narrow", "image", "abe", "image")
        g.link("abe", "image", "save", "image")
        if not ex.run(g).ok:
            continue
        s = score_mod.score(score_mod.load(out / f"abe_d{degree}.fits"), pair, sky)
        if best is None or s["resid_rms"] < best[1]["resid_rms"]:
            best = (degree, s)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "msgr-bench-pairs")
    ap.add_argument("--out", type=Path, default=Path("benchmark-quality"))
    ap.add_argument("--size", nargs=2, default=["2000", "1500"])
    ap.add_argument("--realpairs", action="store_true")
    ap.add_argument("--only", nargs="*", help="scene names to run (default all)")
    a = ap.parse_args()
    score_mod = load_score()
    scenes = SCENES + (REALPAIRS if a.realpairs else [])
    if a.only:
        scenes = [s for s in scenes if s[0] in a.only]
    rows = []
    print(f"{'scene':22s} {'method':20s} {'resid_rms%':>10s} {'grad_left%':>10s} {'gain_spread%':>12s} {'s':>6s}  note",
          flush=True)
    for scene, args in scenes:
        tag = scene.replace(" ", "_").replace("/", "-")
        extra = [] if "realpair" in args else ["--narrow-size", *a.size]
        try:
            pair = make_pair(a.workdir / f"{tag}_{a.size[0]}", *args, *extra,
                             *(["--apt-download"] if any(p in args for p in ("n7000", "m42", "realpair")) else []))
        except Exception as exc:  # a scene whose data cannot be had here is reported, not fatal
            print(f"{scene:22s} (skipped: could not generate the pair: {exc})", flush=True)
            continue
        truth = json.loads((pair / "truth.json").read_text())
        sky = truth["narrow"].get("sky_e", truth["narrow"].get("pedestal_e")) / 65535.0
        out = a.out.resolve() / tag  # graph paths resolve against the graph file, not here
        out.mkdir(parents=True, exist_ok=True)
        ex = Executor(jobs=2, memory_bytes=4 * 1024 ** 3)
        base = score_mod.score(score_mod.load(pair / "narrow.fits"), pair, sky)
        results = [("uncorrected", base, 0.0, "")]
        t = time.perf_counter()
        abe = best_abe(pair, out, ex, score_mod, sky)
        if abe:
            results.append((f"ABE (best: degree {abe[0]})", abe[1], time.perf_counter() - t, ""))
        for name in ("msgr.json", "msgr_additive.json"):
            path, dt, note = run_graph(name, pair, out, ex)
            if path is None:
                results.append((name, None, dt, note))
                continue
            results.append((name, score_mod.score(score_mod.load(path), pair, sky), dt, note))
            if name == "msgr_additive.json":
                before_after_png(read_image(pair / "narrow.fits").data, read_image(path).data,
                                 read_image(out / "msgr_additive_model.fits").data, out / "before_after.png")
        for method, s, dt, note in results:
            if s is None:
                print(f"{scene:22s} {method:20s} {'failed':>10s} {'':>10s} {'':>12s} {dt:6.1f}  {note[:90]}", flush=True)
                continue
            print(f"{scene:22s} {method:20s} {s['resid_rms']:10.2f} {s['grad_left']:10.1f} {s['gain_spread']:12.2f} "
                  f"{dt:6.1f}  {note[:90]}", flush=True)
            rows.append({"scene": scene, "method": method, **s, "seconds": dt, "note": note})
    (a.out / "quality.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
