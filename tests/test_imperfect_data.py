"""The recommended graph on imperfect data: local defects are left out, a soft wide image is compared
at matched resolution, and where the wide image cannot be trusted the narrow one gets a single-image
background model chosen blind, announced."""
import shutil

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from msgr_nodes.graph import Graph
from msgr_nodes.ops.abe import ABEParams, choose_degree
from msgr_nodes.ops.gradient import large_scale_slope, match_wide, wide_only_detail
from msgr_nodes.ops.stretch import TARGET_BACKGROUND, mtf
from pairrun import check_history, run_recommended, score_pair
from synthpair import make_pair

pytestmark = pytest.mark.slow


def _score(pair, image_path):
    return score_pair(pair, image_path)["resid_rms"]


def _run(pair, out, narrow="narrow.fits"):
    out_path, model_path, header = run_recommended(pair, out, narrow)
    return out_path, model_path, header["MSGRCHK"]


def _painted(pair, tmp_path, paint):
    """A copy of the narrow image with a defect painted in; returns its name in ``pair``."""
    d = fits.getdata(pair / "narrow.fits").copy()
    paint(d)
    name = f"narrow_{paint.__name__}.fits"
    fits.writeto(tmp_path / name, np.clip(d, 0, 1).astype(np.float32), fits.getheader(pair / "narrow.fits"))
    return name


def trail(d):
    """A 5 px satellite trail across the frame, 3300 e- bright."""
    h, w = d.shape
    yy, xx = np.mgrid[0:h, 0:w]
    d += (np.abs((yy - 0.2 * h) - xx * 0.6 * h / w) < 2.5) * 0.05


def saturated_patch(d):
    """A 40 x 40 px saturated patch (blooming, a bright satellite glint)."""
    h, w = d.shape
    d[h // 3:h // 3 + 40, w // 2:w // 2 + 40] = 1.0


def hot_pixels(d):
    """300 hot pixels at full scale (an uncalibrated sensor, cosmic rays)."""
    rng = np.random.default_rng(5)
    d[rng.integers(0, d.shape[0], 300), rng.integers(0, d.shape[1], 300)] = 1.0


@pytest.fixture(scope="module")
def clean_run(medium_pair, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    return _run(medium_pair, out)


@pytest.mark.parametrize("paint", [trail, saturated_patch, hot_pixels])
def test_a_local_defect_does_not_switch_the_correction_off(medium_pair, clean_run, tmp_path, paint):
    name = _painted(medium_pair, tmp_path, paint)
    pair = tmp_path / "pair"
    shutil.copytree(medium_pair, pair)
    shutil.copy(tmp_path / name, pair / name)
    out, model, verdict = _run(pair, tmp_path / "run", narrow=name)
    assert verdict == "passed"
    clean_out, clean_model, _ = clean_run
    # the model barely moves: the defect is left out of the slope fit and of the self-check
    m0, m1 = fits.getdata(clean_model), fits.getdata(model)
    sky = 1000 / 65535
    # measured: 0.35 (trail), 0.16 (patch), 0.0 (hot pixels; 0.66 when they took bright stars' masks)
    assert 100 * np.std((m1 - m0) - np.median(m1 - m0)) / sky < 0.5
    # and the score moves by at most 0.1 % of sky beyond what the painted defect itself costs
    painted_clean = fits.getdata(clean_out).copy()
    paint(painted_clean)
    fits.writeto(tmp_path / "painted_clean.fits", painted_clean.astype(np.float32))
    assert _score(medium_pair, out) <= _score(medium_pair, tmp_path / "painted_clean.fits") + 0.1


def test_hot_pixels_of_the_wide_image_are_not_resampled_into_stars(medium_pair, clean_run, tmp_path):
    """150 hot pixels in the wide image: Register replaces them before it resamples (spread by the
    interpolation, they were taken for saturated stars: 0.25 -> 0.56 % of sky; now 0.31)."""
    pair = tmp_path / "pair"
    shutil.copytree(medium_pair, pair)
    d, header = fits.getdata(pair / "wide.fits").copy(), fits.getheader(pair / "wide.fits")
    rng = np.random.default_rng(3)
    d[rng.integers(0, d.shape[0], 150), rng.integers(0, d.shape[1], 150)] = 1.0
    fits.writeto(pair / "wide.fits", d, header, overwrite=True)
    result = []
    out, _, header = run_recommended(pair, tmp_path / "run", result=result)
    assert header["MSGRCHK"] == "passed"
    assert _score(medium_pair, out) <= _score(medium_pair, clean_run[0]) + 0.1
    assert result[0].results["star_align"].metadata["hot_pixels_replaced"] >= 130


def wide_saturated_patch(d):
    """A 20 x 20 px saturated patch in the middle of the wide image (blooming, a glint)."""
    h, w = d.shape
    d[h // 2 - 10:h // 2 + 10, w // 2 - 5:w // 2 + 15] = 1.0


def wide_trail(d):
    """A 3 px trail across the wide image, 3300 e- bright; it passes a saturated star."""
    h, w = d.shape
    yy, xx = np.mgrid[0:h, 0:w]
    d[:] = np.clip(d + (np.abs((yy - 0.3 * h) - xx * 0.5 * h / w) < 1.5) * 0.05, 0, 1)


@pytest.mark.parametrize("paint", [wide_saturated_patch, wide_trail])
def test_a_local_defect_of_the_wide_image_is_left_out(medium_pair, clean_run, tmp_path, paint):
    """Before, the patch's few saturated blocks carried the large-scale slope's line (1.02 -> 0.04),
    the defect search that depends on it gave up, and the patch went into the model: 0.25 -> 1.70 %
    of sky; now 0.27. The trail was left out, but StarRemove filled the saturated star's mask from
    the trail beside it, -35 % of sky over 80 px that no check marked: 0.55; now 0.32."""
    pair = tmp_path / "pair"
    shutil.copytree(medium_pair, pair)
    d, header = fits.getdata(pair / "wide.fits").copy(), fits.getheader(pair / "wide.fits")
    paint(d)
    fits.writeto(pair / "wide.fits", d, header, overwrite=True)
    out, _, verdict = _run(pair, tmp_path / "run")
    assert verdict == "passed"
    assert _score(medium_pair, out) <= _score(medium_pair, clean_run[0]) + 0.1


def test_the_black_borders_of_an_uncropped_stack_are_left_out(medium_pair, clean_run, tmp_path):
    """60 px of zeros along the narrow frame's left edge (a stack that was not cropped): before, the
    step entered the difference and left 2.6 % of sky over the rest of the frame (0.21 clean)."""
    d, header = fits.getdata(medium_pair / "narrow.fits").copy(), fits.getheader(medium_pair / "narrow.fits")
    d[:, :60] = 0
    pair = tmp_path / "pair"
    shutil.copytree(medium_pair, pair)
    fits.writeto(pair / "narrow_borders.fits", d, header)
    out, _, header = run_recommended(pair, tmp_path / "run", narrow="narrow_borders.fits")
    assert header["MSGRCHK"] == "passed"

    def score_right(image_path, x0=120):  # the frame right of the borders, beyond the model's seam
        from msgr_nodes.ops.score import score

        truth = {n: fits.getdata(medium_pair / f"narrow_{n}.fits")[:, x0:].astype(np.float64)
                 for n in ("nebula", "clean", "gradient")}
        return score(fits.getdata(image_path)[:, x0:].astype(np.float64), truth["nebula"], truth["clean"],
                     truth["gradient"], 1000 / 65535)["resid_rms"]

    assert score_right(out) <= score_right(clean_run[0]) + 0.1
    assert "the narrow image has no data on 7.6 % of its frame" in check_history(header)  # 60 px, widened


def test_a_soft_wide_image_passes_at_matched_resolution(tmp_path):
    """Wide stars of 5 wide px FWHM at ratio 3: 15 narrow px against the narrow's 3 (5x)."""
    pair = make_pair(tmp_path / "soft", narrow_size=(800, 600), seed=7, wide_fwhm=5.0)
    out, _, verdict = _run(pair, tmp_path / "run")
    assert verdict == "passed"
    before = _score(pair, pair / "narrow.fits")
    assert _score(pair, out) < min(1.0, before / 10)


def test_without_two_agreeing_scales_the_slope_is_the_best_explaining_bands(tmp_path):
    """A soft wide image at ratio 6, turned 90 degrees (21 narrow px stars against 3): the detail
    bands' slopes climb with scale (1.06, 1.30, 1.44 at 8, 16, 32 px; truth 1.25) and no two
    neighbours agree within 5 %, but the 16 px band explains the narrow image's detail (ratio 0.36).
    Its slope is used; the large-scale slope, from block medians that carry both images' gradients,
    is 1.77 here (0.29 % of sky left with it, 0.22 with the band's)."""
    pair = make_pair(tmp_path / "pair", narrow_size=(800, 600), seed=7, ratio=6.0, wide_fov=2.5, rotation=90.0,
                     distortion=4.0, wide_fwhm=3.5)
    runs = []
    out, _, header = run_recommended(pair, tmp_path / "run", result=runs)
    info = runs[0].results["detail_fit"].metadata["channels"][0]
    assert info["check"].startswith("fallback: no two neighbouring scales agree"), info["check"]
    assert abs(info["b"] - 1.25) < 0.06 * 1.25 < abs(info["b_large"] - 1.25), (info["b"], info["b_large"])
    assert _score(pair, out) < 0.26


def test_a_band_that_explains_the_detail_is_trusted_where_the_large_scale_slope_is_far_off(tmp_path):
    """The same soft, turned ratio-6 pair under gradients 1.5x as strong: block medians give a
    large-scale slope of 2.1 (truth 1.25), at which the best band keeps 55 % of the narrow image's
    detail, and the wide image was refused for it (the joint floor: 0.43 % of sky), though the 32 px
    band explains the detail (ratio 0.48). That band's slope is used: 1.63, still pulled by the
    gradients, but nearer the truth than the large-scale one, 0.40 % of sky (a held-out Veil pair at
    ratio 6, turned 150 degrees: 0.42 -> 0.34, its floor with the truth's wide image 0.35)."""
    pair = make_pair(tmp_path / "pair", narrow_size=(800, 600), seed=7, ratio=6.0, wide_fov=2.5, rotation=90.0,
                     distortion=4.0, wide_fwhm=3.5, gradient_strength=1.5)
    runs = []
    out, _, header = run_recommended(pair, tmp_path / "run", result=runs)
    info = runs[0].results["detail_fit"].metadata["channels"][0]
    assert info["large_ratio"] > 0.5 and info["b_large"] > 1.8  # the large-scale slope alone would refuse it
    assert info["check"].startswith("fallback: no two neighbouring scales agree"), info["check"]
    assert info["detail_ratio"] <= 0.5 and abs(info["b"] - 1.25) < abs(info["b_large"] - 1.25)
    assert _score(pair, out) < 0.41


@pytest.mark.parametrize("strength, limit", [(3.0, 0.6), (5.0, 0.85)])
def test_strong_gradients_of_high_order_do_not_hide_what_the_wide_image_sees(tmp_path, strength, limit):
    """The soft, turned ratio-6 pair under gradients 3x and 5x as strong, on a frame its nebula fills:
    the detail bands no longer explain the narrow image (best ratio 0.60 and 0.74) and the wide image
    is refused as a detail reference. Beyond degree-2 surfaces the two images' large scales then
    correlated at only 0.42 and 0.33 (their gradients of higher order differ), so the floor was ABE
    alone, which took the nebula: 170 and 118 % of sky left against 8.1 and 9.7 uncorrected. Beyond
    degree 4 and 6 they correlate at 0.81 and 0.87, and the joint fit takes the nebula off the
    polynomial (0.51 and 0.73)."""
    pair = make_pair(tmp_path / "pair", narrow_size=(800, 600), seed=7, ratio=6.0, wide_fov=2.5, rotation=90.0,
                     distortion=4.0, wide_fwhm=3.5, gradient_strength=strength)
    runs = []
    out, _, header = run_recommended(pair, tmp_path / "run", result=runs)
    info = runs[0].results["detail_fit"].metadata["channels"][0]
    assert info["check"].startswith("large-scale fallback"), info["check"]
    assert info["floor_sky_seen"] >= 0.5
    assert _score(pair, out) < limit < _score(pair, pair / "narrow.fits")


@pytest.mark.parametrize("wide_fwhm, before, limit", [(2.2, 0.60, 0.40), (4.5, 1.39, 0.90)])
def test_the_star_fills_of_either_image_stay_out_of_the_model(tmp_path, wide_fwhm, before, limit):
    """Ratio 5: each registered wide star covers 25 narrow px per wide px, and its fill (up to 80 px
    across) guesses the nebula under it differently from the narrow image's small fills. The
    difference is interpolated across both images' star masks instead (before: 0.60 and 1.39 % of
    sky, sharp and soft; now 0.28 and 0.69)."""
    pair = make_pair(tmp_path / "pair", narrow_size=(800, 600), seed=8, ratio=5.0, wide_fov=2.5,
                     wide_fwhm=wide_fwhm)
    out, _, verdict = _run(pair, tmp_path / "run")
    assert verdict == "passed"
    assert _score(pair, out) < limit


def test_the_difference_is_taken_at_a_soft_wide_images_resolution(tmp_path, monkeypatch):
    """A wide image from soft optics (22 narrow px stars against 3, ratio 5): StarRemove measures
    both FWHMs and DetailFit takes the difference with the narrow image blurred to the wide one's
    resolution, so that what the wide image does not resolve of the nebula's compact structure is
    not modelled as sky. Same pair, same run, with the blur switched off: 0.70 -> 0.62 % of sky."""
    import msgr_nodes.nodes.detail_fit as detail_fit

    pair = make_pair(tmp_path / "pair", narrow_size=(800, 600), seed=8, ratio=5.0, wide_fov=2.5, wide_fwhm=4.5)
    runs = []
    out, _, _ = run_recommended(pair, tmp_path / "matched", result=runs)
    blur = runs[0].results["detail_fit"].metadata["channels"][0]["difference_blur"]
    assert 8.0 < blur < 10.5  # sqrt(22.5^2 - 3^2) / 2.355 = 9.5 px
    monkeypatch.setattr(detail_fit, "difference_blur", lambda narrow, wide: 0.0)
    plain, _, _ = run_recommended(pair, tmp_path / "plain")
    matched, unmatched = _score(pair, out), _score(pair, plain)
    assert matched < 0.66 and matched < 0.92 * unmatched, (matched, unmatched)


def test_faint_stars_the_wide_image_keeps_are_not_taken_for_sky(tmp_path):
    """The narrow image's StarRemove finds thousands of faint stars that the soft wide image's
    (22 px stars, ratio 5) cannot: taken out of the narrow image only, their light stayed in the
    difference as a mottle the model took for sky. With the narrow image's stars connected
    (narrow_stars), the difference is taken on it and they cancel: same pair, 0.62 -> 0.45 % of sky
    against the run without that link."""
    pair = make_pair(tmp_path / "pair", narrow_size=(800, 600), seed=8, ratio=5.0, wide_fov=2.5, wide_fwhm=4.5)
    runs = []
    out, _, _ = run_recommended(pair, tmp_path / "stars", result=runs)
    narrow_found = runs[0].results["stars_narrow"].metadata["stars"]
    wide_found = runs[0].results["stars_wide"].metadata["stars"]
    assert narrow_found > 3 * wide_found  # the premise: the wide image keeps most of them
    assert runs[0].results["detail_fit"].metadata["channels"][0]["difference_with_stars"]
    plain, _, _ = run_recommended(pair, tmp_path / "starless", unlink=[("detail_fit", "narrow_stars")])
    with_stars, starless = _score(pair, out), _score(pair, plain)
    assert with_stars < 0.52 and with_stars < 0.8 * starless, (with_stars, starless)


@pytest.mark.parametrize("port, shape, message", [
    ("wide_mask", (1, 60, 80), "wide_mask is .* but narrow is .*StarRemove's mask output"),
    ("narrow_stars", (3, 120, 160), "narrow_stars is .* but narrow is .*StarRemove took"),
])
def test_detail_fit_names_an_input_of_another_shape(port, shape, message):
    g = Graph()
    g.add_node("DetailFit", "fit")
    spec = g.spec("fit")
    from msgr_nodes.context import RunContext
    from msgr_nodes.errors import NodeError
    from msgr_nodes.image import Image

    plane = np.random.default_rng(1).normal(0.1, 0.001, (1, 120, 160)).astype(np.float32)
    with pytest.raises(NodeError, match=message):
        spec.run(RunContext("fit"), {"narrow": Image(plane), "wide": Image(plane),
                                     port: Image(np.zeros(shape, np.float32))},
                 spec.effective_params(g.nodes["fit"].params))


def test_detail_fit_names_a_wide_background_it_cannot_place():
    """The wide image's ABE model is on the wide grid: without Register's transform, or with the
    transform of another frame, DetailFit says what to connect."""
    g = Graph()
    g.add_node("DetailFit", "fit")
    spec = g.spec("fit")
    from msgr_nodes.context import RunContext
    from msgr_nodes.errors import NodeError
    from msgr_nodes.image import Image

    plane = np.random.default_rng(1).normal(0.1, 0.001, (1, 120, 160)).astype(np.float32)
    model = Image(np.full((1, 90, 100), 0.1, np.float32))
    params = spec.effective_params(g.nodes["fit"].params)
    with pytest.raises(NodeError, match="wide_background is .* not on the narrow grid .* connect Register's transform"):
        spec.run(RunContext("fit"), {"narrow": Image(plane), "wide": Image(plane), "wide_background": model}, params)
    other = {"kind": "projective", "H": np.eye(3).tolist(), "reference_shape": [60, 80], "target_shape": [90, 100]}
    with pytest.raises(NodeError, match="the transform maps from a 80x60 frame, not the narrow image's"):
        spec.run(RunContext("fit"), {"narrow": Image(plane), "wide": Image(plane), "wide_background": model,
                                     "transform": other}, params)
    ctx = RunContext("fit")
    spec.run(ctx, {"narrow": Image(plane), "wide": Image(plane), "transform": other}, params)
    assert any("the transform is used only with wide_background" in w for w in ctx.warnings)


def test_abe_degree_auto_is_chosen_blind_by_cross_validation(rng):
    h, w = 300, 400
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    noise = rng.normal(0, 0.002, (h, w))
    plane = 0.1 + 0.02 * xx - 0.01 * yy + noise
    bowl = 0.1 + 0.05 * ((xx - 0.4) ** 2 + (yy - 0.6) ** 2) + 0.04 * (xx - 0.5) ** 3 + noise
    flat = 0.1 + noise
    assert choose_degree(plane.astype(np.float32), ABEParams())[0] == 1
    assert choose_degree(bowl.astype(np.float32), ABEParams())[0] in (2, 3)
    assert choose_degree(flat.astype(np.float32), ABEParams())[0] == 0


def _nebula_field(seed, h=450, w=600):
    """A frame filled with faint nebulosity (12 broad glows) over a gentle gradient, as an
    emission-nebula photograph: (image, its gradient-free truth, sky level)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    nebula = np.zeros((h, w))
    for _ in range(12):
        cx, cy, s, a = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3), rng.uniform(0.004, 0.015)
        nebula += a * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    sky = 0.1
    gradient = 0.02 * xx + 0.02 * (yy - 0.5) ** 2
    image = sky + nebula + gradient + rng.normal(0, 0.002, (h, w))
    return image.astype(np.float32), sky + nebula, sky


def _residual(image, truth, sky):
    r = image - truth
    return 100 * float(np.sqrt(np.mean((r - np.median(r)) ** 2))) / sky


def _abe_auto(tmp_path, name):
    """The ABE node with ``degree: 0`` (auto) on ``tmp_path / name``: its RunResult."""
    g = Graph(base_dir=tmp_path)
    g.add_node("Load", "narrow", {"path": name})
    g.add_node("ABE", "abe", {"degree": 0})
    g.link("narrow", "image", "abe", "image")
    res = g.run(["abe"])
    assert res.ok, res.errors
    return res


def test_abe_degree_auto_does_not_eat_a_nebula_filling_the_frame(tmp_path):
    """Blind, a flexible surface takes broad nebulosity for background (degree 5-6 was chosen here
    and made most frames worse than the input, up to 1.6x); auto keeps to the degrees that cannot."""
    before, after = [], []
    for seed in range(1, 9):
        image, truth, sky = _nebula_field(seed)
        fits.writeto(tmp_path / f"in{seed}.fits", image)
        res = _abe_auto(tmp_path, f"in{seed}.fits")
        before.append(_residual(image, truth, sky))
        after.append(_residual(res.output("abe", "image").data[0], truth, sky))
    ratios = np.array(after) / np.array(before)
    assert np.median(ratios) < 0.95, ratios
    assert ratios.max() < 1.25, ratios


def test_abe_degree_auto_leaves_a_frame_without_gradient_alone(tmp_path, rng):
    image = (0.1 + rng.normal(0, 0.002, (300, 400))).astype(np.float32)
    fits.writeto(tmp_path / "flat.fits", image)
    res = _abe_auto(tmp_path, "flat.fits")
    assert res.results["abe"].metadata["channels"][0]["degree"] == 0
    out = res.output("abe", "image").data[0]
    assert np.allclose(out - np.median(out), image - np.median(image), atol=1e-6)


def test_abe_node_degree_zero_means_auto(tmp_path, rng):
    h, w = 300, 400
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = 0.1 + 0.05 * ((xx - 0.4) ** 2 + (yy - 0.6) ** 2) + rng.normal(0, 0.002, (h, w))
    fits.writeto(tmp_path / "in.fits", img.astype(np.float32))
    res = _abe_auto(tmp_path, "in.fits")
    chosen = res.results["abe"].metadata["channels"][0]["degree"]
    assert chosen == 2
    flat = res.output("abe", "image").data[0]
    assert np.std(flat) < 0.0025  # the bowl is gone, the noise (0.002) is left


def _galaxy_field(rng, h=450, w=600, count=25):
    """Mostly empty sky: ``count`` small galaxies (elliptical blobs, 0.02-0.3 x the sky) over a sky of
    0.1, with read noise; (h, w) float64."""
    yy, xx = np.mgrid[0:h, 0:w]
    galaxies = np.zeros((h, w))
    for _ in range(count):
        cx, cy, s, a = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 12), rng.uniform(0.002, 0.03)
        galaxies += a * np.exp(-((xx - cx) ** 2 + 2 * (yy - cy) ** 2) / (2 * s * s))
    return 0.1 + galaxies + rng.normal(0, 0.002, (h, w))


def test_the_floor_takes_a_higher_degree_given_by_hand(rng):
    """Where the wide image is refused, a user who knows the frame to be mostly empty sky (a galaxy
    field) can give the single-image floor a higher degree (DetailFit floor_degree): a gradient that a
    degree-2 surface cannot follow (a glow in a corner, a bowl off the centre) is then taken out, where
    the blind choice, kept to degrees 0-2 because higher ones eat nebulae, leaves much of it."""
    from msgr_nodes.api import Image
    from msgr_nodes.testing import run_node

    h, w = 450, 600
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    gradient = (0.04 * np.exp(-((xx - 1.05) ** 2 + (yy + 0.05) ** 2) / 0.3)
                - 0.02 * np.exp(-((xx - 0.45) ** 2 + (yy - 0.55) ** 2) / 0.25))
    narrow = _galaxy_field(rng)
    narrow += gradient
    other_sky = _galaxy_field(np.random.default_rng(7))  # a "wide image" of other sky: refused
    inputs = {"narrow": Image(narrow[None].astype(np.float32)), "wide": Image(other_sky[None].astype(np.float32))}

    def model_error(params):
        out = run_node("DetailFit", inputs, params)
        model = out.outputs["difference"].data[0].astype(np.float64)
        return _residual(model, gradient, 0.1), out.metadata["channels"][0]["check"]

    blind, blind_check = model_error({})
    given, given_check = model_error({"floor_degree": 4})
    assert blind_check.startswith("single-image fallback") and "chosen by cross-validation" in blind_check
    assert given_check.startswith("single-image fallback") and "ABE degree 4, given" in given_check, given_check
    assert given < 0.5 * blind, (given, blind)
    assert given < 0.5, given  # % of sky


def _blobs(rng, h, w, count, smallest, largest, amplitude):
    """``count`` round Gaussian blobs of sigma ``smallest``-``largest`` px and peak up to ``amplitude``:
    galaxies when small, a nebula filling the frame when large; (h, w) float64."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros((h, w))
    for _ in range(count):
        cx, cy, s = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(smallest, largest)
        out += amplitude * rng.uniform(0.3, 1) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    return out


def _refused_scene(scene, wide_gradient=0.005):
    """A narrow image (450 x 600, sky 0.02) and its truth gradient, and a wide image of the same sky
    that a DetailFit would refuse or not (the floor is called directly): galaxies on empty sky under
    a gradient of high order, or a nebula filling the frame under a gentle one. The wide image keeps a
    little gradient of its own (``wide_gradient`` x the sky), as after its ABE in the stock graph."""
    h, w, sky = 450, 600, 0.02
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:h, 0:w]
    u, v = xx / w * 2 - 1, yy / h * 2 - 1
    if scene == "galaxies":
        structure = _blobs(rng, h, w, 30, 4, 25, 0.3 * sky)
        gradient = sky * (0.10 * u + 0.15 * (u ** 4 - v ** 3 * u) + 0.12 * np.cos(2.5 * u + 1) * v)
    else:
        structure = _blobs(rng, h, w, 12, 60, 160, 0.25 * sky)
        gradient = sky * (0.10 * u + 0.05 * v * v)
    narrow = (sky + structure + gradient + rng.normal(0, 0.01 * sky, (h, w))).astype(np.float32)
    wide = (0.9 * (sky + structure) + wide_gradient * sky * v + rng.normal(0, 0.01 * sky, (h, w))).astype(np.float32)
    return narrow, wide, gradient, sky


@pytest.mark.parametrize("scene", ["galaxies", "nebula"])
def test_the_floor_fits_the_gradient_jointly_with_the_wide_images_large_scales(scene):
    """A wide image refused for its detail still shows the sky's large-scale structure: the narrow
    image's background is fitted as a polynomial plus b x the wide image, the wide image's term takes
    the galaxies or the nebula, and the polynomial follows the gradient alone (measured: 3.54 and
    14.21 -> 0.32 % of sky; on the real pairs, n1365/Fornax 3.88 -> 1.31 and m4/rho Oph with a complex
    gradient 7.49 -> 4.82). A wide image of other sky is no witness: ABE's blind floor then."""
    from msgr_nodes.ops.gradient import single_image_floor

    narrow, wide, gradient, sky = _refused_scene(scene)
    blind = single_image_floor(narrow, {}, "refused")
    joint = single_image_floor(narrow, {}, "refused", wide=wide)
    assert blind.info["check"].startswith("single-image fallback")
    assert joint.info["check"].startswith("large-scale fallback"), joint.info["check"]
    assert "jointly with" in joint.info["check"] and joint.info["floor_joint"]["b"] > 0.5
    assert joint.info["floor_joint"]["tone"] == "linear"  # the two images are linearly related here
    assert _residual(joint.difference, gradient, sky) < min(_residual(blind.difference, gradient, sky) / 3, 0.5)
    other_sky, *_ = _refused_scene("nebula" if scene == "galaxies" else "galaxies")
    unrelated = single_image_floor(narrow, {}, "refused", wide=np.ascontiguousarray(other_sky[:, ::-1]))
    assert unrelated.info["check"].startswith("single-image fallback")
    assert unrelated.info["floor_sky_seen"] < 0.5


def test_a_wide_photograph_that_compresses_bright_galaxy_cores_is_fitted_with_a_tone_curve():
    """Two photographs stretched differently: the wide one compresses the galaxies' bright cores
    (asinh). A line in the wide image's block means leaves the cores' excess to the polynomial, which
    bends to it (measured 4.47 % of sky, worse than ABE's blind floor, 4.00); a cubic tone curve,
    taken because it cuts the cross-validated error by more than a quarter, follows them (1.12)."""
    from msgr_nodes.ops.gradient import single_image_floor

    h, w, sky = 450, 600, 0.02
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:h, 0:w]
    u, v = xx / w * 2 - 1, yy / h * 2 - 1
    structure = _blobs(rng, h, w, 30, 4, 25, 3 * sky)
    gradient = sky * (0.10 * u + 0.15 * (u ** 4 - v ** 3 * u) + 0.12 * np.cos(2.5 * u + 1) * v)
    narrow = (sky + structure + gradient + rng.normal(0, 0.01 * sky, (h, w))).astype(np.float32)
    stretched = 0.1 * sky * np.arcsinh(structure / (0.1 * sky))
    wide = (0.9 * (sky + stretched) + 0.005 * sky * v + rng.normal(0, 0.01 * sky, (h, w))).astype(np.float32)
    blind = single_image_floor(narrow, {}, "refused")
    joint = single_image_floor(narrow, {}, "refused", wide=wide)
    assert joint.info["floor_joint"]["tone"] == "cubic", joint.info["floor_joint"]
    assert "cubic tone curve" in joint.info["check"]
    assert _residual(joint.difference, gradient, sky) < min(_residual(blind.difference, gradient, sky) / 3, 1.5)


@pytest.mark.parametrize("scene", ["galaxies", "nebula"])
def test_a_saturated_patch_does_not_switch_the_large_scale_fallback_off(scene):
    """A saturated patch (blooming) in the narrow image, with the halo a star mask's fill leaves
    around it, where the wide image is refused as a detail reference: its block means, averaged in,
    broke the wide image's witness (correlation 0.85 -> 0.00 and 1.00 -> 0.17) and the floor fell to
    ABE alone (0.39 -> 3.69 and 0.32 -> 14.53 % of sky). Left out, the patch moves the result by at
    most 0.1 % of sky (a held-out soft pair of M20 with the patch: 3.26, without it 0.16; now 0.16)."""
    from scipy import ndimage

    from msgr_nodes.ops.gradient import large_scales, match_wide

    narrow, wide, gradient, sky = _refused_scene(scene)
    square = np.zeros(narrow.shape, np.float32)
    square[150:180, 300:330] = 1
    core = ndimage.binary_erosion(square > 0, iterations=5)
    patched = np.maximum(narrow + 0.6 * ndimage.gaussian_filter(square, 8), np.where(core, 1.0, 0.0)).astype(np.float32)
    results = []
    for image in (narrow, patched):
        # thresholds of 0 refuse the wide image as a detail reference, as for two processed photographs
        match = match_wide(image, wide, detail_threshold=0.0, fallback_threshold=0.0)
        assert match.info["check"].startswith("large-scale fallback"), match.info["check"]
        results.append(_residual(large_scales(match.difference), gradient, sky))
    assert results[0] < 0.5
    assert abs(results[1] - results[0]) <= 0.1, results


def test_the_joint_floors_polynomial_is_at_least_as_flexible_as_abes_blind_one():
    """Knots of nebula the wide image does not show alike (two photographs processed differently)
    scatter the block means, and cross-validation cannot tell a plane from the curved gradient: the
    simplest degree within 5 % of the best was the plane (1.46 % of sky). The wide image's term takes
    nebula off the polynomial, which never makes the gradient simpler, so the joint fit starts at
    ABE's blind degree for the narrow image alone (2 here: 0.90)."""
    from msgr_nodes.ops.gradient import single_image_floor

    h, w, sky = 450, 600, 0.02
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:h, 0:w]
    u, v = xx / w * 2 - 1, yy / h * 2 - 1
    structure = _blobs(rng, h, w, 12, 60, 160, 0.25 * sky)
    knots = _blobs(rng, h, w, 150, 5, 25, 0.1 * sky)
    gradient = sky * (0.10 * u + 0.04 * v * v)
    narrow = (sky + structure + knots + gradient + rng.normal(0, 0.01 * sky, (h, w))).astype(np.float32)
    wide = (0.9 * (sky + structure) + 0.005 * sky * v + rng.normal(0, 0.01 * sky, (h, w))).astype(np.float32)
    floor = single_image_floor(narrow, {}, "refused", wide=wide)
    assert floor.info["check"].startswith("large-scale fallback"), floor.info["check"]
    assert floor.info["floor_joint"]["degree"] >= 2
    assert _residual(floor.difference, gradient, sky) < 1.1


def test_the_joint_floor_is_refused_where_the_wide_image_holds_nebula_the_narrow_one_lacks():
    """A wide image that also shows large-scale nebula the narrow image lacks (another filter, a halo)
    pulls the joint fit: the polynomial then departs from ABE's own model of the narrow image by more
    than that model's amplitude, and ABE's floor is kept (unguarded: 11.0 % of sky; ABE's blind floor 3.7,
    at the degree the wide image witnesses 0.44)."""
    from msgr_nodes.ops.gradient import JOINT_MAX_DEPARTURE, single_image_floor

    narrow, wide, gradient, sky = _refused_scene("galaxies")
    wide_only = _blobs(np.random.default_rng(11), *narrow.shape, 12, 60, 160, 0.25 * sky)
    wide = (wide + 0.9 * wide_only).astype(np.float32)
    info = {}
    floor = single_image_floor(narrow, info, "refused", wide=wide)
    assert info["floor_sky_seen"] >= 0.5  # it does see the narrow image's sky, in part
    assert info["floor_joint"]["departure"] > JOINT_MAX_DEPARTURE and not info["floor_joint"]["used"]
    assert floor.info["check"].startswith("single-image fallback")
    blind = single_image_floor(narrow, {}, "refused")
    # ABE's floor, here at the degree the wide image witnesses (measured 0.44; blind 3.69)
    assert _residual(floor.difference, gradient, sky) <= _residual(blind.difference, gradient, sky)


@pytest.mark.parametrize("scene", ["galaxies", "nebula"])
def test_the_floor_takes_a_higher_degree_where_the_wide_image_shows_it_is_gradient(scene):
    """Where the wide image covers too little of the frame for the joint fit (80 % here), it is
    still the witness of the degree: in a galaxy field it sees the galaxies but not the higher-order
    gradient that degree 3-6 follows, and the floor takes that degree (a real galaxy field, NGC 1365:
    3.88 -> 2.00 % of sky); in a frame full of nebula it sees what degree 3-6 adds, and the floor
    stays at the blind degree 0-2."""
    from msgr_nodes.ops.gradient import single_image_floor

    narrow, wide, gradient, sky = _refused_scene(scene)
    outside = np.zeros(narrow.shape, bool)
    outside[:, int(0.8 * narrow.shape[1]):] = True
    wide = np.where(outside, 0, wide).astype(np.float32)
    blind = single_image_floor(narrow, {}, "refused")
    witnessed = single_image_floor(narrow, {}, "refused", wide=wide, exclude=outside)
    assert blind.info["floor_degree"] <= 2
    assert "floor_joint" not in witnessed.info  # too little of the frame for the joint fit
    if scene == "galaxies":
        assert witnessed.info["floor_degree"] >= 3 and witnessed.info["floor_witness"]["used"]
        assert "the wide image sees the same large-scale sky" in witnessed.info["check"]
        # measured: 3.54 -> 0.44 % of sky
        assert _residual(witnessed.difference, gradient, sky) < _residual(blind.difference, gradient, sky) / 3
    else:
        assert witnessed.info["floor_witness"]["degree"] >= 3  # cross-validation alone would follow the nebula
        assert not witnessed.info["floor_witness"]["used"]
        # the blind degree, here not subtracted either: its surface follows the wide image's sky (next test)
        assert witnessed.info["floor_degree"] <= 2


def test_a_blind_floor_that_follows_the_wide_images_sky_is_not_subtracted():
    """Large nebulae fill the frame under a gentle gradient, and the wide image, refused for its
    detail, covers 80 % of it (too little for the joint fit). ABE's blind surface (degree 2) takes
    the nebulae: subtracted, it left 14.27 % of sky wrong against 5.96 uncorrected. The wide image
    shows that surface to be sky (its block means follow it, r = 0.85), so nothing is subtracted and
    the verdict says why. In a galaxy field the surface does not follow the wide image and is used."""
    from msgr_nodes.ops.gradient import FLOOR_FOLLOWS_MAX, single_image_floor

    for scene in ("nebula", "galaxies"):
        narrow, wide, gradient, sky = _refused_scene(scene)
        outside = np.zeros(narrow.shape, bool)
        outside[:, int(0.8 * narrow.shape[1]):] = True
        wide = np.where(outside, 0, wide).astype(np.float32)
        floor = single_image_floor(narrow, {}, "refused", wide=wide, exclude=outside)
        uncorrected = _residual(np.zeros_like(gradient), gradient, sky)
        if scene == "nebula":
            assert floor.info["floor_follows_wide"] >= FLOOR_FOLLOWS_MAX
            assert floor.info["check"].startswith("no correction: refused; a background model of the narrow image")
            assert "follows the large-scale sky the wide image shows" in floor.info["check"]
            assert not floor.difference.any()
            assert _residual(floor.difference, gradient, sky) <= uncorrected
            # a degree given by hand is the user's: subtracted as asked
            given = single_image_floor(narrow, {}, "refused", degree=2, wide=wide, exclude=outside)
            assert given.info["check"].startswith("single-image fallback") and given.difference.any()
        else:
            assert floor.info["check"].startswith("single-image fallback"), floor.info["check"]
            assert _residual(floor.difference, gradient, sky) < uncorrected / 3


def _asinh(d):
    """An asinh stretch of 50x the data, back to [0, 1] (as an already processed frame)."""
    return np.arcsinh(50 * d) / np.arcsinh(50)


def _screen_transfer(d):
    """PixInsight's screen auto-stretch made permanent: the midtones transfer function that takes the
    median to 0.25 (AutoSTF's midtones balance, without its shadows clip)."""
    return mtf(float(mtf(TARGET_BACKGROUND, float(np.median(d)))), d)


def _camera_gamma(d):
    """A camera JPEG's display gamma (1/2.2)."""
    return np.clip(d, 0, 1) ** (1 / 2.2)


def _camera_jpeg(d):
    """A camera JPEG: the display gamma, then 8 bits."""
    return np.round(255 * _camera_gamma(d)) / 255


def _strong_asinh(d):
    """An asinh stretch of 500x the data (a finished image's, or a survey's)."""
    return np.arcsinh(500 * d) / np.arcsinh(500)


def _stretched_pair(folder, stretch, gradient_strength, narrow_size=(800, 600), seed=7):
    """The tests' pair (800x600, seed 7 unless given) with gradients ``gradient_strength`` x as strong
    and its wide image given through ``stretch``."""
    pair = make_pair(folder, narrow_size=narrow_size, seed=seed, gradient_strength=gradient_strength)
    data, header = fits.getdata(pair / "wide.fits", header=True)
    fits.writeto(pair / "wide.fits", stretch(data.astype(np.float64)).astype(np.float32), header, overwrite=True)
    return pair


def test_a_stretched_wide_image_under_strong_gradients_is_linearized(tmp_path):
    """A camera JPEG's gamma on a wide image whose gradients are twice as strong (a light-polluted
    sky): the noise of the brighter sky sets a floor under the detail both a straight line and the
    curve leave (the linear image leaves 0.16 of the narrow image's detail, the stretched one 0.19
    to a line and 0.15 to the curve), so that the curve's relative gain looks small. It is
    linearized all the same (before: taken as linear, 2.28 % of sky; now 0.56, 0.49 with the sky
    taken out through the curve rather than fitted again; its linear wide image 0.21)."""
    pair = _stretched_pair(tmp_path / "pair", _camera_gamma, gradient_strength=2.0)
    out, _, header = run_recommended(pair, tmp_path / "run")
    assert _score(pair, out) < 0.7
    assert header["MSGRCHK"] == "passed"
    assert "the wide image is not linear" in check_history(header)


def test_a_stretched_wide_image_judged_on_coarse_bands_gets_its_curve_from_finer_ones(tmp_path):
    """A 2000x1500 pair whose asinh-stretched wide image (2000 x the data) shares a stable slope with
    the narrow one only from the 32 px band up: the tone curve fitted on the bands judged (32 and
    64 px) takes the narrow image's gradient, which leaks into them, for the stretch; it is fitted on
    bands of 16 and 32 px (before: 1.33 % of sky; now 0.39, the linear wide image 0.38)."""
    pair = _stretched_pair(tmp_path / "pair", lambda d: np.arcsinh(2000 * d) / np.arcsinh(2000), 1.0,
                           narrow_size=(2000, 1500), seed=2)
    out, _, header = run_recommended(pair, tmp_path / "run")
    assert "the wide image is not linear" in check_history(header)
    assert _score(pair, out) < 0.6


@pytest.mark.parametrize("stretch, gradient_strength", [(_camera_jpeg, 2.0), (_camera_gamma, 3.0)])
def test_a_camera_jpeg_under_a_bright_graded_sky_is_linearized(tmp_path, stretch, gradient_strength):
    """A camera JPEG (gradients x2) or a camera's gamma (gradients x3): the curve explains clearly more
    of the detail than a line, but at the finest stable band, where the images are judged again, the
    brighter sky's noise is most of what either leaves (0.23 -> 0.22 and 0.30 -> 0.30). The
    linearized image is kept as it is not judged worse (before: refused for not being judged
    clearly better, 2.17 and 2.53 % of sky; now 0.88 and 0.78)."""
    pair = _stretched_pair(tmp_path / "pair", stretch, gradient_strength=gradient_strength)
    out, _, header = run_recommended(pair, tmp_path / "run")
    assert _score(pair, out) < 1.2
    assert "the wide image is not linear" in check_history(header)


def test_a_strongly_stretched_wide_image_under_strong_gradients_has_its_sky_fitted_again(tmp_path, monkeypatch):
    """A 500x asinh stretch of a wide image under gradients three times as strong: ABE's degree-2 sky
    fitted in stretched values, put through the tone curve, is not the linear sky's surface. DetailFit
    fits ABE's boxes again once they are made linear (when it came: the sky through the curve, 1.11 %
    of sky; fitted again 0.86; the linear wide image 0.25). Since the stock graphs' wide ABE keeps
    its dark boxes down to 6.4 sigma (3.2 before), 1.04 against 1.33 through the curve (0.87 and 1.22
    with 3.2): on this small wide frame (480x360) the curve's error at the sky's values weighs on the
    dark boxes it now keeps, where the benchmark's stretched scenes at 2000x1500 went 0.72 -> 0.35
    (asinh) and 0.52 (screen)."""
    import msgr_nodes.nodes.detail_fit as detail_fit

    pair = _stretched_pair(tmp_path / "pair", _strong_asinh, gradient_strength=3.0)
    out, _, header = run_recommended(pair, tmp_path / "run")
    fitted_again = _score(pair, out)
    assert "the wide image is not linear" in check_history(header)
    monkeypatch.setattr(detail_fit, "fit_mapped", lambda *args, **kwargs: None)  # the sky through the curve
    through_the_curve = _score(pair, run_recommended(pair, tmp_path / "curve")[0])
    assert fitted_again < 1.1 and fitted_again < 0.85 * through_the_curve, (fitted_again, through_the_curve)


@pytest.mark.parametrize("stretch", [_asinh, _strong_asinh, _screen_transfer, _camera_gamma, _camera_jpeg])
def test_a_stretched_wide_image_is_linearized(medium_pair, clean_run, tmp_path, stretch):
    """A wide image that was stretched before it was given (a common mistake: an image from a finished
    processing, a JPEG) shares the narrow one's detail at every scale and passes the detail checks,
    but its detail is compressed where it is bright: subtracted as it is, it leaves the nebula's shape
    in the model (2.1-2.5 % of sky here, against 0.17 with the linear image). DetailFit finds the
    stretch from the detail's slope changing with brightness, linearizes the wide image with a
    fitted tone curve and says so. The wide image's ABE ran in stretched values: the sky it took out
    (its model, through Register's transform) is put back before the curve and taken out again,
    fitted anew on ABE's boxes made linear; without the sky put back, the strong asinh stretch left
    1.08 % of sky."""
    pair = tmp_path / "pair"
    shutil.copytree(medium_pair, pair)
    data, header = fits.getdata(pair / "wide.fits", header=True)
    fits.writeto(pair / "wide.fits", stretch(data.astype(np.float64)).astype(np.float32), header, overwrite=True)
    out, _, header = run_recommended(pair, tmp_path / "run")
    linear = _score(medium_pair, clean_run[0])
    # measured: 0.51 (asinh), 0.53 (strong asinh), 0.66 (screen transfer), 0.51 (gamma), 0.71 (JPEG:
    # its 8 bits are noise the curve amplifies where it is steep); linear 0.17; taken as linear: 2.13,
    # -, 2.50, 2.16, 2.39. The sky taken out through the curve instead of fitted again: 0.45, 0.45,
    # 0.66, 0.45, 0.67 (on this small wide frame the curve's error at the sky's values weighs more
    # than the stretched fit's shape; on the benchmark's frames the refit is the better by far)
    assert _score(pair, out) < min(0.9, 5 * linear), (_score(pair, out), linear)
    assert header["MSGRCHK"] == "passed"
    assert "the wide image is not linear" in check_history(header)


def test_a_dense_star_field_is_corrected_from_the_gaps_between_its_stars(tmp_path):
    """The tests' pair with ten times as many stars (a Milky Way field): the two images' star masks
    cover much of the frame, and the difference is filled across them from the sky between the
    stars (before, every 4 px block a mask touched was filled from farther off: 1.24 % of sky, now
    0.40; the pair with the usual star density 0.15 -> 0.16)."""
    pair = make_pair(tmp_path / "pair", narrow_size=(800, 600), seed=1, star_density=2e-2)
    out, _, header = run_recommended(pair, tmp_path / "run")
    assert _score(pair, out) < 0.7


def _faint_field_with_a_wide_trail(rng, trail_px):
    """Starless 1200x900 planes of a faint field (one compact nebula, at most 0.22 of the wide sky
    above it, as LBN 438), the narrow one with a curved gradient; a trail ``trail_px`` px wide
    (0.05, 3300 e-) across the wide one (0 = none). (narrow, wide, the nebula), (H, W)."""
    h, w = 900, 1200
    yy, xx = np.mgrid[0:h, 0:w]
    texture = (ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 4) * 8 +
               ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 16) * 30)
    nebula = 0.001 * np.exp(-0.5 * (np.hypot(xx - 0.55 * w, yy - 0.45 * h) / 90) ** 2) * np.clip(1 + texture, 0.2, None)
    gradient = 0.006 * xx / w + 0.004 * (yy / h) ** 2
    narrow = 0.02 + 1.25 * nebula + gradient + rng.normal(0, 2e-4, (h, w))
    wide = 0.0136 + nebula + rng.normal(0, 2e-4, (h, w))
    wide += (np.abs(yy - 0.3 * h - 0.5 * xx * h / w) < trail_px / 2) * 0.05
    return narrow.astype(np.float32), wide.astype(np.float32), nebula


def test_a_trail_across_a_faint_wide_field_does_not_switch_the_correction_off():
    """An 18 px trail (a 6 px one upsampled 3x) across a faint wide field: its blocks carried the
    large-scale slope's line (0.89 -> 0.00), the defects found with that slope took the nebula, the only
    detail the images share, and the wide image was refused (a held-out scene, LBN 438 with two
    frames: 0.26 -> 4.22 % of sky). The trail is found without a slope, as detail of the wide image
    alone, and left out of the slope's blocks; the nebula is not."""
    narrow, wide, nebula = _faint_field_with_a_wide_trail(np.random.default_rng(3), 0)
    _, trailed, _ = _faint_field_with_a_wide_trail(np.random.default_rng(3), 18)
    clean, hit = large_scale_slope(narrow, wide), large_scale_slope(narrow, trailed)
    assert abs(hit - clean) < 0.02 * clean
    result = match_wide(narrow, trailed)
    assert result.info["check"].startswith("passed"), result.info["check"]
    assert abs(result.info["b"] - match_wide(narrow, wide).info["b"]) < 0.02
    found = wide_only_detail(narrow, trailed)
    on_trail = np.abs(trailed - wide) > 0.04
    near_trail = ndimage.binary_dilation(on_trail, iterations=10)
    assert found[on_trail].mean() > 0.95
    # noise peaks of the nebula's fine detail in one image only, widened: measured 0.035
    assert found[(nebula > 0.0005) & ~near_trail].mean() < 0.05
