"""The cascade stock graph against the recommended one: an ultra-wide image of the same sky corrects
the wide image before the wide image corrects the narrow one.

    python benchmarks/cascade.py [--workdir DIR] [--out DIR] [--size 2000 1500] [--only NAME ...]

Each scene is a pair made with make_pairs.py, as in quality.py, plus an ultra-wide image: the same
make_pairs.py arguments with twice the wide image's pixel-scale ratio and twice its field (the wide
image of that second run). Columns: uncorrected, msgr_additive.json (narrow + wide), its floor
with the truth's gradient-free wide image, msgr_cascade.json (narrow + wide + ultra-wide) and the
wide image's DetailFit verdict on the ultra-wide one. ``resid_rms`` in % of sky from
``../shared/bench/score.py``.

--stretched-ultra gives the cascade an ultra-wide image that is not linear: the same one after a
strong stretch (asinh of 2000 x the data, as an already processed frame). Its checks compare detail
bands, which a monotonic stretch keeps alike at every scale, so it passes them; the wide image's
DetailFit finds the stretch from the detail's slope changing with brightness and linearizes it
(the verdict says "linearized").
"""
import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pairs import make_pair  # noqa: E402
from quality import (IMPERFECT, SCENES, asinh_stretch, load_score, rewrite, run_graph, rung,  # noqa: E402
                     scene_tag, texture_source, truth_wide)

from msgr_nodes.executor import Executor  # noqa: E402

# the scenes whose result is limited by the wide image's own background (see quality.py's table:
# a floor well below the result), and three where it is not
NAMES = ["rcw32 r3 simple", "rcw32 r3 complex", "rcw32 r5 complex x2", "n7000 r3 complex", "1 frame",
         "2 frames, complex", "rcw32 seed 26 (as is)", "faint wide sb 0.3", "virgo r4 complex",
         "m42 r2.5 simple x2", "ic1805 (heart)"]


def option(args, name, default):
    return float(args[args.index(name) + 1]) if name in args else default


def ultra_args(args):
    """make_pairs.py arguments for the ultra-wide image: twice the wide image's scale ratio and field."""
    replaced = {i + k for i, a in enumerate(args) if a in ("--ratio", "--wide-fov") for k in (0, 1)}
    rest = [a for i, a in enumerate(args) if i not in replaced]
    return rest + ["--ratio", str(2 * option(args, "--ratio", 3.0)),
                   "--wide-fov", str(2 * option(args, "--wide-fov", 1.8))]


def stretched_ultra(pair):
    """A copy of the scene's folder whose ultra-wide image is asinh-stretched (quality.py's
    asinh_stretch): the same sky, not linearly related to the wide image."""
    out = pair.with_name(pair.name + "_stretched")
    if not (out / "ultra.fits").exists():
        shutil.copytree(pair, out, dirs_exist_ok=True)
        rewrite(out / "ultra.fits", asinh_stretch)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "msgr-bench-pairs")
    ap.add_argument("--out", type=Path, default=Path("benchmark-cascade"))
    ap.add_argument("--size", nargs=2, default=["2000", "1500"])
    ap.add_argument("--only", nargs="*", help="scene names to run (default all)")
    ap.add_argument("--stretched-ultra", action="store_true",
                    help="an ultra-wide image that is not linear: asinh-stretched (see above)")
    a = ap.parse_args()
    score_mod = load_score()
    table = {n: args for n, args in SCENES} | {n: args for n, args, modifier in IMPERFECT if modifier is None}
    names = a.only or NAMES
    unknown = [n for n in names if n not in table]
    if unknown:
        sys.exit(f"unknown scene(s) {unknown}; scenes: {NAMES}")
    print("| scene | uncorrected | msgr_additive.json | floor (truth wide) | **msgr_cascade.json** | wide's verdict on "
          "the ultra-wide |\n| --- | --- | --- | --- | --- | --- |", flush=True)
    rows = []
    for scene in names:
        args = table[scene]
        tag = scene_tag(scene)
        deb = texture_source(args)
        size = ["--narrow-size", *a.size]
        pair = make_pair(a.workdir / f"cascade_{tag}_{a.size[0]}", *args, *deb, *size)
        ultra_dir = make_pair(a.workdir / f"cascade_{tag}_{a.size[0]}_ultra", *ultra_args(args), *deb, *size)
        if not (pair / "ultra.fits").exists():
            shutil.copy(ultra_dir / "wide.fits", pair / "ultra.fits")
        if a.stretched_ultra:
            pair = stretched_ultra(pair)
        truth = json.loads((pair / "truth.json").read_text())
        sky = truth["narrow"]["sky_e"] / 65535.0
        out = a.out.resolve() / (tag + ("_stretched" if a.stretched_ultra else ""))
        out.mkdir(parents=True, exist_ok=True)
        ex = Executor(jobs=2, memory_bytes=4 * 1024 ** 3)
        row = {"scene": scene, "uncorrected": score_mod.score(score_mod.load(pair / "narrow.fits"), pair, sky)}
        for name in ("msgr_additive.json", "msgr_cascade.json"):
            runs = []
            path, _, note = run_graph(name, pair, out, ex, runs)
            row[name] = score_mod.score(score_mod.load(path), pair, sky) if path else None
            row[f"{name} verdict"] = note
        wide_fit = runs[0].results.get("wide_fit")
        row["wide verdict"] = wide_fit.metadata["channels"][0]["check"] if wide_fit else "failed"
        path, _, _ = run_graph("msgr_additive.json", truth_wide(pair, out), out / "truth_wide", ex)
        row["floor"] = score_mod.score(score_mod.load(path), pair, sky) if path else None
        rows.append(row)
        cell = lambda s: "failed" if s is None else f"{s['resid_rms']:.2f}"  # noqa: E731
        print(f"| {scene} | {cell(row['uncorrected'])} | {cell(row['msgr_additive.json'])} | {cell(row['floor'])} "
              f"| **{cell(row['msgr_cascade.json'])}** | {rung(row['wide verdict'])} |", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "cascade.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
