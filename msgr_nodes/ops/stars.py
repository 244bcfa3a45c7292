"""Star detection (SEP) and classical star removal: masks that grow with flux, multiscale fill.

Arrays: float32 (H, W) for one plane or (C, H, W) for an image; values nominally in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import MsgrError


def luminance(data: np.ndarray) -> np.ndarray:
    """A luminance proxy (C, H, W) -> (H, W): the channel mean."""
    return data[0] if data.shape[0] == 1 else data.mean(axis=0, dtype=np.float32)


def match_channels(data: np.ndarray, channels: int) -> np.ndarray:
    """An image (C, H, W) with ``channels`` channels: an RGB image's luminance for a mono partner,
    a mono image repeated for an RGB one (a read-only view), the image itself otherwise."""
    if data.shape[0] == channels:
        return data
    if channels == 1:
        return luminance(data)[None]
    return np.broadcast_to(data[:1], (channels,) + data.shape[1:])


# A source whose peak pixel holds this share of its flux is one hot pixel (or a cosmic ray), not a
# star: on a frame with 300 hot pixels, 99 % of them measured 0.9-1.0 (median 0.99); the stars of
# the benchmark's frames 0.08-0.43, and the faint one-pixel stars of a 512 px real photograph up to 0.89.
HOT_CONCENTRATION = 0.9
# A source at least this elongated (a / b) and this long (semi-major axis, px) that is not taken as a
# star is a streak: a satellite or aircraft trail. The pieces of trails across the benchmark's frames
# measure a = 12-250 px at a / b = 6.8-31; the elongated sources of real photographs (edge-on
# galaxies, merged pairs) a <= 16 px at a / b <= 5.4, and the synthetic nebulae have none.
STREAK_ELONGATION = 6.0
STREAK_LENGTH = 12.0


@dataclass
class Detection:
    """Sources found in an image; columns are 1-D arrays of equal length, x/y are 0-based pixels."""

    x: np.ndarray
    y: np.ndarray
    a: np.ndarray
    b: np.ndarray
    theta: np.ndarray
    flux: np.ndarray
    peak: np.ndarray
    npix: np.ndarray
    segmentation: np.ndarray | None   # (H, W) int32 source ids (1-based), 0 = sky
    background_rms: float

    def __len__(self) -> int:
        return int(self.x.size)

    def brightest(self, n: int) -> "Detection":
        order = np.argsort(-self.flux)[:n]
        return self.subset(order)

    def subset(self, index: np.ndarray) -> "Detection":
        """The sources at ``index`` (indices or a bool mask); the segmentation map is kept as it is."""
        return Detection(*(getattr(self, f)[index] for f in ("x", "y", "a", "b", "theta", "flux", "peak", "npix")),
                         self.segmentation, self.background_rms)

    def hot_pixels(self) -> np.ndarray:
        """bool per source: a hot pixel or a cosmic ray, whose light sits in one pixel (peak / flux at
        least HOT_CONCENTRATION); a star spreads its light over several pixels even when undersampled."""
        return self.peak >= HOT_CONCENTRATION * np.maximum(self.flux, 1e-30)

    def streaks(self, stars: np.ndarray) -> np.ndarray:
        """Indices of the sources, other than ``stars`` (indices), that are streaks (trails): at least
        STREAK_ELONGATION times as long as wide and STREAK_LENGTH px long (semi-major axis)."""
        others = np.setdiff1d(np.arange(len(self)), stars)
        long_thin = (self.a[others] >= STREAK_LENGTH) & (self.a[others] >= STREAK_ELONGATION * self.b[others])
        return others[long_thin]

    def to_dict(self) -> dict:
        return {f: getattr(self, f).tolist() for f in ("x", "y", "a", "b", "theta", "flux", "peak", "npix")}


def detect(plane: np.ndarray, sigma: float = 3.0, minarea: int = 5, mesh: int = 32,
           segmentation: bool = False, max_sources: int = 300_000, refine: bool = True,
           highpass: bool | int = False) -> Detection:
    """Detect compact sources on one plane (H, W) with SEP, above a mesh background.

    ``sigma`` is the detection threshold in units of the background RMS. Positions
    are refined with SEP's windowed centroids (``refine``) for registration.

    Parameters
    ----------
    plane : ndarray
        float32 (H, W), values nominally in [0, 1].
    sigma : float
        Detection threshold in background RMS.
    minarea : int
        Smallest source, in pixels above the threshold.
    mesh : int
        Background mesh size (px).
    segmentation : bool
        Also return SEP's segmentation map (for masks).
    max_sources : int
        SEP's object limit (large frames of dense fields need many).
    refine : bool
        Windowed centroids (registration needs them; masks do not).
    highpass : bool or int
        Remove MMT c_K first (K = the value, True = 3), so stars on nebulosity are found as stars.

    Returns
    -------
    Detection
        Columns of equal length: x, y (0-based px), a, b, theta, flux, peak, npix; the
    segmentation map (with ``segmentation``) and the background RMS.
    """
    import sep

    data = np.require(plane, np.float32, ["C", "W"])  # SEP needs a writable buffer; Image data is read-only
    if highpass:
        # structures larger than the stars (nebula, the outer parts of halos) are removed first, so that
        # stars on nebulosity are found as stars and not merged into one extended source; highpass=K
        # removes MMT c_K (structures above about 2^K px; True = 3)
        from .mmt import smooth

        data = np.ascontiguousarray(data - smooth(data, 3 if highpass is True else int(highpass), "accurate"))
    bkg = sep.Background(data, bw=mesh, bh=mesh, fw=3, fh=3)
    sub = data - bkg.back()
    rms = float(bkg.globalrms) if bkg.globalrms > 0 else float(np.std(sub)) + 1e-12
    sep.set_extract_pixstack(max(300_000, data.size // 2))
    sep.set_sub_object_limit(4096)
    try:
        result = sep.extract(sub, sigma, err=rms, minarea=minarea, deblend_cont=0.005,
                             segmentation_map=segmentation)
    except Exception as exc:  # SEP reports buffer overflows on extremely crowded or flat data
        raise MsgrError(f"star detection failed ({exc}); raise detection_sigma") from None
    objs, seg = (result if segmentation else (result, None))
    if len(objs) > max_sources:
        keep = np.argsort(-objs["flux"])[:max_sources]
        objs = objs[keep]
    x, y = objs["x"].astype(np.float64), objs["y"].astype(np.float64)
    if refine and len(objs):
        sig = np.clip(2.0 / 2.355 * np.sqrt(objs["a"] * objs["b"]) * 2.355 / 2.0, 0.6, 8.0)
        xw, yw, flag = sep.winpos(sub, x, y, sig)
        good = (flag == 0) & np.isfinite(xw) & np.isfinite(yw) & (np.hypot(xw - x, yw - y) < 2.0)
        x = np.where(good, xw, x)
        y = np.where(good, yw, y)
    return Detection(x, y, objs["a"].astype(np.float64), objs["b"].astype(np.float64),
                     objs["theta"].astype(np.float64), objs["flux"].astype(np.float64),
                     objs["peak"].astype(np.float64), objs["npix"].astype(np.int64),
                     None if seg is None else seg.astype(np.int32), rms)


# Star sizes are measured on a central crop of at most this many px a side: thousands of stars, a
# fraction of the time on a large frame.
SIZE_CROP = 2048


def central_crop(data: np.ndarray, size: int = SIZE_CROP) -> tuple[np.ndarray, tuple[int, int]]:
    """The central crop (a view) of at most ``size`` x ``size`` px of a plane (H, W) or an image
    (C, H, W), and its top-left corner (y, x) in the frame."""
    h, w = data.shape[-2:]
    cy, cx = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return data[..., cy:cy + size, cx:cx + size], (cy, cx)


def psf_fwhm(data: np.ndarray, max_stars: int = 300) -> float:
    """The stars' FWHM (px) on a plane (H, W) or an image (C, H, W; its luminance) with its stars,
    nominally in [0, 1]: the lower quartile of the sources' widths; 0 where fewer than 3 are bright
    and unsaturated enough to measure. See :func:`psf_shape`, which also gives the profile's wings."""
    return psf_shape(data, max_stars)[0]


def psf_shape(data: np.ndarray, max_stars: int = 300) -> tuple[float, float]:
    """The stars' FWHM (px) and Moffat beta on a plane (H, W) or an image (C, H, W; its luminance)
    with its stars, nominally in [0, 1]; (0, 0) where fewer than 3 stars are bright and unsaturated
    enough to measure, beta 0 where their wings cannot be measured.

    Each star's FWHM is the diameter of the disc as large as its connected pixels at or above half
    its peak (above a 128 px mesh background), measured on a central crop (:func:`central_crop`),
    brightest ``max_stars`` first; the FWHM is their lower quartile. No high-pass: a wide image from
    softer optics, upsampled onto the narrow grid, keeps its whole profile (SEP's ``a`` after a
    high-pass gave 0.8 px for stars of 18 px). Measured on the benchmark's registered wide images:
    6.7 px for 6.6, 8.7 for 8.8, 10.7 for 10.5, 18.7 for 18, 22.8 for 22.5.

    Beta is that of a Moffat profile, I(r) = A (1 + r^2 / alpha^2)^-beta with alpha set by the
    FWHM, fitted to the median profile of the same stars (the median in each half-pixel ring, so
    that neighbours and hot pixels do not count; see :func:`_moffat_beta`): small beta means bright
    wings, large beta a Gaussian (30, the upper bound: no wings); 0 from fewer than
    MIN_BETA_STARS stars.
    """
    import sep

    crop, _ = central_crop(data)  # cropped first: the luminance of the crop only
    plane = np.array(luminance(crop) if crop.ndim == 3 else crop, dtype=np.float32, order="C")
    try:
        bkg = sep.Background(plane, bw=128, bh=128)
        sub = plane - bkg.back()
        rms = max(float(bkg.globalrms), 1e-12)
        objs = sep.extract(sub, 5.0, err=rms, minarea=5, deblend_cont=0.005)
    except Exception:  # SEP's buffers overflow on extremely crowded or flat data: no measure
        return 0.0, 0.0
    # unsaturated (under half the brightest pixel) and with half their peak 5 noise sigmas up
    keep = (objs["peak"] < 0.5 * float(np.max(plane))) & (objs["peak"] > 10 * rms)
    objs = objs[keep][np.argsort(-objs["peak"][keep])][:max_stars]
    r = 40  # a star of up to 80 px FWHM: 8x the narrow image's, the widest DetailFit matches
    widths = []
    for x, y, peak in zip(objs["x"], objs["y"], objs["peak"]):
        x, y = int(round(x)), int(round(y))
        y0, x0 = max(0, y - r), max(0, x - r)
        above = sub[y0:y + r + 1, x0:x + r + 1] >= 0.5 * peak
        labels, _ = ndimage.label(above)
        own = labels[y - y0, x - x0]  # the star's own half-max region, not a neighbour's
        if own:
            widths.append(2.0 * np.sqrt(np.count_nonzero(labels == own) / np.pi))
    if len(widths) < 3:
        return 0.0, 0.0
    # the lower quartile: stars are the smallest sources, and a galaxy or a blend only comes larger
    # (a galaxy field's soft wide image, 5 sources: median 23.5 px, lower quartile 18.7, stars 18)
    fwhm = float(np.percentile(widths, 25))
    return fwhm, _moffat_beta(plane, objs, fwhm)


# Beta is fitted on at least this many stars, inside this many FWHMs of their centres. On the one
# benchmark image with fewer (a soft wide image at ratio 5 on the narrow grid: 63 stars of 23 px)
# the median profile came out at 2.5 for 3.5, and its kernel made the result worse (0.206 -> 0.221
# % of sky, against 0.191 with the true beta): the Gaussian is kept there.
MIN_BETA_STARS = 100
BETA_REACH_FWHM = 1.5


def _moffat_beta(plane: np.ndarray, objs, fwhm: float) -> float:
    """Moffat beta of the median profile of the stars ``objs`` (SEP records) on ``plane`` (H, W):
    each above its own sky (the median of a ring 4-5 ``fwhm`` out) and divided by its peak; fitted
    in log space out to 1.5 ``fwhm`` where above 1 % of the peak, alpha tied to ``fwhm``; 0 with
    fewer than MIN_BETA_STARS stars whole in the frame.

    The sky is each star's own (a 128 px mesh background takes in part of the wings of stars
    10-20 px wide), the fit stays inside 1.5 FWHM (farther out, neighbours and nebula lift the
    median ring of a crowded soft image: 2.0 measured for 3.5 out to 3 FWHM), and in log space so
    that the shoulder, where a Moffat and a Gaussian differ, counts as much as the core. Measured
    on the benchmark's images (beta 3.5): narrow images 3.4, wide images on their own grid 2.8-3.6,
    registered onto the narrow grid 3.5 (FWHM 10.7 px), 4.9 (7 px; the resampling rounds the
    core) and 2.5 (23 px, 63 stars)."""
    from scipy.optimize import least_squares

    reach = int(np.clip(4 * fwhm, 8, 80))
    outer = int(np.ceil(1.25 * reach))
    h, w = plane.shape
    radii, values = [], []
    for x, y in zip(objs["x"], objs["y"]):
        xi, yi = int(round(x)), int(round(y))
        if not (outer <= xi < w - outer and outer <= yi < h - outer):
            continue  # whole rings only
        yy, xx = np.mgrid[yi - outer:yi + outer + 1, xi - outer:xi + outer + 1]
        r = np.hypot(xx - x, yy - y)
        cut = plane[yi - outer:yi + outer + 1, xi - outer:xi + outer + 1]
        sky = float(np.median(cut[r >= reach]))
        peak = float(cut[r <= 1.5].max()) - sky
        if peak <= 0:
            continue
        inner = r <= BETA_REACH_FWHM * fwhm + 0.5
        radii.append(r[inner])
        values.append((cut[inner] - sky) / peak)
    if len(radii) < MIN_BETA_STARS:
        return 0.0
    ring = (np.concatenate(radii) * 2).astype(np.int64)  # half-pixel rings
    index = np.unique(ring)
    p_ = np.asarray(ndimage.median(np.concatenate(values), labels=ring, index=index))
    r_ = (index + 0.5) / 2.0
    use = (r_ <= BETA_REACH_FWHM * fwhm) & (p_ > 0.01)
    if use.sum() < 4:
        return 0.0
    r_, log_p = r_[use], np.log(p_[use])

    def resid(q):
        amp, beta = q
        alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
        return np.log(amp) - beta * np.log1p((r_ / alpha) ** 2) - log_p

    fit = least_squares(resid, [1.0, 3.0], bounds=([0.2, 1.01], [5.0, 30.0]))
    return float(fit.x[1]) if fit.success else 0.0


def replace_hot_pixels(plane: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """A copy of ``plane`` (H, W) with the 3x3 px around each hot pixel at ``xy`` ((n, 2) x, y px)
    replaced by the median of the 16 px ring just outside them: what a resampling would otherwise
    spread into a blob of a star's size."""
    out = np.array(plane, dtype=np.float32, copy=True)
    if xy is None or len(xy) == 0:
        return out
    h, w = out.shape
    x = np.clip(np.round(xy[:, 0]).astype(int), 0, w - 1)
    y = np.clip(np.round(xy[:, 1]).astype(int), 0, h - 1)
    ring = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if max(abs(dy), abs(dx)) == 2]
    values = np.stack([plane[np.clip(y + dy, 0, h - 1), np.clip(x + dx, 0, w - 1)] for dy, dx in ring], 1)
    level = np.median(values, axis=1).astype(np.float32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out[np.clip(y + dy, 0, h - 1), np.clip(x + dx, 0, w - 1)] = level
    return out


def star_radii(det: Detection, stars: np.ndarray, k: float, growth: float, max_radius: float,
               saturated: np.ndarray, beta: float = 3.0, depth: float = 0.5) -> np.ndarray:
    """Mask radius of each star (px): where a Moffat profile of the star's flux falls to
    ``depth`` x the background RMS (halos of bright stars reach far), at least k x its
    shape; ``growth`` scales the flux-dependent part. Saturated stars get 1.5x.

    Parameters
    ----------
    det : Detection
        The sources.
    stars : ndarray
        Indices into ``det`` of the sources taken as stars.
    k : float
        Smallest radius in units of each star's semi-major axis.
    growth : float
        Scales the flux-dependent reach.
    max_radius : float
        Largest radius (px).
    saturated : ndarray
        bool per source of ``det``.
    beta, depth : float
        Moffat beta of the profile, and the level (background RMS) the radius reaches.

    Returns
    -------
    ndarray
        float radius (px) per star.
    """
    a = det.a[stars]
    fwhm = 2.355 * max(float(np.median(det.a[stars])), 0.5)
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    peak = np.maximum(det.flux[stars], 0.0) * (beta - 1.0) / (np.pi * alpha * alpha)
    ratio = np.maximum(peak / (depth * det.background_rms), 1.0)
    reach = alpha * np.sqrt(np.maximum(ratio ** (1.0 / beta) - 1.0, 0.0)) * growth + 1.5
    r = np.maximum(reach, k * a)
    r = np.where(saturated[stars], 1.5 * r, r)
    return np.minimum(r, max_radius)


def star_mask(shape: tuple[int, int], det: Detection, k: float = 3.5, growth: float = 1.0,
              max_radius: float = 80.0, saturation: float = 0.95, plane: np.ndarray | None = None,
              compact: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the stars in ``det``: (mask (H, W) bool, indices of the sources taken as stars).

    Each star gets a disc of radius :func:`star_radii` (elliptical for elongated
    stars), plus its own segmentation footprint dilated by 2 px. A source up to 0.6 x
    ``compact`` times the median size is a star; a larger one only if it is saturated, or (up
    to twice ``compact`` times the median size) at least 0.3 x as concentrated (peak / flux) as
    the median source, or as small and concentrated as the stars of its brightness
    (:func:`_typical_by_brightness`, PEER_SIZE, PEER_CONCENTRATION): bright stars grow in
    isophotal size, galaxies and nebula knots are large *and* diffuse and are left alone.

    Parameters
    ----------
    shape : tuple of int
        (H, W) of the mask.
    det : Detection
        Sources found with ``segmentation=True``.
    k, growth, max_radius : float
        See :func:`star_radii`.
    saturation : float
        A source whose peak reaches this value is saturated (larger masks, always a star).
    plane : ndarray, optional
        float32 (H, W) whose value at each source's centre judges saturation (default: the
    detection's peaks).
    compact : float
        Size limit of a star in units of the median source size.

    Returns
    -------
    mask : ndarray
        (H, W) bool, True on stars.
    stars : ndarray
        Indices into ``det`` of the sources taken as stars.
    """
    import sep

    h, w = shape
    mask = np.zeros(shape, dtype=bool)
    if len(det) == 0:
        return mask, np.zeros(0, np.int64)
    # hot pixels are no stars: a saturated one took a bright star's halo mask (300 of them masked a
    # third of an 800x600 frame); they are masked by their own footprint, and do not count in the
    # median size and concentration of the stars
    hot = det.hot_pixels()
    if hot.all():
        hot[:] = False
    med_a = float(np.median(det.a[~hot]))
    if plane is None:
        saturated = det.peak >= saturation
    else:
        saturated = plane[np.clip(det.y.round().astype(int), 0, h - 1),
                          np.clip(det.x.round().astype(int), 0, w - 1)] >= saturation
    # a star is compact; larger sources are stars only if as concentrated as stars (bright stars
    # grow in isophotal size, galaxies and nebula knots are large *and* diffuse): against the median
    # source, or against the stars of the same brightness (:func:`_typical_by_brightness`), which is
    # how the bright stars of a soft image are told from its nebula
    conc = det.peak / np.maximum(det.flux, 1e-30)
    peer_a = _typical_by_brightness(det.peak, det.a, ~hot, 25, +1)
    peer_conc = _typical_by_brightness(det.peak, conc, ~hot, 75, -1)
    stars = np.flatnonzero(~hot & (saturated | (det.a <= 0.6 * compact * med_a) |
                                   ((det.a <= 2 * compact * med_a) & (conc >= 0.3 * float(np.median(conc[~hot])))) |
                                   ((det.a <= PEER_SIZE * peer_a) & (conc >= PEER_CONCENTRATION * peer_conc))))
    if hot.any():
        mask |= _footprints(det, np.flatnonzero(hot), grow=1)
    if stars.size == 0:
        return mask, stars
    radius = star_radii(det, stars, k, growth, max_radius, saturated)
    a, b = det.a[stars], det.b[stars]
    m8 = np.zeros(shape, np.uint8)
    # an ellipse with semi-axes (r, r b / a): r / a in units of the source's own shape
    sep.mask_ellipse(m8, det.x[stars], det.y[stars], a, np.maximum(b, 0.3 * a), det.theta[stars],
                     r=radius / np.maximum(a, 1e-3))
    mask |= m8.astype(bool)
    mask |= _footprints(det, stars, grow=2)
    return mask, stars


# A source's typical size and concentration are taken over this many sources nearest in peak; a
# source is a star like them up to PEER_SIZE x their size (25th percentile) and down to
# PEER_CONCENTRATION x their concentration (75th percentile). Measured on a soft wide image upsampled
# 5x against its true star list: isolated bright stars at 1.03-1.41 and 0.66-0.98 of their peers,
# bright stars on a nebula up to 1.71 in size (the nebula widens the isophote), the nebula's knots
# (no star brighter than a tenth of their peak) at 0.25-0.54 in concentration. 116 of its 123 bright
# stars are now masked, 31 before.
BRIGHTNESS_NEIGHBOURS = 25
PEER_SIZE = 2.0
PEER_CONCENTRATION = 0.6


def _typical_by_brightness(peak: np.ndarray, value: np.ndarray, use: np.ndarray, percentile: float,
                           trend: int) -> np.ndarray:
    """Per source, what ``value`` (a size or a concentration, > 0) is for the ``use`` sources of its
    brightness: over the BRIGHTNESS_NEIGHBOURS of them nearest in peak, the line of log value on log
    peak, at the source's peak, plus the ``percentile`` of their residuals; NaN without any. The
    line's slope has the sign of ``trend`` (+1 rising, -1 falling with brightness) or is 0: a few
    galaxies among the faintest sources, large and diffuse, would tilt it the other way and make a
    galaxy look like a star of its brightness.

    A star's isophote takes in more of its profile the brighter it is: its size grows and its peak /
    flux falls with brightness, 4-7x and 30x from the faintest sources to the brightest soft stars of
    a wide image upsampled 5x. Judged against the median source, those bright stars were taken for
    diffuse nebula and left in the starless image whole. The line follows the trend to the ends,
    where the neighbours are all fainter (or brighter); a percentile on the stars' side (small sizes,
    high concentrations) keeps the galaxies among the brightest sources of a galaxy cluster with few
    stars from setting what a star of that brightness looks like."""
    out = np.full(peak.shape, np.nan)
    idx = np.flatnonzero(use & (peak > 0) & (value > 0))
    if idx.size == 0:
        return out
    order = idx[np.argsort(peak[idx], kind="stable")]
    k = min(BRIGHTNESS_NEIGHBOURS, order.size)
    log_peak = np.log(np.maximum(peak, 1e-30))
    lp, lv = log_peak[order], np.log(value[order])
    wp = np.lib.stride_tricks.sliding_window_view(lp, k)  # (n - k + 1, k), no copy
    wv = np.lib.stride_tricks.sliding_window_view(lv, k)
    dp = wp - wp.mean(axis=1, keepdims=True)
    slope = (dp * (wv - wv.mean(axis=1, keepdims=True))).sum(axis=1) / np.maximum((dp * dp).sum(axis=1), 1e-12)
    slope = np.maximum(slope * trend, 0.0) * trend
    level = wv.mean(axis=1) - slope * wp.mean(axis=1)
    spread = np.percentile(wv - (level[:, None] + slope[:, None] * wp), percentile, axis=1)
    # every source takes the window centred on the rank its peak falls at, clipped at both ends
    rank = np.clip(np.searchsorted(lp, log_peak), 0, order.size - 1)
    win = np.clip(rank - k // 2, 0, order.size - k)
    out[:] = np.exp(level[win] + slope[win] * log_peak + spread[win])
    return out


def _footprints(det: Detection, index: np.ndarray, grow: int) -> np.ndarray | bool:
    """(H, W) bool: the segmentation footprints of the sources at ``index``, widened by ``grow`` px;
    False without a segmentation map."""
    if det.segmentation is None:
        return False
    ids = np.zeros(len(det) + 1, bool)
    ids[index + 1] = True
    return ndimage.binary_dilation(ids[np.clip(det.segmentation, 0, len(det))], iterations=grow)


def _sum_2x2(a: np.ndarray) -> np.ndarray:
    """Sums of 2x2 blocks over the last two axes (..., H, W) -> (..., ceil(H/2), ceil(W/2)); an odd
    edge row or column is repeated."""
    ph, pw = a.shape[-2] % 2, a.shape[-1] % 2
    if ph or pw:
        a = np.pad(a, [(0, 0)] * (a.ndim - 2) + [(0, ph), (0, pw)], mode="edge")
    # four strided whole-array adds: numpy's sum over two short strided axes runs element by element,
    # 8x slower (1.2 s against 0.15 for a 6000x4000 RGB image; the fill's pyramid sums it 7 times)
    out = a[..., 0::2, 0::2] + a[..., 1::2, 0::2]
    out += a[..., 0::2, 1::2]
    out += a[..., 1::2, 1::2]
    return out.astype(np.float32, copy=False)


def _bilinear_at(small: np.ndarray, ys: np.ndarray, xs: np.ndarray, f: int) -> np.ndarray:
    """Bilinear interpolation between block centres (block i covers pixels f i .. f i + f - 1) of a
    grid (h, w), at full-resolution pixels (ys, xs): what ``mmt._upsample_blocks`` gives there."""
    from .mmt import block_weights

    i0, i1, wy = block_weights(ys, small.shape[0], f)
    j0, j1, wx = block_weights(xs, small.shape[1], f)
    top = small[i0, j0] * (1 - wx) + small[i0, j1] * wx
    bottom = small[i1, j0] * (1 - wx) + small[i1, j1] * wx
    return top * (1 - wy) + bottom * wy


def fill_masked(data: np.ndarray, mask: np.ndarray, levels: int = 7, min_weight: float = 0.25,
                ignore: np.ndarray | None = None) -> np.ndarray:
    """Replace masked pixels of a plane (H, W) or image (C, H, W) by the surrounding background.

    Normalised convolution on a pyramid: at level l the unmasked pixels are summed in 2^l blocks
    and blurred; a masked pixel takes the finest level where enough unmasked pixels surround it,
    so small masks are filled locally and large ones from farther out. Unmasked pixels are
    returned unchanged. Every level is only interpolated at the masked pixels still waiting for
    a value (a tenth of a star field), and the mask's pyramid is shared by the channels.
    ``ignore`` ((H, W) bool, optional) marks pixels that are kept as they are but not used to fill
    (a trail next to a star would otherwise be smeared into the star's whole mask).
    """
    planes = data[None] if data.ndim == 2 else data
    out = planes.astype(np.float32, copy=True)
    if mask.any():
        _fill_pyramid(planes, mask, out, levels, min_weight, mask if ignore is None else mask | ignore)
    return out[0] if data.ndim == 2 else out


def _fill_pyramid(planes, mask, out, levels, min_weight, unused):
    ys, xs = np.nonzero(mask)
    ys, xs = ys.astype(np.int32), xs.astype(np.int32)
    den_sum = (~unused).astype(np.float32)
    num_sum = np.where(unused, np.float32(0), planes.astype(np.float32, copy=False))
    waiting = np.arange(ys.size)
    for level in range(levels + 1):
        f = 2 ** level
        if level:
            den_sum, num_sum = _sum_2x2(den_sum), _sum_2x2(num_sum)
        den = ndimage.gaussian_filter(den_sum, 1.5, mode="reflect")
        wy, wx = ys[waiting], xs[waiting]
        ready = _bilinear_at(den, wy, wx, f) >= min_weight * f * f
        if ready.any():
            wy, wx = wy[ready], wx[ready]
            for c in range(planes.shape[0]):
                num = ndimage.gaussian_filter(num_sum[c], 1.5, mode="reflect")
                if f == 1:  # full resolution: divide at the pixels only
                    out[c, wy, wx] = num[wy, wx] / np.maximum(den[wy, wx], 1e-12)
                else:
                    est = np.where(den > 0, num / np.maximum(den, 1e-12), np.float32(0))
                    out[c, wy, wx] = _bilinear_at(est, wy, wx, f)
            waiting = waiting[~ready]
        if not waiting.size:
            return
    valid = ~unused
    for c in range(planes.shape[0]):
        out[c, ys[waiting], xs[waiting]] = float(np.median(planes[c][valid])) if valid.any() else 0.0


def remove_stars(data: np.ndarray, sigma: float = 3.0, minarea: int = 5, k: float = 3.5, growth: float = 1.0,
                 max_radius: float = 80.0, saturation: float = 0.95) -> tuple[np.ndarray, np.ndarray, int]:
    """Classical star removal on an image (C, H, W): (starless (C, H, W), mask (H, W) bool, stars found).

    Detection runs on the luminance, saturation is judged on the brightest channel; the same mask
    is filled in every channel.

    Parameters
    ----------
    data : ndarray
        float32 (C, H, W), values nominally in [0, 1].
    sigma, minarea : float, int
        Detection settings, see :func:`detect`.
    k, growth, max_radius, saturation : float
        Mask settings, see :func:`star_mask`.

    Returns
    -------
    starless : ndarray
        float32 (C, H, W), masked pixels filled from their surroundings.
    mask : ndarray
        (H, W) bool.
    n_stars : int
        Stars found.
    """
    lum = luminance(data)
    det = detect(lum, sigma, minarea, segmentation=True, refine=False, highpass=True)
    # Stars larger than the 9 px high-pass (an upsampled wide image, a long focal length) are cut down
    # by it: their measured size then grows with a coarser high-pass (x1.8 in a wide image upsampled
    # 5x, at most x1.16 for ordinary frames), and the detection is redone at that scale.
    if len(det):
        # median sizes are measured on a central crop (SIZE_CROP)
        crop, (cy, cx) = central_crop(lum)
        # the first detection already high-passed the whole frame at this scale: its sources inside
        # the crop are the crop's (a second detection on the crop cost 1 s on a 24 Mpx frame)
        inside = (det.x >= cx) & (det.x < cx + crop.shape[1]) & (det.y >= cy) & (det.y < cy + crop.shape[0])
        fine_a = det.a[inside]
        coarse = detect(crop, sigma, minarea, refine=False, highpass=5)
        a5 = float(np.median(coarse.a)) if len(coarse) else 0.0
        if fine_a.size and a5 > 1.4 * float(np.median(fine_a)):
            # soft stars (a wide image from slower optics, upsampled 3-5x) are still cut by a 33 px
            # high-pass: coarsen until their size stops growing (x1.15), as far as 257 px windows
            layers, a_k = 5, a5
            while layers < 8:
                wider = detect(crop, sigma, minarea, refine=False, highpass=layers + 1)
                a_next = float(np.median(wider.a)) if len(wider) else 0.0
                if a_next <= 1.15 * a_k:
                    break
                layers, a_k = layers + 1, a_next
            layers = max(layers, int(np.clip(np.round(np.log2(8 * a_k)), 4, 8)))
            det = detect(lum, sigma, minarea, segmentation=True, refine=False, highpass=layers)
    # a star is saturated where any channel clipped (the luminance of a clipped red core is lower)
    brightest = lum if data.shape[0] == 1 else data.max(axis=0)
    mask, stars = star_mask(lum.shape, det, k, growth, max_radius, saturation, plane=brightest)
    if stars.size == 0:
        return data.copy(), mask, 0
    # a trail stays in the starless image (the steps after find it as a defect), but does not fill
    # the stars it passes: their fill would carry its light over their whole mask, unmarked
    streaks = det.streaks(stars)
    ignore = _footprints(det, streaks, grow=2) if streaks.size else None
    return fill_masked(data, mask, ignore=ignore), mask, int(stars.size)
