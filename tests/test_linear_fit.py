import numpy as np
import pytest

from msgr_nodes.errors import MsgrError
from msgr_nodes.graph import Graph
from msgr_nodes.image import Image
from msgr_nodes.ops.linear_fit import apply_fit, l1_line, linear_fit


def _pair(rng, shape=(1, 300, 400), outliers=0.05):
    target = (rng.random(shape) * 0.6 + 0.02).astype(np.float32)
    reference = 1.25 * target + 0.002 + rng.normal(0, 0.004, shape)
    bad = rng.random(shape) < outliers
    reference[bad] = rng.random(int(bad.sum())) * 0.9  # 5 % wild outliers (stars, hot pixels)
    return reference.astype(np.float32), target


def test_recovers_a_known_relation_despite_outliers(rng):
    ref, tgt = _pair(rng)
    (fit,) = linear_fit(ref, tgt)
    assert fit.b == pytest.approx(1.25, rel=1e-3)
    assert fit.a == pytest.approx(0.002, abs=5e-4)
    # least squares is pulled away by the same outliers
    ok = (ref > 0) & (ref < 0.92)
    b_ls = np.polyfit(tgt[ok], ref[ok], 1)[0]
    assert abs(b_ls - 1.25) > 10 * abs(fit.b - 1.25)


def test_l1_line_minimises_absolute_deviation(rng):
    x = rng.random(2000)
    y = 0.3 + 2.0 * x + rng.laplace(0, 0.05, 2000)
    a, b, adev = l1_line(x, y)
    cost = np.sum(np.abs(y - a - b * x))
    for da, db in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]:
        assert np.sum(np.abs(y - (a + da) - (b + db) * x)) >= cost - 1e-9
    assert adev == pytest.approx(cost / x.size)


def test_rejection_excludes_saturated_and_zero_samples(rng):
    ref, tgt = _pair(rng, outliers=0.0)
    ref[:, :50] = 1.0    # saturated band in the reference
    tgt[:, 50:80] = 0.0  # black band in the target
    (fit,) = linear_fit(ref, tgt)
    assert fit.b == pytest.approx(1.25, rel=2e-3)
    assert fit.used < 0.8


def test_rgb_is_fitted_per_channel(rng):
    tgt = (rng.random((3, 100, 120)) * 0.5 + 0.05).astype(np.float32)
    slopes = np.array([1.1, 1.3, 0.9])[:, None, None]
    ref = (slopes * tgt + 0.01).astype(np.float32)
    fits = linear_fit(ref, tgt)
    assert [round(f.b, 4) for f in fits] == [1.1, 1.3, 0.9]
    out = apply_fit(tgt, fits)
    assert np.max(np.abs(out - np.clip(ref, 0, 1))) < 1e-5


def test_detail_fit_ignores_a_large_scale_gradient(rng):
    """The MSGR case: the reference has a gradient the target lacks; its fine detail is shared."""
    h, w = 300, 400
    yy, xx = np.mgrid[0:h, 0:w] / 400.0
    detail = np.zeros((h, w))
    stars = rng.integers(0, [h, w], (600, 2))
    detail[stars[:, 0], stars[:, 1]] = rng.random(600) * 0.3
    from scipy import ndimage
    detail = ndimage.gaussian_filter(detail, 1.2) * 10
    tgt = (0.1 + detail + rng.normal(0, 0.001, (h, w)))[None].astype(np.float32)
    ref = (1.25 * tgt[0] + 0.02 + 0.15 * xx + 0.1 * yy ** 2)[None].astype(np.float32)
    (whole,) = linear_fit(ref, tgt)
    (fine,) = linear_fit(ref, tgt, detail_sigma=4.0)
    assert abs(fine.b - 1.25) < 0.02
    assert abs(whole.b - 1.25) > 3 * abs(fine.b - 1.25)


def test_shape_mismatch_and_insufficient_data_are_clear(rng):
    ref, tgt = _pair(rng)
    with pytest.raises(MsgrError, match="reference is 400x300 mono but target is 200x300 mono"):
        linear_fit(ref, tgt[:, :, :200])
    with pytest.raises(MsgrError, match="insufficient data in channel 0"):
        linear_fit(np.ones_like(ref), tgt)


def test_node_reports_coefficients(rng):
    ref, tgt = _pair(rng)
    from msgr_nodes.context import RunContext
    g = Graph()
    g.add_node("LinearFit", "lf")
    spec = g.spec("lf")
    ctx = RunContext("lf")
    out = spec.run(ctx, {"reference": Image(ref), "target": Image(tgt)}, spec.effective_params({}))
    assert ctx.metadata["channels"][0]["b"] == pytest.approx(1.25, rel=1e-3)
    assert out["image"].data.max() <= 1.0
