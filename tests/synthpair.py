"""A small narrow/wide pair generator for the tests, with known injected gradients.

The tests make their own data (the project's benchmarks use the richer real-texture
generator beside the project). One function, :func:`make_pair`, writes into a folder:

* ``narrow.fits``, ``wide.fits``: what a tool gets: clean + gradient + noise, saturated at 1.0;
* ``*_clean.fits``: sky pedestal + nebula + stars (no gradient, no noise);
* ``*_nebula.fits``: sky pedestal + nebula (no stars);
* ``*_gradient.fits``: the injected additive gradient;
* ``truth.json``: sizes, scales, rotation, the true linear relation, sky levels;
* with ``ultra_ratio``, also ``ultra.fits`` (and its ``_clean``, ``_nebula``, ``_gradient``): a third,
  wider image of the same sky centred on the wide one, for the cascade graph.

Values are float32 in units of 1/65535 e- (1.0 = 65535 e- = saturation), arrays (H, W) in FITS
order. The narrow image has a TAN WCS, the wide one TAN-SIP (the SIP terms hold a radial
distortion). The sky is one function of position: a lognormal fractal nebula defined on a grid
of ``texture_step`` narrow pixels (like a photographic texture that is coarser than the narrow
frame), so both images see the same structure at the scales the wide one resolves, and stars
at random positions with a star-count law. The wide image's per-pixel surface brightness is
``wide_sb_factor`` times the narrow one's, so ``narrow_nebula = a * wide_nebula + b`` with
``a = 1 / wide_sb_factor``.

Run as a script for a quick look: ``python tests/synthpair.py OUT [--narrow-size W H] [--seed N]``.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, Sip
from scipy import ndimage

FULL_WELL = 65535.0


def _wcs(shape, ra0, dec0, scale_arcsec, rot_deg, k1=0.0) -> WCS:
    """A TAN (or, with a radial term ``k1`` per px^2, TAN-SIP) WCS for an (H, W) frame."""
    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.crpix = [nx / 2.0 + 0.5, ny / 2.0 + 0.5]
    w.wcs.crval = [ra0, dec0]
    s, t = scale_arcsec / 3600.0, math.radians(rot_deg)
    w.wcs.cd = np.array([[-s * math.cos(t), s * math.sin(t)], [s * math.sin(t), s * math.cos(t)]])
    w.wcs.cunit = ["deg", "deg"]
    if k1:
        a = np.zeros((4, 4))
        b = np.zeros((4, 4))
        a[3, 0] = a[1, 2] = k1  # u' = u + k1 u (u^2 + v^2)
        b[0, 3] = b[2, 1] = k1
        w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        w.sip = Sip(a, b, -a, -b, w.wcs.crpix)
    else:
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.set()
    return w


def _fractal(shape, rng, slope=3.2) -> np.ndarray:
    """A Gaussian random field (H, W) with power spectrum ~ k^-slope, zero mean, unit RMS."""
    ny, nx = shape
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = 1.0
    amp = k ** (-slope / 2)
    amp[0, 0] = 0.0
    spec = amp * (rng.normal(size=amp.shape) + 1j * rng.normal(size=amp.shape))
    field = np.fft.irfft2(spec, s=shape)
    return (field - field.mean()) / field.std()


def _texture(shape, rng) -> np.ndarray:
    """A nebula-like texture (H, W) in [0, ~1.5]: 0 at its 2nd, 1 at its 99.5th percentile.

    Lognormal fractal structure inside a broad envelope near the middle, as in a photograph
    framed on its nebula."""
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx] / np.array([ny, nx])[:, None, None]
    cy, cx = rng.uniform(0.4, 0.6, 2)
    envelope = np.exp(-(((x - cx) / 0.12) ** 2 + ((y - cy) / 0.12) ** 2) / 2)
    f = envelope * np.exp(0.8 * _fractal(shape, rng, slope=3.6)) + 0.03 * np.exp(_fractal(shape, rng))
    f = ndimage.gaussian_filter(f, 1.0)  # a photograph's own blur: no power at the texel scale
    lo, hi = np.percentile(f, [2.0, 99.5])
    return np.clip((f - lo) / (hi - lo), 0.0, None)


def _moffat_stars(shape, xs, ys, fluxes, fwhm, beta=3.5, max_radius=40) -> np.ndarray:
    """Moffat stars of total flux ``fluxes`` at 0-based pixel positions, on an (H, W) frame."""
    ny, nx = shape
    img = np.zeros(shape)
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
    peak = (beta - 1.0) / (math.pi * alpha * alpha)
    for x, y, f in zip(xs, ys, fluxes):
        # the stamp reaches where the profile falls below 0.05 e-
        r = alpha * math.sqrt(max((f * peak / 0.05) ** (1.0 / beta) - 1.0, 0.0))
        r = int(min(max(r, 3 * fwhm), max_radius)) + 1
        x0, x1 = max(int(x) - r, 0), min(int(x) + r + 2, nx)
        y0, y1 = max(int(y) - r, 0), min(int(y) + r + 2, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        img[y0:y1, x0:x1] += f * peak * (1.0 + ((xx - x) ** 2 + (yy - y) ** 2) / alpha ** 2) ** (-beta)
    return img


def vignette(d, depth=0.6):
    """``d`` (H, W) through a fast lens without flats: 1 at the centre, 1 - depth in the corners."""
    h, w = d.shape
    yy, xx = np.mgrid[0:h, 0:w]
    return d * (1 - depth * ((xx - (w - 1) / 2) ** 2 + (yy - (h - 1) / 2) ** 2) / (0.5 * np.hypot(w, h)) ** 2)


def _unit_coords(shape):
    """Pixel offsets from the frame centre divided by half the diagonal (corners at radius 1)."""
    ny, nx = shape
    half = 0.5 * math.hypot(nx - 1, ny - 1)
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    return (x - (nx - 1) / 2) / half, (y - (ny - 1) / 2) / half


def _narrow_gradient(shape, sky, rng, strength):
    """Ramp + off-centre radial falloff + a glow from just outside the frame (electrons)."""
    u, v = _unit_coords(shape)
    phi = rng.uniform(0, 2 * math.pi)
    ramp = 0.25 * sky * (u * math.cos(phi) + v * math.sin(phi))
    cu, cv = rng.uniform(-0.2, 0.2, 2)
    falloff = 0.3 * sky * ((1 + ((u - cu) ** 2 + (v - cv) ** 2) / 1.44) ** -2 - 1)
    psi = rng.uniform(0, 2 * math.pi)
    gu, gv = 1.1 * math.cos(psi), 1.1 * math.sin(psi)
    glow = 0.6 * sky * (1 + ((u - gu) ** 2 + (v - gv) ** 2) / 0.55 ** 2) ** -1.5
    return strength * (ramp + falloff + glow)


def _wide_gradient(shape, sky, rng, strength):
    """A plane minus a weak bowl (electrons)."""
    u, v = _unit_coords(shape)
    c = rng.uniform(-1, 1, 2)
    c = 0.12 * sky * c / np.linalg.norm(c)
    return strength * (c[0] * u + c[1] * v - 0.06 * sky * (u * u + v * v))


def _observe(model_e, rng, frames, read_noise=4.0):
    """The mean of ``frames`` exposures: Poisson + read noise, clipped at the full well."""
    m = np.clip(model_e, 0, FULL_WELL)
    obs = rng.poisson(m * frames) / frames + rng.normal(0.0, read_noise / math.sqrt(frames), m.shape)
    return np.clip(obs, 0, FULL_WELL)


def make_pair(out, narrow_size=(400, 300), seed=1, ratio=3.0, wide_fov=1.8, rotation=2.5,
              distortion=2.0, narrow_scale=3.5, narrow_fwhm=3.0, wide_fwhm=2.2, frames=8,
              wide_sb_factor=0.8, gradient_strength=1.0, nebula_level=1500.0, narrow_sky=1000.0,
              wide_sky=900.0, star_density=2e-3, texture_step=4.0, wide_glow=0.0, ultra_ratio=None,
              ultra_fov=3.6, ultra_sb_factor=None) -> Path:
    """Write a narrow/wide pair into the folder ``out`` (see the module doc); returns ``out``.

    Parameters
    ----------
    out : path
        Folder to write (created).
    narrow_size : (int, int)
        Narrow frame width and height in pixels; the wide frame is ``narrow_size * wide_fov / ratio``.
    seed : int
        Random seed; the same seed and options give the same files.
    ratio : float
        Wide pixel scale / narrow pixel scale.
    wide_fov : float
        Wide field / narrow field (linear).
    rotation, distortion : float
        Wide rotation against the narrow frame (degrees) and radial SIP distortion at its corners (px).
    wide_fwhm, narrow_fwhm : float
        Star FWHM in each image's own pixels (the nebula is blurred by the same PSF core).
    frames : int
        Exposures averaged (noise falls as 1/sqrt(frames)).
    wide_sb_factor : float
        Wide per-pixel surface brightness / narrow.
    gradient_strength : float
        Scales both injected gradients.
    star_density : float
        Stars per narrow pixel^2 (2e-3: a rich Milky Way field).
    wide_glow : float
        A glow from just outside a corner of the wide frame, added to the wide image's gradient, in
        units of its sky (0.5: a light dome that a low-degree polynomial cannot follow).
    ultra_ratio, ultra_fov : float or None, float
        Write a third image: ultra-wide pixel scale / narrow pixel scale, and its field / narrow field.
    ultra_sb_factor : float or None
        The ultra-wide image's surface brightness / narrow (default ``wide_sb_factor``; 0 = stars only,
        a reference whose sky does not match).

    The glow and the ultra-wide image draw from a second generator, so that ``wide_glow`` leaves the
    rest of the pair as it was (``ultra_ratio`` does not: the sky is drawn over the larger field).
    """
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    nx, ny = (int(v) for v in narrow_size)
    wx, wy = int(round(nx * wide_fov / ratio)), int(round(ny * wide_fov / ratio))
    ra0, dec0 = 150.0, 20.0
    wn = _wcs((ny, nx), ra0, dec0, narrow_scale, 0.0)
    dx, dy = rng.uniform(-1, 1, 2) * 0.08 * np.array([wx, wy]) * ratio  # wide centre offset, narrow px
    ra_w, dec_w = (float(c) for c in wn.all_pix2world((nx - 1) / 2 + dx, (ny - 1) / 2 + dy, 0))
    k1 = distortion / (0.5 * math.hypot(wx, wy)) ** 3
    ww = _wcs((wy, wx), ra_w, dec_w, narrow_scale * ratio, rotation, k1)
    extra = np.random.default_rng(seed + 7919)  # the ultra-wide image and the wide glow
    if ultra_ratio:
        ux, uy = int(round(nx * ultra_fov / ultra_ratio)), int(round(ny * ultra_fov / ultra_ratio))
        wu = _wcs((uy, ux), ra_w, dec_w, narrow_scale * ultra_ratio, -1.5 * rotation,
                  distortion / (0.5 * math.hypot(ux, uy)) ** 3)

    # Positions are narrow-frame pixel coordinates: the wide pixels go there through both WCS.
    yw, xw = np.mgrid[0:wy, 0:wx].astype(float)
    ra, dec = ww.all_pix2world(xw, yw, 0)
    xw_n, yw_n = wn.all_world2pix(ra, dec, 0)
    margin = 8 * texture_step
    x_lo, y_lo = min(xw_n.min(), 0) - margin, min(yw_n.min(), 0) - margin
    x_hi, y_hi = max(xw_n.max(), nx) + margin, max(yw_n.max(), ny) + margin
    if ultra_ratio:
        yu, xu = np.mgrid[0:uy, 0:ux].astype(float)
        xu_n, yu_n = wn.all_world2pix(*wu.all_pix2world(xu, yu, 0), 0)
        x_lo, y_lo = min(x_lo, xu_n.min() - margin), min(y_lo, yu_n.min() - margin)
        x_hi, y_hi = max(x_hi, xu_n.max() + margin), max(y_hi, yu_n.max() + margin)
    tex = _texture((int((y_hi - y_lo) / texture_step) + 1, int((x_hi - x_lo) / texture_step) + 1), rng)
    yn, xn = np.mgrid[0:ny, 0:nx].astype(float)

    def sample(x, y, pixel_in_tex):
        img = tex
        if pixel_in_tex > 1.0:  # anti-aliasing where an output pixel is coarser than the texture
            img = ndimage.gaussian_filter(tex, 0.5 * math.sqrt(pixel_in_tex ** 2 - 1.0))
        return np.clip(ndimage.map_coordinates(img, [(y - y_lo) / texture_step, (x - x_lo) / texture_step],
                                               order=3, mode="nearest"), 0, None)

    neb_n = ndimage.gaussian_filter(sample(xn, yn, 1 / texture_step), narrow_fwhm / 2.3548)
    neb_w = ndimage.gaussian_filter(sample(xw_n, yw_n, ratio / texture_step), wide_fwhm / 2.3548)

    n_stars = int(star_density * (x_hi - x_lo) * (y_hi - y_lo))
    sx, sy = rng.uniform(x_lo, x_hi, n_stars), rng.uniform(y_lo, y_hi, n_stars)
    # dN/dm ~ 10^(0.3 m) from 6 to 16; 23.2 is the narrow zero point (m = 10 gives 2e5 e-)
    a, b = 10 ** (0.3 * 6.0), 10 ** (0.3 * 16.0)
    mags = np.log10(a + rng.uniform(0, 1, n_stars) * (b - a)) / 0.3
    flux_n = 10 ** (-0.4 * (mags - 23.2))
    flux_w = flux_n * wide_sb_factor / ratio ** 2
    s_ra, s_dec = wn.all_pix2world(sx, sy, 0)
    swx, swy = ww.all_world2pix(s_ra, s_dec, 0, tolerance=1e-6, maxiter=50, quiet=True)
    stars_n = _moffat_stars((ny, nx), sx, sy, flux_n, narrow_fwhm, max_radius=80)
    stars_w = _moffat_stars((wy, wx), swx, swy, flux_w, wide_fwhm)

    nebula_n = narrow_sky + nebula_level * neb_n
    nebula_w = wide_sky + nebula_level * wide_sb_factor * neb_w
    grad_n = _narrow_gradient((ny, nx), narrow_sky, rng, gradient_strength)
    grad_w = _wide_gradient((wy, wx), wide_sky, rng, gradient_strength)
    if wide_glow:
        u, v = _unit_coords((wy, wx))
        psi = extra.uniform(0, 2 * math.pi)
        grad_w = grad_w + wide_glow * wide_sky * (1 + ((u - 1.1 * math.cos(psi)) ** 2 + (v - 1.1 * math.sin(psi)) ** 2)
                                                  / 0.55 ** 2) ** -1.5
    clean_n, clean_w = nebula_n + stars_n, nebula_w + stars_w
    obs_n = _observe(clean_n + grad_n, rng, frames)
    obs_w = _observe(clean_w + grad_w, rng, frames)
    images = [("narrow", wn, (obs_n, clean_n, nebula_n, grad_n)), ("wide", ww, (obs_w, clean_w, nebula_w, grad_w))]
    if ultra_ratio:
        sb = wide_sb_factor if ultra_sb_factor is None else ultra_sb_factor
        neb_u = ndimage.gaussian_filter(sample(xu_n, yu_n, ultra_ratio / texture_step), wide_fwhm / 2.3548)
        suw, suy = wu.all_world2pix(s_ra, s_dec, 0, tolerance=1e-6, maxiter=50, quiet=True)
        stars_u = _moffat_stars((uy, ux), suw, suy, flux_n * wide_sb_factor / ultra_ratio ** 2, wide_fwhm)
        nebula_u = wide_sky + nebula_level * sb * neb_u
        grad_u = _wide_gradient((uy, ux), wide_sky, extra, gradient_strength)
        clean_u = nebula_u + stars_u
        images.append(("ultra", wu, (_observe(clean_u + grad_u, extra, frames), clean_u, nebula_u, grad_u)))

    for kind, w, arrays in images:
        for suffix, arr in zip(("", "_clean", "_nebula", "_gradient"), arrays):
            hdr = w.to_header(relax=True)
            hdr["BUNIT"] = ("1/65535 e-", "1.0 = 65535 electrons")
            fits.PrimaryHDU((arr / FULL_WELL).astype(np.float32), header=hdr).writeto(
                out / f"{kind}{suffix}.fits", overwrite=True)
    truth = {
        "mode": "synth", "seed": seed, "generator": "tests/synthpair.py",
        "units": "FITS values are electrons/65535; numbers below are electrons",
        "narrow": {"shape": [ny, nx], "scale_arcsec": narrow_scale, "fwhm_px": narrow_fwhm, "sky_e": narrow_sky},
        "wide": {"shape": [wy, wx], "scale_arcsec": narrow_scale * ratio, "fwhm_px": wide_fwhm, "sky_e": wide_sky,
                 "rotation_deg": rotation, "distortion_px": distortion},
        "scale_ratio": ratio, "relative_rotation_deg": rotation,
        "linear_relation": {"a": 1.0 / wide_sb_factor, "b": narrow_sky - wide_sky / wide_sb_factor},
        "stars": int(n_stars),
    }
    if ultra_ratio:
        truth["ultra"] = {"shape": [uy, ux], "scale_arcsec": narrow_scale * ultra_ratio, "fwhm_px": wide_fwhm,
                          "sky_e": wide_sky}
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    return out


def main(argv=None) -> None:
    """Command line: ``python tests/synthpair.py OUT [--narrow-size W H] [--seed N] [--ratio R]``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--narrow-size", type=int, nargs=2, default=(400, 300))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ratio", type=float, default=3.0)
    p.add_argument("--wide-fov", type=float, default=1.8)
    a = p.parse_args(argv)
    make_pair(a.out, tuple(a.narrow_size), a.seed, a.ratio, a.wide_fov)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
