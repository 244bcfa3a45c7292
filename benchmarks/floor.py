"""The floor with its degree given by hand: msgr_additive.json on the real pairs (two differently
processed photographs; the wide image is refused for its detail) with DetailFit's floor_degree 0 (the
default, chosen blind: a polynomial fitted jointly with the wide image's large scales where it sees the
same sky, else ABE at degree 0-2, higher where the wide image shows the added structure is no sky)
and 3-6 (ABE of the narrow image alone at that degree), beside our ABE at the same degrees, in one
run, scored with ../shared/bench/score.py (resid_rms, % of sky).

    python benchmarks/floor.py [--workdir DIR] [--out DIR]

Without a reference, ABE's higher degrees eat the nebula of a frame it fills; a user who knows the
frame to be mostly empty sky (a galaxy field) can give a higher one. Needs Debian's stellarium-data
(fetched with apt-get download), as quality.py --realpairs.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from quality import REALPAIRS, abe, load_score, prepare, run_graph, scene_tag, texture_source  # noqa: E402

from msgr_nodes.executor import Executor  # noqa: E402

DEGREES = (0, 3, 4, 5, 6)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "msgr-bench-pairs")
    ap.add_argument("--out", type=Path, default=Path("benchmark-floor"))
    a = ap.parse_args()
    score_mod = load_score()
    heads = " | ".join(f"floor_degree {d}" + (" (blind)" if d == 0 else "") for d in DEGREES)
    print(f"| pair | uncorrected | {heads} | ABE " + " | ABE ".join(map(str, DEGREES[1:])) + " |")
    print("| --- " * (1 + 2 * len(DEGREES)) + "|", flush=True)
    for scene, args in REALPAIRS:
        tag = scene_tag(scene)
        pair = prepare(a.workdir, f"{tag}_2000", args + texture_source(args), None, [])
        truth = json.loads((pair / "truth.json").read_text())
        sky = truth["narrow"].get("sky_e", truth["narrow"].get("pedestal_e")) / 65535.0
        out = a.out.resolve() / tag
        out.mkdir(parents=True, exist_ok=True)
        ex = Executor(jobs=2, memory_bytes=4 * 1024 ** 3)  # one executor: only DetailFit on reruns
        cells = [f"{score_mod.score(score_mod.load(pair / 'narrow.fits'), pair, sky)['resid_rms']:.2f}"]
        for degree in DEGREES:
            (out / f"floor{degree}").mkdir(exist_ok=True)
            runs = []
            path, _, check = run_graph("msgr_additive.json", pair, out / f"floor{degree}", ex, runs,
                                       settings={"detail_fit.floor_degree": degree})
            result = score_mod.score(score_mod.load(path), pair, sky)["resid_rms"] if path else None
            used = runs[0].results["detail_fit"].metadata["channels"][0].get("floor_degree", "-") if path else "-"
            how = "nothing subtracted" if used == 0 else f"degree {used}"
            cells.append(f"failed: {check}" if result is None else f"{result:.2f} ({how})")
        for degree in DEGREES[1:]:
            run = abe(pair, out, ex, score_mod, sky, degree)
            cells.append("failed" if run is None else f"{run[0]['resid_rms']:.2f}")
        print(f"| {scene} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
