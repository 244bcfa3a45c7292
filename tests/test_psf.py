"""Star profiles as blur kernels: the narrow image's stars brought to the wide stars' wings."""
import math

import numpy as np
import pytest
from scipy import ndimage

from msgr_nodes.ops.gradient import match_wide
from msgr_nodes.ops.psf import moffat_blur, moffat_kernel


def _stars(shape, xy, flux, fwhm, beta=3.5):
    """Moffat stars of ``fwhm`` px and ``beta`` at ``xy`` ((n, 2) x, y) with total ``flux`` each."""
    h, w = shape
    img = np.zeros(shape)
    alpha = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1))
    reach = int(12 * fwhm)
    for (x, y), f in zip(xy, flux):
        x0, x1, y0, y1 = max(int(x) - reach, 0), min(int(x) + reach, w), max(int(y) - reach, 0), min(int(y) + reach, h)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        r2 = ((xx - x) ** 2 + (yy - y) ** 2) / alpha ** 2
        img[y0:y1, x0:x1] += f * (beta - 1) / (math.pi * alpha ** 2) * (1 + r2) ** -beta
    return img


@pytest.mark.parametrize("fwhm, beta", [(4.0, 2.5), (12.0, 4.5)])
def test_the_moffat_kernel_has_its_fwhm_and_sums_to_one(fwhm, beta):
    k = moffat_kernel(fwhm, beta)
    r = k.shape[0] // 2
    assert abs(float(k.sum()) - 1) < 1e-5 and k.shape[0] == k.shape[1] and k[r, r] == k.max()
    row = k[r] / k[r, r]
    half = np.interp(0.5, row[r:][::-1], np.arange(r + 1)[::-1])  # where the profile falls to half
    assert abs(2 * half / fwhm - 1) < 0.06, 2 * half
    with pytest.raises(ValueError, match="beta > 1"):
        moffat_kernel(fwhm, 1.0)


def test_moffat_blur_in_strips_is_the_whole_frame_convolution(rng):
    """Strips of rows (memory) give the convolution of the whole frame mirrored at its borders,
    added into a given frame in place."""
    from scipy.signal import fftconvolve

    plane = rng.random((1100, 700)).astype(np.float32)  # three strips
    k = moffat_kernel(6.0, 3.0)
    r = k.shape[0] // 2
    whole = fftconvolve(np.pad(plane, r, mode="reflect"), k, mode="valid")
    assert np.abs(moffat_blur(plane, 6.0, 3.0) - whole).max() < 1e-5
    base = np.ones_like(plane)
    out = moffat_blur(plane, 6.0, 3.0, add_to=base)
    assert out is base and np.abs(out - 1 - whole).max() < 1e-5
    tiny = rng.random((40, 30)).astype(np.float32)  # the kernel reaches past the frame: mirrored again
    assert abs(float(moffat_blur(tiny, 12.0, 3.0).mean()) - float(tiny.mean())) < 0.02


def test_moffat_blur_keeps_the_flux_and_the_shape(rng):
    plane = np.zeros((200, 300), np.float32)
    plane[100, 150] = 1.0
    out = moffat_blur(plane, 6.0, 3.0)
    assert out.shape == plane.shape and out.dtype == np.float32
    assert abs(float(out.sum()) - 1) < 1e-3 and np.unravel_index(np.argmax(out), out.shape) == (100, 150)


def _soft_pair(rng, hot_pixels=0):
    """A soft wide plane (10.5 px Moffat stars, beta 3.5) and a sharp narrow one (3 px), with
    ``hot_pixels`` in the narrow one's stars (its Load image); the faint stars in both, the bright
    ones' cores and the hot pixels masked. (narrow, narrow_stars, wide, wide without stars), float32,
    and the keywords match_wide needs."""
    h, w = 600, 800
    fn, fw = 3.0, 10.5
    field = sum(ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), s) * s for s in (6, 20))
    nebula = 0.02 + 0.01 * (field - field.min()) / (field.max() - field.min())
    xy = rng.uniform([0, 0], [w, h], (400, 2))
    flux = 10 ** rng.uniform(-1.5, 0.5, 400)  # total flux; the brightest peak near 0.4 in the narrow image
    narrow = ndimage.gaussian_filter(nebula, fn / 2.3548) + rng.normal(0, 5e-5, (h, w))
    narrow_stars = narrow + _stars((h, w), xy, flux, fn)
    wide_sky = ndimage.gaussian_filter(nebula, fw / 2.3548) + rng.normal(0, 5e-5, (h, w))
    wide = wide_sky + _stars((h, w), xy, flux, fw)
    yy, xx = np.mgrid[0:h, 0:w]
    masks = np.zeros((h, w), bool)
    for x, y in xy[flux > 10 ** -0.5]:
        masks |= (xx - x) ** 2 + (yy - y) ** 2 < (1.5 * fw) ** 2  # the cores: the wings reach beyond
    hy, hx = rng.integers(2, h - 2, hot_pixels), rng.integers(2, w - 2, hot_pixels)
    narrow_stars[hy, hx] += 0.5
    masks[hy, hx] = True
    masks = ndimage.binary_dilation(masks)  # StarRemove masks a hot pixel by its footprint
    planes = [a.astype(np.float32) for a in (narrow, narrow_stars, wide, wide_sky)]
    return planes, dict(difference_blur=math.sqrt(fw ** 2 - fn ** 2) / 2.3548, star_masks=masks)


def _stars_left(result, starless, masks):
    """What the stars leave of the difference at the model's scales: 16 px block means, outside the masks."""
    d = result.difference.astype(np.float64) - starless.difference
    return float(np.std(ndimage.uniform_filter(d, 16)[~masks]))


def test_the_narrow_images_stars_get_the_wide_stars_wings(rng):
    """Blurred by the Gaussian that matches the FWHMs, the narrow image's stars lack the soft wide
    stars' wings, which are left around every star in the difference; blurred by the Moffat of the
    wide stars' beta they cancel."""
    (narrow, narrow_stars, wide, wide_sky), common = _soft_pair(rng)
    gaussian = match_wide(narrow, wide, narrow_stars=narrow_stars, **common)
    moffat = match_wide(narrow, wide, narrow_stars=narrow_stars, star_beta=3.5, **common)
    assert moffat.info["star_kernel"]["beta"] == 3.5 and "star_kernel" not in gaussian.info
    assert gaussian.info["check"].startswith("passed") and moffat.info["check"].startswith("passed")
    # the same pair without stars, at the same slope (the wide image's stars move b by up to 1.5 %)
    assert moffat.info["b"] == gaussian.info["b"]
    starless = match_wide(narrow, wide_sky, narrow_stars=narrow, slope=moffat.info["b"], **common)
    masks = common["star_masks"]
    left_moffat, left_gaussian = _stars_left(moffat, starless, masks), _stars_left(gaussian, starless, masks)
    # measured: 1.07e-5 against 3.35e-5 (seeds 0-3: 0.25-0.31 of it)
    assert left_moffat < 0.45 * left_gaussian, (left_moffat, left_gaussian)
    out_of_range = match_wide(narrow, wide, narrow_stars=narrow_stars, star_beta=20.0, **common)
    assert "star_kernel" not in out_of_range.info  # no wings measured: the Gaussian


def test_hot_pixels_are_not_blurred_into_star_wings():
    """The narrow image with its stars also holds its hot pixels (StarRemove masks and fills them in
    the starless image only): they are no stars, and are not spread into a wide star's wings, 20-30
    px around their 3x3 masks. The same pair with and without 300 hot pixels."""
    left = []
    for hot in (0, 300):
        (narrow, narrow_stars, wide, wide_sky), common = _soft_pair(np.random.default_rng(5), hot_pixels=hot)
        moffat = match_wide(narrow, wide, narrow_stars=narrow_stars, star_beta=3.5, **common)
        starless = match_wide(narrow, wide_sky, narrow_stars=narrow, slope=moffat.info["b"], **common)
        left.append(_stars_left(moffat, starless, common["star_masks"]))
    assert left[1] < 1.2 * left[0], left
