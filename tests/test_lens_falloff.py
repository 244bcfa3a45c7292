"""A wide lens's falloff measured on the stars both images hold (ops/lens_falloff.py)."""
import math

import numpy as np
import pytest

from msgr_nodes.ops.abe import ABEParams, BoxSamples
from msgr_nodes.ops.lens_falloff import confirms_falloff, flat_sky_surface, measures_falloff, star_falloff
from synthpair import _moffat_stars


def _star_pair(rng, falloff, nebula):
    """A wide frame (800x600) and a narrow frame on its middle half at 3x the scale, the same 300
    stars in both; the wide one through a lens of radial ``falloff`` (1 - k r^2, r in half-diagonals),
    both over a central nebula of ``nebula`` x the sky."""
    wh, ww = 600, 800
    x0, y0 = 200.0, 150.0  # the narrow frame's corner on the wide grid
    wx, wy = x0 + rng.uniform(5, 395, 300), y0 + rng.uniform(5, 295, 300)
    flux = 10 ** rng.uniform(-0.5, 0.3, 300)
    yy, xx = np.mgrid[0:wh, 0:ww]
    half = 0.5 * math.hypot(ww - 1, wh - 1)
    r2 = ((xx - (ww - 1) / 2) ** 2 + (yy - (wh - 1) / 2) ** 2) / half ** 2
    glow = nebula * np.exp(-r2 / 0.08)
    wide = (0.02 * (1 + glow) + _moffat_stars((wh, ww), wx, wy, flux, 3.5)) * (1 - falloff * r2)
    wide = wide + rng.normal(0, 2e-4, wide.shape)
    nx, ny = 3 * (wx - x0), 3 * (wy - y0)
    nyy, nxx = np.mgrid[0:900, 0:1200]
    nr2 = ((x0 + nxx / 3 - (ww - 1) / 2) ** 2 + (y0 + nyy / 3 - (wh - 1) / 2) ** 2) / half ** 2
    # the same sky per unit area: a narrow pixel holds a ninth of a wide one's
    narrow = 0.02 / 9 * (1 + nebula * np.exp(-nr2 / 0.08)) + _moffat_stars((900, 1200), nx, ny, flux, 3.0)
    narrow = narrow + rng.normal(0, 1e-4, narrow.shape)
    size = np.full(300, 3.5 / 2.3548)
    return (narrow.astype(np.float32), wide.astype(np.float32), np.stack([nx, ny], 1), np.stack([wx, wy], 1),
            size)


@pytest.mark.parametrize("falloff", [0.0, 0.35, 0.6])
def test_the_stars_measure_the_lens_falloff_and_not_a_central_nebula(rng, falloff):
    """Through a lens of -35 or -60 % in the corners, the matched stars' flux ratio falls as 1 - k r^2
    with k the lens's; a bright nebula in the frame's middle (3x the sky), which sample boxes of the
    sky can take for a falloff, leaves it flat."""
    narrow, wide, nxy, wxy, size = _star_pair(rng, falloff, nebula=3.0)
    measured = star_falloff(narrow, wide, nxy, wxy, size, 1 / 3)
    assert measured["stars"] > 100
    assert measured["k"] == pytest.approx(falloff, abs=0.05), measured
    assert confirms_falloff(measured, 0.35) == (falloff > 0)
    # clear enough to be trusted alone, where ABE's boxes cannot tell a lens amid nebula
    assert measures_falloff(measured) == (falloff > 0)


def test_too_few_stars_give_no_measurement(rng):
    narrow, wide, nxy, wxy, size = _star_pair(rng, 0.35, nebula=0.0)
    assert star_falloff(narrow, wide, nxy[:20], wxy[:20], size[:20], 1 / 3) is None
    assert not confirms_falloff(None, 0.35)


def test_the_stars_alone_are_trusted_only_for_a_clear_strong_falloff():
    """On the benchmarks' pairs, lens-free wide images measure k of -0.43 to 0.09 (at most 4.3 errors
    from 0), -35 % lenses 0.33-0.37 +- 0.010-0.031."""
    assert measures_falloff({"k": 0.36, "error": 0.011, "stars": 400})
    assert not measures_falloff({"k": 0.04, "error": 0.016, "stars": 400})  # too weak to matter
    assert not measures_falloff({"k": 0.30, "error": 0.08, "stars": 40})  # too uncertain
    # a stretched wide image compresses its bright stars' fluxes: 1.03 +- 0.28 on an asinh stretch
    assert not measures_falloff({"k": 1.6, "error": 0.3, "stars": 200})
    assert not measures_falloff(None)


def test_abes_boxes_divided_by_the_falloff_give_the_sky_flats_would_have_left(rng):
    """Sample boxes of a 1200x900 wide frame: a light-pollution ramp with a curve, through a lens of
    -35 % in the corners (a cubic and more, which a degree-2 fit of the boxes as they are cannot
    follow), and a few nebula boxes; divided by the falloff they give the ramp again."""
    h, w = 900, 1200
    gy, gx = np.mgrid[16:h:32, 16:w:32]
    x, y = gx.ravel().astype(float), gy.ravel().astype(float)
    u, v = (x - (w - 1) / 2) / (w / 2), (y - (h - 1) / 2) / (h / 2)
    sky = 0.10 + 0.03 * u - 0.02 * v + 0.015 * u * v
    r2 = ((x - (w - 1) / 2) ** 2 + (y - (h - 1) / 2) ** 2) / (0.5 * math.hypot(w, h)) ** 2
    value = sky * (1 - 0.35 * r2) + rng.normal(0, 2e-4, x.size)
    nebula = rng.random(x.size) < 0.1
    value[nebula] += 0.05
    samples = BoxSamples(x, y, value, np.ones(x.size, bool))
    p = ABEParams(degree=2)
    surface = flat_sky_surface(samples, p, (h, w), 0.35)
    error = surface.at(x, y) - sky
    assert np.max(np.abs(error[~nebula] - np.median(error))) < 0.002 * 0.10
    # the boxes as they are leave the lens's shape in a degree-2 surface
    plain = flat_sky_surface(samples, p, (h, w), 0.0)
    plain_error = plain.at(x, y) - sky * (1 - 0.35 * r2)
    assert np.max(np.abs(plain_error[~nebula] - np.median(plain_error))) > 5 * np.max(np.abs(error[~nebula] - np.median(error)))
