import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from synthpair import make_pair
from msgr_nodes.graph import Graph
from msgr_nodes.image import Image
from msgr_nodes.io.formats import read_image
from msgr_nodes.ops import register as R
from msgr_nodes.context import RunContext


def _load(pair):
    n = fits.getdata(pair / "narrow.fits").astype(np.float32)
    w = fits.getdata(pair / "wide.fits").astype(np.float32)
    return n, fits.getheader(pair / "narrow.fits"), w, fits.getheader(pair / "wide.fits")


def _truth_error(pair, reg, transform=None):
    """RMS and max error (wide px) of the registration against the true mapping from the truth WCS."""
    n, nh, w, wh = _load(pair)
    h, wd = n.shape
    gy, gx = np.mgrid[0:h:h // 30, 0:wd:wd // 40]
    ra, dec = WCS(nh).all_pix2world(gx.ravel(), gy.ravel(), 0)
    u, v = WCS(wh).all_world2pix(ra, dec, 0)
    if transform is not None:
        u, v = transform(u, v)
    uu, vv = reg(gx.ravel().astype(float), gy.ravel().astype(float))
    e = np.hypot(uu - u, vv - v)
    return float(np.sqrt(np.mean(e ** 2))), float(e.max())


def test_registers_a_plate_solved_pair_with_distortion(medium_pair):
    n, nh, w, wh = _load(medium_pair)
    reg = R.register(n, w, nh, wh)
    rms, peak = _truth_error(medium_pair, reg)
    assert rms <= 0.1 and peak <= 0.3
    assert reg.stats["initial"] == "wcs" and reg.stats["distortion"]
    assert reg.stats["scale_ratio"] == pytest.approx(3.0, rel=0.01)
    assert reg.stats["rotation_deg"] == pytest.approx(-2.5, abs=0.1)


@pytest.mark.parametrize("case", ["plain", "rot90", "mirror"])
def test_finds_the_field_without_wcs(medium_pair, case):
    n, _, w, _ = _load(medium_pair)
    h, wd = w.shape
    if case == "rot90":  # array rotated by 90 degrees: target (u, v) -> (v, wd - 1 - u)
        w2, tf = np.ascontiguousarray(np.rot90(w)), lambda u, v: (v, wd - 1 - u)
    elif case == "mirror":
        w2, tf = np.ascontiguousarray(w[:, ::-1]), lambda u, v: (wd - 1 - u, v)
    else:
        w2, tf = w, None
    reg = R.register(n, w2, None, None)
    rms, peak = _truth_error(medium_pair, reg, tf)
    assert rms <= 0.1 and peak <= 0.3, (rms, peak)
    assert reg.stats["initial"] == "star search"
    assert reg.stats["mirrored"] == (case == "mirror")


@pytest.mark.parametrize("ratio, size", [(1.5, (600, 450)), (6.0, (1200, 900))])
def test_scale_ratios_1_5_and_6(tmp_path, ratio, size):
    # at ratio 6 the narrow field covers few wide pixels: a larger narrow frame keeps enough stars in it
    pair = make_pair(tmp_path / "p", narrow_size=size, ratio=ratio, wide_fov=1.6, seed=3)
    n, nh, w, wh = _load(pair)
    reg = R.register(n, w, nh, wh, detection_sigma=4)
    rms, peak = _truth_error(pair, reg)
    assert rms <= 0.1 and peak <= 0.3
    assert reg.stats["scale_ratio"] == pytest.approx(ratio, rel=0.02)


def test_too_few_stars_falls_back_to_the_wcs_with_a_warning(small_pair):
    narrow = read_image(small_pair / "narrow.fits")
    wide = read_image(small_pair / "wide.fits")
    g = Graph()
    g.add_node("Register", "star_align", {"detection_sigma": 20})
    spec = g.spec("star_align")
    ctx = RunContext("star_align")
    out = spec.run(ctx, {"reference": narrow, "target": wide}, spec.effective_params(g.nodes["star_align"].params))
    assert out["transform"]["kind"] == "wcs"
    assert any("aligned from the WCS headers only" in w for w in ctx.warnings)
    rms, peak = _truth_error(small_pair, R.register(narrow.data[0], wide.data[0], narrow.header, wide.header,
                                                    detection_sigma=20))
    assert rms < 0.01


def test_failed_match_is_a_clear_error(medium_pair, rng):
    n, _, w, _ = _load(medium_pair)
    other = rng.permutation(w.ravel()).reshape(w.shape)  # same pixels, no sky in common
    with pytest.raises(R.RegistrationError, match="found 0 stars|could not find the reference field"):
        R.register(n, other, None, None)


def test_node_resamples_an_rgb_target_onto_the_narrow_grid(medium_pair):
    narrow = read_image(medium_pair / "narrow.fits")
    wide = read_image(medium_pair / "wide.fits")
    rgb = Image(np.stack([wide.data[0], wide.data[0] * 0.8, wide.data[0] * 0.6]), wide.header, "wide")
    g = Graph()
    g.add_node("Register", "star_align")
    spec = g.spec("star_align")
    ctx = RunContext("star_align")
    out = spec.run(ctx, {"reference": narrow, "target": rgb}, spec.effective_params({}))
    img = out["image"].data
    assert img.shape == (3,) + narrow.data.shape[1:]
    assert np.allclose(img[1], img[0] * 0.8, atol=1e-5)
    # the registered wide matches the truth: compare with the wide truth reprojected through the WCS
    clean = fits.getdata(medium_pair / "wide_clean.fits").astype(np.float32)
    reg = R.register(narrow.data[0], wide.data[0], narrow.header, wide.header)
    mx, my = R.coordinate_maps(reg)
    truth = R.resample(clean, mx, my, float(np.median(clean)))
    assert np.corrcoef(img[0][50:-50, 50:-50].ravel(), truth[50:-50, 50:-50].ravel())[0, 1] > 0.98
    assert out["footprint"].data.mean() == 1.0
    assert out["transform"]["stats"]["inliers"] >= 20
    assert ctx.metadata["rms_target_px"] < 0.1


def _shifted(header, dra_deg):
    """A copy of a WCS header that points ``dra_deg`` further east: a wrong plate solve."""
    h = header.copy()
    h["CRVAL1"] = h["CRVAL1"] + dra_deg
    return h


def test_a_wrong_wcs_start_is_checked_against_the_stars(medium_pair):
    """A wide header 0.5 deg off (another field's solve): the stars refuse it and a star search aligns."""
    n, nh, w, wh = _load(medium_pair)
    reg = R.register(n, w, nh, _shifted(wh, 0.5))
    rms, peak = _truth_error(medium_pair, reg)
    assert rms <= 0.1 and peak <= 0.3, (rms, peak, reg.stats)
    assert reg.stats["initial"] == "star search"
    assert "do not confirm the WCS start" in reg.stats["warning"]


def test_fields_that_do_not_overlap_are_one_clear_error(medium_pair, rng):
    """Plate-solved, but 5 deg apart, and the stars do not match either: one line, no NoConvergence."""
    n, nh, w, wh = _load(medium_pair)
    other = rng.permutation(w.ravel()).reshape(w.shape)  # no sky in common with the narrow image
    with pytest.raises(R.RegistrationError, match="fields do not overlap") as e:
        R.register(n, other, nh, _shifted(wh, 5.0))
    assert "\n" not in str(e.value) and "deg from the target" in str(e.value)


def test_fields_that_do_not_overlap_fail_in_the_cli_with_one_summary_line(medium_pair, tmp_path, capsys):
    from astropy.io import fits as f

    from msgr_nodes.cli import main

    hdr = _shifted(f.getheader(medium_pair / "wide.fits"), 5.0)
    data = np.random.default_rng(1).permutation(f.getdata(medium_pair / "wide.fits").ravel()).reshape(hdr["NAXIS2"], -1)
    f.writeto(tmp_path / "elsewhere.fits", data, hdr)
    rc = main(["run", "msgr_additive", "-s", f"narrow.path={medium_pair / 'narrow.fits'}",
               "-s", f"wide.path={tmp_path / 'elsewhere.fits'}", "-s", f"save.path={tmp_path / 'o.fits'}",
               "-s", f"save_model.path={tmp_path / 'm.fits'}", "--no-cache"])
    err = [l for l in capsys.readouterr().err.splitlines() if l.startswith("error:")]
    assert rc == 1
    assert err[0].startswith("error: star_align (Register): ") and "fields do not overlap" in err[0]
    assert len(err) == 2 and err[1].startswith("error: ") and "not run because of the error above" in err[1]
    assert not list(tmp_path.glob("*.fits*part"))


def test_the_homography_fit_recovers_a_projective_mapping(rng):
    """The direct linear transform on 2000 stars with 0.3 px centroid noise: the mapping that made
    them, to a few hundredths of a pixel over the frame; coincident stars are a clear error."""
    truth = np.array([[0.5, 0.02, 100.0], [-0.01, 0.49, 50.0], [1e-6, -2e-6, 1.0]])
    src = rng.uniform(0, 6000, (2000, 2))

    def apply(h, p):
        q = np.c_[p, np.ones(len(p))] @ h.T
        return q[:, :2] / q[:, 2:]

    dst = apply(truth, src) + rng.normal(0, 0.3, src.shape)
    fitted = R._fit_homography(src, dst)
    grid = np.stack(np.meshgrid(np.linspace(0, 6000, 7), np.linspace(0, 6000, 7)), -1).reshape(-1, 2)
    assert np.abs(apply(fitted, grid) - apply(truth, grid)).max() < 0.05
    with pytest.raises(R.RegistrationError, match="coincide"):
        R._fit_homography(np.ones((40, 2)), dst[:40])


def _tps_registration(shape, displacement):
    """A registration of ``shape`` (H, W) onto itself plus a thin-plate displacement, a function of the
    normalised reference position (x, y) -> (dx, dy) in target px, fitted on a 9 x 9 grid of nodes."""
    from scipy.interpolate import RBFInterpolator

    h, w = shape
    cx, cy, s = (w - 1) / 2, (h - 1) / 2, max(h, w) / 2
    gy, gx = np.mgrid[-1:1:9j, -1:1:9j]
    nodes = np.stack([gx.ravel() * (w - 1) / 2 / s, gy.ravel() * (h - 1) / 2 / s], 1)
    fit = RBFInterpolator(nodes, np.stack(displacement(nodes[:, 0], nodes[:, 1]), 1), kernel="thin_plate_spline")
    return R.Registration(np.eye(3), shape, shape, tps_nodes=nodes, tps_fit=fit, norm=(cx, cy, s))


def test_a_distortion_that_folds_the_image_is_refused_and_a_mild_one_kept():
    """A map whose Jacobian changes sign (a part of the target seen twice, mirrored) is no registration."""
    shape = (400, 600)
    R._check_fold(_tps_registration(shape, lambda x, y: (3.0 * x * y, 2.0 * y * y)))  # a few px: kept
    # a fold near the centre line: there dx/dx = 1 - 400 / 300 < 0
    with pytest.raises(R.RegistrationError, match="would fold the image"):
        R._check_fold(_tps_registration(shape, lambda x, y: (-400.0 * x * np.exp(-(x / 0.4) ** 2), 0 * y)))
    # a homography whose horizon crosses the frame folds it too
    folding = R.Registration(np.array([[1.0, 0, 0], [0, 1, 0], [-0.0041, 0, 1]]), shape, shape)
    with pytest.raises(R.RegistrationError, match="would fold the image"):
        R._check_fold(folding)


def test_a_smooth_model_is_brought_onto_the_reference_grid_through_the_transform():
    """A background model on the wide grid, carried onto the narrow one through Register's transform:
    at every narrow pixel it equals the model where the mapping lands (a smooth surface needs no warp
    of every pixel), and a transform of another image is named."""
    th = np.radians(12.0)
    H = np.array([[np.cos(th) / 3, -np.sin(th) / 3, 150.0], [np.sin(th) / 3, np.cos(th) / 3, 90.0], [1e-6, 0, 1]])
    tgt_shape, ref_shape = (400, 560), (600, 800)

    def surface(x, y):  # a degree-2 gradient over the wide frame, as ABE's model
        u, v = x / tgt_shape[1] - 0.5, y / tgt_shape[0] - 0.5
        return 0.4 + 0.02 * u - 0.015 * v + 0.03 * u * u + 0.01 * u * v

    yy, xx = np.mgrid[0:tgt_shape[0], 0:tgt_shape[1]]
    model = surface(xx, yy).astype(np.float32)
    transform = {"kind": "projective", "H": H.tolist(), "reference_shape": list(ref_shape),
                 "target_shape": list(tgt_shape)}
    onto = R.smooth_onto_reference(model, transform)
    ry, rx = np.mgrid[0:ref_shape[0], 0:ref_shape[1]]
    u, v = R.Registration(H, ref_shape, tgt_shape).projective(rx.astype(float), ry.astype(float))
    expected = surface(u, v)
    assert onto.shape == ref_shape
    # bilinear between nodes 32 px apart: within a thousandth of the model's range over the frame
    assert np.abs(onto.evaluate() - expected).max() < 1e-3 * np.ptp(expected)
    # at the centres of 4 x 4 blocks, as a 4x downsampled plane
    small = onto.evaluate(4)
    assert small.shape == (150, 200)
    assert np.abs(small - expected.reshape(150, 4, 200, 4).mean(axis=(1, 3))).max() < 1e-3 * np.ptp(expected)
    with pytest.raises(R.MsgrError, match="maps onto a 560x400 image, not this 280x200 one"):
        R.smooth_onto_reference(model[::2, ::2], transform)
    with pytest.raises(R.MsgrError, match="no projective mapping"):
        R.smooth_onto_reference(model, {"kind": "wcs"})
