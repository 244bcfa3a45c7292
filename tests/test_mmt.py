import warnings

import numpy as np
import pytest
from scipy import ndimage

from msgr_nodes.graph import Graph
from msgr_nodes.image import Image
from msgr_nodes.ops import mmt
from msgr_nodes.ops.median_kernels import footprint, huang_median, ph_median
from msgr_nodes.context import RunContext


def _sky(rng, h=97, w=131):
    """Small real-looking sky: gradient, nebula blob, stars (two saturated), noise, a flat plateau."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = 0.1 + 0.02 * xx / w + 0.05 * np.exp(-((xx - 70) ** 2 + (yy - 40) ** 2) / 400.0)
    for y, x, f in [(20, 30, 2.0), (60, 100, 0.3), (80, 15, 0.1), (50, 60, 5.0)]:
        img += f * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 3.0)
    img += rng.normal(0, 0.004, (h, w))
    img[70:90, 40:70] = 0.12  # constant region
    return np.clip(img, 0, 1).astype(np.float32)


def _scipy_chain(x, K, shape="square"):
    for j in range(K):
        r = 2 ** j
        x = ndimage.median_filter(x, footprint=footprint(r, shape), mode="reflect")
    return x


@pytest.mark.parametrize("shape", ["square", "circle"])
def test_exact_equals_scipy_chain_bit_for_bit(rng, shape):
    img = _sky(rng)
    for K in (1, 3, 5):
        assert np.array_equal(mmt.smooth(img, K, "exact", shape=shape), _scipy_chain(img, K, shape))


def test_exact_on_odd_sizes_and_rgb_node(rng):
    rgb = np.stack([_sky(rng, 53, 71), _sky(rng, 53, 71) * 0.8, _sky(rng, 53, 71) * 0.6])
    g = Graph()
    g.add_node("MMT", "m", {"remove_layers": 4, "layers": 4, "method": "exact"})
    spec = g.spec("m")
    out = spec.run(RunContext("m"), {"image": Image(rgb)}, spec.effective_params(g.nodes["m"].params))["image"]
    for c in range(3):
        assert np.array_equal(out.data[c], _scipy_chain(rgb[c], 4))


@pytest.mark.parametrize("K", [2, 5, 6])
def test_accurate_is_within_its_documented_bound(rng, K):
    img = _sky(rng, 150, 170)
    info = mmt.MMTInfo()
    acc = mmt.smooth(img, K, "accurate", info=info)
    exact = mmt.smooth(img, K, "exact")
    bg = float(np.median(img))
    err = float(np.max(np.abs(acc - exact)))
    assert err <= info.error_bound + 1e-9
    assert err <= mmt.TOLERANCE * bg


def test_kernels_match_scipy_on_integer_codes(rng):
    codes = rng.integers(0, 4096, (40, 57)).astype(np.uint32)
    for r in (1, 3, 7):
        ref = ndimage.median_filter(codes, size=2 * r + 1, mode="reflect")
        assert np.array_equal(huang_median(codes, r, 4096), ref)
        assert np.array_equal(ph_median(codes, r, 12), ref)


def test_the_3x3_kernel_matches_scipy_with_ties_and_on_thin_frames(rng):
    """The 3x3 median takes its own path (sorted columns): exact with many equal codes, and on frames
    one or two pixels thin, where the reflected border is most of the window."""
    for shape in ((1, 9), (9, 1), (2, 2), (3, 7), (64, 33)):
        for top in (2, 5, 4096):
            codes = rng.integers(0, top, shape).astype(np.uint32)
            ref = ndimage.median_filter(codes, size=3, mode="reflect")
            assert np.array_equal(huang_median(codes, 1, top), ref), (shape, top)


def test_layers_telescope_and_high_pass(rng):
    img = _sky(rng, 64, 80)
    n = 4
    c = [img] + [mmt.smooth(img, K, "exact") for K in range(1, n + 1)]
    full = mmt.layers(img, n, "exact")
    assert np.allclose(full, img, atol=1e-6)  # all layers + residual reconstruct the image
    hp = mmt.layers(img, n, "exact", enabled={1, 2})
    assert np.allclose(hp, img - c[2], atol=1e-6)
    mid = mmt.layers(img, n, "exact", enabled={3, "R"})
    assert np.allclose(mid, c[2] - c[3] + c[4], atol=1e-6)


def test_small_image_falls_back_to_the_global_median_with_a_warning(rng):
    img = _sky(rng, 40, 50)
    with pytest.warns(mmt.MMTWarning, match="smaller than the 65 px window of layer 6"):
        out = mmt.smooth(img, 8, "accurate")
    assert np.all(out == out.flat[0]) and out.flat[0] != 0  # never PixInsight's zeroed image


def test_pixinsight_and_preview_stay_close_to_exact_on_a_smooth_sky(rng):
    img = _sky(rng, 200, 260)
    exact = mmt.smooth(img, 5, "exact")
    bg = float(np.median(img))
    for method, limit in (("pixinsight", 0.05), ("preview", 0.05)):
        out = mmt.smooth(img, 5, method)
        assert out.shape == img.shape
        assert np.max(np.abs(out - exact)) / bg < limit, method


def test_node_checks_layer_flags():
    g = Graph()
    g.add_node("MMT", "m", {"remove_layers": 0, "enabled": "1-9", "layers": 8})
    g.add_node("Load", "l", {"path": "x.fits"})
    g.link("l", "image", "m", "image")
    assert any("layer(s) [9] do not exist" in str(p) for p in g.validate())
    g.set("m.enabled", "2-4,R")
    assert not [p for p in g.validate() if p.node == "m"]


def test_node_reports_progress_per_layer(rng):
    events = []
    g = Graph()
    g.add_node("MMT", "m", {"remove_layers": 3, "layers": 3})
    spec = g.spec("m")
    ctx = RunContext("m", emit=lambda kind, **kw: events.append((kind, kw)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec.run(ctx, {"image": Image(_sky(rng, 60, 60))}, spec.effective_params(g.nodes["m"].params))
    fractions = [kw["fraction"] for kind, kw in events if kind == "progress"]
    assert fractions == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert "max_error_bound" in ctx.metadata


def test_without_numba_the_same_results_come_from_scipy(rng, monkeypatch):
    import msgr_nodes.ops.median_kernels as mk

    img = _sky(rng, 60, 70)
    want = {m: mmt.smooth(img, 4, m) for m in ("exact", "accurate")}
    monkeypatch.setattr(mk, "HAVE_NUMBA", False)
    for m, w in want.items():
        assert np.array_equal(mmt.smooth(img, 4, m), w)
