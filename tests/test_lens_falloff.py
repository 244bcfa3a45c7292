"""A wide lens's falloff measured on the stars both images hold (ops/lens_falloff.py)."""
import math

import numpy as np
import pytest

from msgr_nodes.ops.lens_falloff import confirms_falloff, star_falloff
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


def test_too_few_stars_give_no_measurement(rng):
    narrow, wide, nxy, wxy, size = _star_pair(rng, 0.35, nebula=0.0)
    assert star_falloff(narrow, wide, nxy[:20], wxy[:20], size[:20], 1 / 3) is None
    assert not confirms_falloff(None, 0.35)
