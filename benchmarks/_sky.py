"""A realistic test sky for benchmarks: sky pedestal with gradients, a power-law nebula, stars, noise.

float32 (H, W) in [0, 1]: background about 0.1, noise sigma about 0.005, about 1000 stars per
megapixel with Gaussian PSFs, the brightest saturated at 1.0.
"""
import numpy as np


def make_sky(height: int, width: int, seed: int = 12345) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = xx / width - 0.5, yy / height - 0.5
    img = 0.08 + 0.02 * u + 0.015 * v + 0.02 * (u * u + v * v)
    # power-law random field (k^-1.6), computed small and upsampled, as a nebula with envelopes
    sh, sw = max(64, height // 8), max(64, width // 8)
    ky = np.fft.fftfreq(sh)[:, None]
    kx = np.fft.rfftfreq(sw)[None, :]
    k = np.sqrt(kx * kx + ky * ky)
    k[0, 0] = 1.0
    field = np.fft.irfft2(rng.normal(size=k.shape) * k ** -1.6 + 1j * rng.normal(size=k.shape) * k ** -1.6,
                          s=(sh, sw))
    field = (field - field.min()) / (field.max() - field.min())
    from scipy import ndimage
    field = ndimage.zoom(field, (height / sh, width / sw), order=1)[:height, :width]
    envelope = np.exp(-((u / 0.35) ** 2 + (v / 0.3) ** 2))
    img = img + 0.12 * (field ** 2 * envelope).astype(np.float32)
    n_stars = int(1000 * height * width / 1e6)
    ys = rng.uniform(0, height, n_stars)
    xs = rng.uniform(0, width, n_stars)
    flux = 0.02 * (rng.pareto(1.3, n_stars) + 1)
    fwhm = rng.uniform(2.2, 3.5, n_stars)
    stars = np.zeros((height, width), np.float32)
    for y, x, f, w in zip(ys, xs, flux, fwhm):
        s = w / 2.355
        r = int(4 * s) + 1
        y0, y1 = max(0, int(y) - r), min(height, int(y) + r + 1)
        x0, x1 = max(0, int(x) - r), min(width, int(x) + r + 1)
        gy, gx = np.mgrid[y0:y1, x0:x1]
        stars[y0:y1, x0:x1] += f * np.exp(-((gy - y) ** 2 + (gx - x) ** 2) / (2 * s * s))
    img = img + stars + rng.normal(0, 0.0046, (height, width)).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)
