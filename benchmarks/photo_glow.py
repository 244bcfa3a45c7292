"""What a single-image background model takes from the photographs themselves: ABE (degrees 1 and 2,
PixInsight's defaults otherwise) on the gradient-free narrow image of each real pair
(``narrow_clean.fits``: the photograph, linearised, before any gradient is injected), beside the
injected gradients of the benchmark's three seeds. Figures in % of the sky level: the model's RMS,
and the scorer's resid_rms (../shared/bench/score.py) of the photograph minus it, which a perfect
tool would leave at 0.

    python benchmarks/photo_glow.py [--workdir DIR]

A photograph filled with faint nebula (sh2-263 inside the Lambda Orionis ring) has large-scale
structure of its own that no single-image model can tell from a gradient of the same size; where
the wide image is refused as a reference, the result on such a frame can only be as good as that.
Needs Debian's stellarium-data (fetched with apt-get download), as quality.py --realpairs.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from quality import HELD_OUT_REALPAIRS, REALPAIRS, load_score, prepare, scene_tag, texture_source  # noqa: E402

from msgr_nodes.ops.abe import ABEParams, fit_background  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "msgr-bench-pairs")
    a = ap.parse_args()
    score_mod = load_score()
    pairs = {}
    for scene, args in REALPAIRS + HELD_OUT_REALPAIRS:
        pairs.setdefault(scene.split(" (")[0], []).append(
            prepare(a.workdir, f"{scene_tag(scene)}_2000", args + texture_source(args), None, []))
    print("| photograph | injected gradients, rms (3 seeds) | ABE degree 1 on it: model / left | "
          "ABE degree 2 on it: model / left |\n| --- | --- | --- | --- |")
    for name, folders in pairs.items():
        pair = folders[0]
        truth = json.loads((pair / "truth.json").read_text())
        sky = truth["narrow"]["pedestal_e"] / 65535.0
        clean = score_mod.load(pair / "narrow_clean.fits").astype(np.float32)
        gradients = [float(np.std(score_mod.load(f / "narrow_gradient.fits"))) / sky * 100 for f in folders]
        cells = []
        for degree in (1, 2):
            model = fit_background(clean, ABEParams(degree=degree))[0].evaluate()
            left = score_mod.score(clean - model, pair, sky)["resid_rms"]
            cells.append(f"{float(np.std(model)) / sky * 100:.2f} / {left:.2f}")
        print(f"| {name} | {', '.join(f'{g:.2f}' for g in gradients)} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
