"""Trust decided per region: where the registered wide image has no data (:func:`uncovered`),
the regions where it holds structure the narrow one lacks (a reflection, a halo:
:func:`wide_only_regions`), and its gain across the field (its lens's vignetting: :func:`fit_gain`).

Apart from :func:`uncovered` (a full-resolution (H, W) plane), everything here works on the
detail bands of :class:`msgr_nodes.ops.gradient.Bands`: float32 (h, w) band-passes of both images
at one working resolution, zero-mean, with a bool (h, w) mask ``ok`` of the pixels that may be
fitted. Gradients do not reach these bands, so a slope measured on
a tile is the wide -> narrow gain there, and a band's energy is structure, not background.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats

# Tiles along the short side of the frame: enough to see a vignetted corner, few enough that each
# holds thousands of band samples.
TILES_SHORT = 6
# Gain-map model selection: the bowl must beat a constant gain at this false-alarm probability (F
# test on the tiles' slopes) and vary by at least this much over the frame. Below 8 % a gain
# pattern cannot be told from the narrow image's own flat-field error (a ring of -3 to -5 % that
# multiplies its sky and nebula, part of the gradient the difference must keep: correcting it
# doubled the residual on such a scene), while a fast wide lens's vignetting (-35 % in its
# corners) varies by 15-20 % over a narrow frame a third of its width.
GAIN_ALARM = 1e-4
GAIN_MIN_RANGE = 0.08
# Tiles the bowl must rest on, counted by their weights ((sum w)^2 / sum w^2): a galaxy field whose
# few bright tiles carry the fit would draw a bowl from them alone.
MIN_TILES = 12
# Independent band samples a tile must hold for its slope to tell the local gain.
MIN_SAMPLES = 50
# Tiles whose wide band holds less signal than this many times its noise (variances) tell nothing
# of the local gain.
SIGNAL_TO_NOISE = 3.0
# A region of the band's outliers holds structure of the wide image alone when the wide image's own
# energy there (beyond the noise, scaled by the slope) is this many times the narrow one's own; only
# regions of the size of the model's scales count (smaller ones barely reach the model).
WIDE_ONLY_EXCESS = 3.0


def uncovered(wide: np.ndarray, min_area: int = 1024) -> np.ndarray | None:
    """(H, W) bool: the wide image's constant patches of ``min_area`` px or more, widened by a few
    px: where its registration had no data and filled one value (0, or its median, as Register
    does), or where it is clipped flat; None where there are none. Sky never holds a 3x3 patch of
    one value: noise sees to that.

    Frames above 4 Mpx are searched on every 4th pixel (a patch of that size is constant there too),
    at a sixteenth of the cost; the mask is widened by the step."""
    step = 4 if wide.size > 4_000_000 else 1
    sub = wide[::step, ::step]
    flat = ndimage.maximum_filter(sub, 3) == ndimage.minimum_filter(sub, 3)
    if not flat.any():
        return None
    labels, _ = ndimage.label(flat)
    big = np.bincount(labels.ravel()) >= min_area / step ** 2
    big[0] = False
    if not big.any():
        return None
    mask = ndimage.binary_dilation(big[labels], iterations=2 if step == 1 else 1)
    if step > 1:
        mask = ndimage.binary_dilation(upsample_mask(mask, wide.shape, step), iterations=2)
    return mask


def black_borders(data: np.ndarray) -> float:
    """The share of a plane (H, W) or image (C, H, W) that is an uncropped stack's black border:
    patches black in every channel (zero or less), constant as :func:`uncovered` finds them, that
    touch the frame's edge; 0.0 where there are none. Only frames with a black pixel on an edge are
    searched (the edges are read first: a fraction of a millisecond on a 24 Mpx frame)."""
    image = data[None] if data.ndim == 2 else data
    edges = (image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1])
    if not any((e.max(axis=0) <= 0).any() for e in edges):
        return 0.0
    plane = image.max(axis=0)
    mask = uncovered(plane)
    if mask is None:
        return 0.0
    labels, count = ndimage.label(mask & (plane <= 0))
    if not count:
        return 0.0
    touching = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    touching = touching[touching > 0]
    return float(np.isin(labels, touching).mean()) if touching.size else 0.0


def upsample_mask(mask: np.ndarray, shape: tuple[int, int], factor: int) -> np.ndarray:
    """A bool mask (h, w) of ``factor`` px blocks brought to a (H, W) frame; the remainder rows and
    columns take the last block's value."""
    if factor == 1 and mask.shape == tuple(shape):
        return mask
    up = np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)[:shape[0], :shape[1]]
    full = np.zeros(shape, bool)
    full[:up.shape[0], :up.shape[1]] = up
    full[up.shape[0]:, :up.shape[1]] = up[-1:]
    full[:, up.shape[1]:] = full[:, up.shape[1] - 1:up.shape[1]]
    return full


@dataclass
class Tiles:
    """Per-tile measurements on one detail band (working px); arrays are (ny, nx)."""

    rows: np.ndarray          # (ny + 1,) tile edges along y
    cols: np.ndarray          # (nx + 1,) tile edges along x
    used: np.ndarray          # bool: enough fittable pixels to judge
    var_narrow: np.ndarray    # band variances and covariance of the tile
    var_wide: np.ndarray
    covariance: np.ndarray
    count: np.ndarray         # samples fitted

    @property
    def shape(self) -> tuple[int, int]:
        return self.used.shape

    def narrow_noise(self, slope: float) -> float:
        """The narrow band's noise variance: where the local slope is the frame's, var(narrow) -
        b cov, about the same in every tile (their median)."""
        return max(float(np.median((self.var_narrow - slope * self.covariance)[self.used])), 0.0)

    def wide_noise(self, slope: float) -> float:
        """The wide band's noise variance: var(wide) - cov / b, likewise."""
        return max(float(np.median((self.var_wide - self.covariance / slope)[self.used])), 0.0)

    def slopes(self, slope: float) -> tuple[np.ndarray, np.ndarray]:
        """Each tile's wide -> narrow slope, corrected for the wide band's noise, and its weight
        (1 / variance, up to one common factor); NaN where the tile's signal is too faint to tell.

        A least-squares slope is pulled towards 0 by the noise of the wide band (by the share of
        the wide band's variance that is noise): on a frame of bright and faint nebula that bias
        draws a false gain pattern. The noise variance is about the same in every tile, and where
        the local slope is the frame's it is var(wide) - cov / b; its median over the tiles is
        taken as the noise, and each slope is cov / (var(wide) - noise)."""
        u = self.used
        if not u.any() or slope <= 0:
            return np.full(self.shape, np.nan), np.zeros(self.shape)
        noise = self.wide_noise(slope)
        signal = self.var_wide - noise
        with np.errstate(invalid="ignore", divide="ignore"):
            good = u & (signal > SIGNAL_TO_NOISE * max(noise, 1e-30))
            bt = np.where(good, self.covariance / signal, np.nan)
            resid = self.var_narrow - 2 * bt * self.covariance + bt * bt * self.var_wide
            weight = np.where(good, self.count * signal / np.maximum(resid, 1e-30), 0.0)
        if good.any():
            # in bright tiles the residual is structure more than noise, so the statistical weight
            # overstates them: the median tile's weight is added as a floor to each slope's variance
            ref = float(np.median(weight[good]))
            weight = weight * ref / (weight + ref)
        return bt, weight

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Tile centres (y, x) in working px, each (ny, nx)."""
        yc = 0.5 * (self.rows[:-1] + self.rows[1:])
        xc = 0.5 * (self.cols[:-1] + self.cols[1:])
        return np.meshgrid(yc, xc, indexing="ij")


def measure_tiles(narrow: np.ndarray, wide: np.ndarray, ok: np.ndarray, edge: int = 0,
                  tiles_short: int = TILES_SHORT) -> Tiles:
    """The band variances and covariance of each tile of a pair of detail bands.

    Parameters
    ----------
    narrow, wide : ndarray
        float32 (h, w) zero-mean detail bands of the two images on one working grid.
    ok : ndarray
        (h, w) bool, the pixels that may be fitted.
    edge : int
        Pixels along the frame's edges left out: there a band-pass of the gradients, mirrored at
        the edge, is no longer free of them.
    tiles_short : int
        Tiles along the short side (square tiles).
    """
    h, w = narrow.shape
    if edge:
        ok = ok.copy()
        ok[:edge], ok[-edge:], ok[:, :edge], ok[:, -edge:] = False, False, False, False
    side = max(16, min(h, w) // tiles_short)
    rows = np.linspace(0, h, max(1, h // side) + 1).round().astype(int)
    cols = np.linspace(0, w, max(1, w // side) + 1).round().astype(int)
    shape = (rows.size - 1, cols.size - 1)
    used = np.zeros(shape, bool)
    out = {k: np.full(shape, np.nan) for k in ("var_narrow", "var_wide", "covariance", "count")}
    for i in range(shape[0]):
        for j in range(shape[1]):
            sl = (slice(rows[i], rows[i + 1]), slice(cols[j], cols[j + 1]))
            m = ok[sl]
            if m.sum() < 0.25 * m.size:  # mostly masked (saturated, defects, the frame's edge)
                continue
            n, x = narrow[sl][m].astype(np.float64), wide[sl][m].astype(np.float64)
            sxx, sn = float(x @ x), float(n @ n)
            if sxx <= 0 or sn <= 0:
                continue
            out["var_narrow"][i, j] = sn / n.size
            out["var_wide"][i, j] = sxx / n.size
            out["covariance"][i, j] = float(n @ x) / n.size
            out["count"][i, j] = n.size
            used[i, j] = True
    return Tiles(rows, cols, used, **out)


def wide_only_regions(narrow: np.ndarray, wide: np.ndarray, outliers: np.ndarray, slope: float,
                      tiles: Tiles, min_size: int) -> np.ndarray | None:
    """(h, w) bool: the connected regions of a band's outliers that hold structure of the wide image
    alone (a reflection, a halo), or None where there are none.

    With narrow = b s + q and wide = s + g on the band (s the shared sky, q and g each image's own),
    a region's moments give its own energies: q^2 = <n^2> - b <n w> and (b g)^2 = b^2 <w^2> - b <n w>,
    each less the band's noise (the tiles' medians). A region is the wide image's alone when (b g)^2
    is WIDE_ONLY_EXCESS times |q^2| or more; where the narrow image holds the more, it is its own
    structure (its gradients' detail, a trail), which the difference keeps.

    Parameters
    ----------
    narrow, wide : ndarray
        float32 (h, w) zero-mean detail bands of the two images on one working grid.
    outliers : ndarray
        (h, w) bool, the band's outliers (pixels whose residual narrow - b wide stands far out).
    slope : float
        The frame's wide -> narrow slope b.
    tiles : Tiles
        The band's tiles, for its noise.
    min_size : int
        Smallest region (working px) that counts.
    """
    if not outliers.any() or slope <= 0 or not tiles.used.any():
        return None
    labels, count = ndimage.label(outliers)
    index = np.arange(1, count + 1)
    size = ndimage.sum(np.ones(labels.shape, np.float32), labels, index)
    n, w = narrow.astype(np.float64), wide.astype(np.float64)
    nn, ww, nw = (ndimage.mean(v, labels, index) for v in (n * n, w * w, n * w))
    own_narrow = nn - slope * nw - tiles.narrow_noise(slope)
    own_wide = slope * slope * (ww - tiles.wide_noise(slope)) - slope * nw
    wide_only = index[(size >= min_size) & (own_wide > 0) & (own_wide >= WIDE_ONLY_EXCESS * np.abs(own_narrow))]
    return np.isin(labels, wide_only) if wide_only.size else None


def _bowl_coordinates(fx: np.ndarray, fy: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Offsets from the frame's centre in half-diagonals, from offsets in frame fractions."""
    h, w = shape
    half_diagonal = 0.5 * np.hypot(w, h)
    return fx * w / half_diagonal, fy * h / half_diagonal


def _bowl(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(u), u, v, u * u + v * v], axis=-1)


@dataclass
class GainMap:
    """The wide image's relative gain over the frame, g = c0 + c1 u + c2 v + c3 (u^2 + v^2) with
    c3 > 0, u and v the offsets from the frame's centre in half-diagonals: the local slope is
    b g(x, y). A lens's vignetting dims the wide image away from its optical centre, wherever that
    lies on the narrow frame, so the slope grows as a round bowl about it."""

    coef: np.ndarray          # (4,)
    aspect: tuple[int, int]   # (H, W) of the frame measured, for the bowl's shape
    low: float                # smallest and largest gain over the frame
    high: float
    f_stat: float             # F statistic of the bowl against a constant
    tiles: int                # tiles fitted

    def evaluate(self, shape: tuple[int, int]) -> np.ndarray:
        """g on a (H, W) grid, float32."""
        h, w = shape
        u, _ = _bowl_coordinates((np.arange(w, dtype=np.float64) + 0.5) / w - 0.5, np.zeros(1), self.aspect)
        _, v = _bowl_coordinates(np.zeros(1), (np.arange(h, dtype=np.float64) + 0.5) / h - 0.5, self.aspect)
        c = self.coef
        # the two axes' terms apart (small), summed straight into float32: no float64 frame
        rows = (c[0] + c[2] * v + c[3] * v * v).astype(np.float32)
        cols = (c[1] * u + c[3] * u * u).astype(np.float32)
        return rows[:, None] + cols[None, :]


def fit_gain(tiles: Tiles, slope: float, working_shape: tuple[int, int], band_sigma: float) -> GainMap | None:
    """A vignetting gain map (:class:`GainMap`) from the tiles' slopes, or None when a constant gain
    explains them.

    The tiles' noise-corrected slopes / ``slope`` are fitted by weighted least squares (weights from
    each slope's variance, with rounds of 3-sigma rejection), and the bowl is kept only if it opens
    upwards (the wide image dims away from its centre), an F test against a constant gain passes at
    GAIN_ALARM, and the map varies by GAIN_MIN_RANGE or more over the frame.

    Parameters
    ----------
    tiles : Tiles
        Per-tile measurements (:func:`measure_tiles`).
    slope : float
        The frame's slope b; the map is relative to it.
    working_shape : (int, int)
        (h, w) of the working grid the tiles were measured on.
    band_sigma : float
        The band's scale (working px): a tile holds about (side / (2 band_sigma))^2 independent
        samples of it, and fewer than MIN_SAMPLES give slopes whose scatter draws bowls of its own
        (on an 800x600 frame, a 24 % bowl on a pair without vignetting).
    """
    side = float(np.median(np.diff(tiles.rows)))
    if slope <= 0 or (side / (2 * band_sigma)) ** 2 < MIN_SAMPLES:
        return None
    bt, weight = tiles.slopes(slope)
    sel = np.isfinite(bt) & (weight > 0)
    if sel.sum() < MIN_TILES:
        return None
    yc, xc = tiles.centres()
    u, v = _bowl_coordinates(xc[sel] / working_shape[1] - 0.5, yc[sel] / working_shape[0] - 0.5, working_shape)
    g, wt = bt[sel] / slope, weight[sel]
    A = _bowl(u, v)
    keep = np.ones(g.size, bool)
    for _ in range(3):
        sw = np.sqrt(wt[keep])
        coef = np.linalg.lstsq(A[keep] * sw[:, None], g[keep] * sw, rcond=None)[0]
        r = (g - A @ coef) * np.sqrt(wt)
        scale = 1.4826 * float(np.median(np.abs(r[keep]))) + 1e-30
        new = np.abs(r) <= 3 * scale
        if new.sum() < MIN_TILES or np.array_equal(new, keep):
            break
        keep = new
    n = int(keep.sum())
    gk, wk = g[keep], wt[keep]
    if float(wk.sum()) ** 2 / float(np.sum(wk * wk)) < MIN_TILES:
        return None  # a few bright tiles carry the fit: too few to tell a bowl
    mean = float(np.sum(wk * gk) / np.sum(wk))
    rss0 = float(np.sum(wk * (gk - mean) ** 2))
    rss1 = float(np.sum(wk * (gk - A[keep] @ coef) ** 2))
    extra = A.shape[1] - 1
    f_stat = ((rss0 - rss1) / extra) / max(rss1 / (n - extra - 1), 1e-30)
    if coef[3] <= 0 or f_stat < stats.f.isf(GAIN_ALARM, extra, n - extra - 1):
        return None
    coef = coef / mean  # relative to the frame's slope as measured over these tiles
    aspect = tuple(int(v) for v in working_shape)
    grid = GainMap(coef, aspect, 0.0, 0.0, f_stat, n).evaluate((33, 33))
    low, high = float(grid.min()), float(grid.max())
    if high - low < GAIN_MIN_RANGE or low <= 0:
        return None
    return GainMap(coef, aspect, low, high, f_stat, n)
