"""LargeScales: the gradient model taken from a difference image."""
import numpy as np
from scipy import ndimage

from msgr_nodes.ops.gradient import large_scales


def test_the_surface_follows_the_gradient_under_fine_residue(rng):
    """A difference narrow - b x wide holds the gradient and what the two images' fills leave: blobs
    of light 10-30 px across (a halo beyond its mask, a knot one image resolves). The model is the
    gradient, not the blobs."""
    h, w = 600, 800
    v, u = np.mgrid[-1:1:h * 1j, -1:1:w * 1j]
    gradient = 0.01 * (0.5 * u + 0.3 * v * v + 0.4 / (1 + ((u - 0.8) ** 2 + (v + 0.6) ** 2) / 0.1))
    blobs = np.zeros((h, w))
    blobs[rng.integers(0, h, 400), rng.integers(0, w, 400)] = rng.uniform(0, 1, 400)
    blobs = ndimage.gaussian_filter(blobs, 5) * 2 * np.pi * 25 * 0.004
    plane = (gradient + blobs + rng.normal(0, 0.0005, (h, w))).astype(np.float32)
    error = large_scales(plane, "surface") - gradient
    # measured: 0.76e-4 (the blobs' own RMS 7.7e-4); 0.99e-4 with box medians an eighth of the
    # scale across, which the blobs moved
    assert np.std(error - error.mean()) < 0.87e-4, np.std(error - error.mean())
