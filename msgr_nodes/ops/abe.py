"""Automatic background extraction: a robust 2-D surface fitted to sample boxes.

In PixInsight's spirit (AutomaticBackgroundExtractor): the image is downsampled,
sampled with a grid of boxes, pixels far from each box's median are rejected
(``tolerance``), boxes that keep too few pixels are dropped (``min_box_fraction``),
and a surface is fitted with iterative rejection of boxes that stand above it
(more than ``deviation`` sigma of the box residuals) or below it (``unbalance`` x
``deviation`` sigma), so stars,
nebulae and bright structure do not bend the model. The surface is a Legendre
polynomial on coordinates normalised to [-1, 1], or a smoothing thin-plate spline.

Arrays: one plane (H, W) float32; values nominally in [0, 1].
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre
from scipy import ndimage

from ..errors import MsgrError


@dataclass
class BoxSamples:
    """Sample boxes on the downsampled plane: centres in full-resolution pixels, values, kept flags."""

    x: np.ndarray
    y: np.ndarray
    value: np.ndarray
    kept: np.ndarray

    def to_meta(self) -> dict:
        """The kept boxes as a dict of float32 arrays (x, y, value): what an image's metadata carries so
        that a later step can fit the same boxes again (with values mapped, say)."""
        return {"x": self.x[self.kept].astype(np.float32), "y": self.y[self.kept].astype(np.float32),
                "value": self.value[self.kept].astype(np.float32)}

    @classmethod
    def from_meta(cls, meta: dict) -> "BoxSamples":
        """The boxes :meth:`to_meta` gave (arrays, or lists after a disk cache), all kept."""
        x, y, value = (np.asarray(meta[k], np.float64) for k in ("x", "y", "value"))
        if not (x.shape == y.shape == value.shape and x.ndim == 1):
            raise ValueError("box samples need x, y and value of one length")
        return cls(x, y, value, np.ones(x.shape, bool))


SURFACES = ("polynomial", "rbf")


@dataclass
class ABEParams:
    """ABE's settings (PixInsight's names where it has them); see the ABE node's parameter help."""

    box_size: int = 5
    box_separation: int = 5
    downsample: float = 2.0
    tolerance: float = 1.0
    min_box_fraction: float = 0.05
    deviation: float = 0.8
    unbalance: float = 1.8
    degree: int = 4
    method: str = "polynomial"       # or "rbf"
    smoothing: float = 10.0          # rbf: scipy's smoothing on coordinates normalised to [-1, 1]
    use_brightness_limits: bool = False
    min_background: float = 0.0
    max_background: float = 1.0
    iterations: int = 10
    passes: int = 1                  # polynomial: 2 = fitted again on the boxes flattened by the first fit
    vignetting: bool = False         # polynomial: times a lens's radial falloff (1 - k r^2), k fitted

    def __post_init__(self) -> None:
        if self.method not in SURFACES:
            raise ValueError(f"surface method {self.method!r} is not one of {', '.join(SURFACES)}")
        if self.passes not in (1, 2):
            raise ValueError(f"passes must be 1 or 2, got {self.passes!r}")


def downsample(plane: np.ndarray, f: float) -> np.ndarray:
    """Block means of an (H, W) plane for an integer factor (the edge remainder is dropped), area
    interpolation otherwise; float32 out."""
    if f <= 1:
        return plane.astype(np.float32, copy=False)
    k = int(round(f))
    if abs(f - k) < 1e-6:
        h, w = plane.shape[0] // k * k, plane.shape[1] // k * k
        blocks = plane[:h, :w].reshape(h // k, k, w // k, k)
        if k > 8:
            return blocks.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
        # numpy's mean over two short strided axes runs element by element: k^2 whole-array adds of
        # the blocks' (i, j) pixels are 2.5-5x faster for small factors, with the same float64 sums
        acc = np.zeros((h // k, w // k), np.float64)
        for i in range(k):
            for j in range(k):
                acc += blocks[:, i, :, j]
        acc /= k * k
        return acc.astype(np.float32)
    return ndimage.zoom(ndimage.uniform_filter(plane, size=max(1, int(f))), 1.0 / f, order=1).astype(np.float32)


def clean_block_means(plane: np.ndarray, mask: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Block means (``block`` px, the edge remainder dropped) of an (H, W) plane over its pixels
    outside ``mask`` (H, W) bool, and the share of such pixels in each block: ((h, w) float32, (h, w)
    float32). A block with no such pixel has mean 0. Loops over the blocks' (i, j) pixels, as
    :func:`downsample` does, so no masked copy of the frame is held."""
    h, w = plane.shape[0] // block * block, plane.shape[1] // block * block
    total = np.zeros((h // block, w // block), np.float64)
    count = np.zeros(total.shape, np.float32)
    for i in range(block):
        for j in range(block):
            free = ~mask[i:h:block, j:w:block]
            total += np.where(free, plane[i:h:block, j:w:block], np.float32(0))
            count += free
    return (total / np.maximum(count, 1)).astype(np.float32), count / np.float32(block * block)


def blocks_free_of(mask: np.ndarray | None, shape: tuple[int, int], block: int) -> np.ndarray:
    """(h, w) bool over the ``block`` x ``block`` blocks of :func:`downsample` of an (H, W) plane of
    ``shape``: True where the block holds no pixel of ``mask`` (H, W) bool (None: every block)."""
    h, w = shape[0] // block, shape[1] // block
    if mask is None:
        return np.ones((h, w), bool)
    return downsample(mask.astype(np.float32), block) == 0


def no_data(plane: np.ndarray) -> np.ndarray | None:
    """(H, W) bool: where a plane has no data (constant patches: the black borders of an uncropped
    stack, a registration's fill), or None; a plane that is constant almost everywhere (a synthetic
    test frame without noise) is taken as data."""
    from .local_trust import uncovered

    void = uncovered(plane)
    return None if void is None or void.mean() > 0.9 else void


def sample_boxes(plane: np.ndarray, p: ABEParams, mask: np.ndarray | None = None) -> BoxSamples:
    """Box values with local rejection. ``mask`` (H, W): True = exclude those pixels. Where the plane
    has no data (:func:`no_data`) is never sampled: the zero borders of an uncropped wide stack,
    sampled as dark sky, tilted a degree-2 model by 36 % of the sky."""
    void = no_data(plane)
    if void is not None:
        mask = void if mask is None else (mask | void)
    f = max(1.0, p.downsample)
    small = downsample(plane, f)
    excl = None if mask is None else downsample(mask.astype(np.float32), f) > 0.5
    h, w = small.shape
    b = max(1, int(p.box_size))
    step = b + max(0, int(p.box_separation))
    ys = np.arange(b // 2, h - b + 1, step)
    xs = np.arange(b // 2, w - b + 1, step)
    if ys.size == 0 or xs.size == 0:
        raise MsgrError(f"the image ({plane.shape[1]}x{plane.shape[0]}) is too small for boxes of {b} px; "
                        f"lower box_size or downsample")
    # (ny, nx, b*b) block of every box
    rows = small[ys[:, None] + np.arange(b)[None, :]]                      # (ny, b, w)
    boxes = rows[:, :, xs[:, None] + np.arange(b)[None, :]]                # (ny, b, nx, b)
    boxes = boxes.transpose(0, 2, 1, 3).reshape(ys.size, xs.size, b * b).astype(np.float64)
    valid = np.ones(boxes.shape, bool)
    if excl is not None:
        er = excl[ys[:, None] + np.arange(b)[None, :]][:, :, xs[:, None] + np.arange(b)[None, :]]
        valid &= ~er.transpose(0, 2, 1, 3).reshape(boxes.shape)
    if p.use_brightness_limits:
        valid &= (boxes >= p.min_background) & (boxes <= p.max_background)
    masked = np.where(valid, boxes, np.nan)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(masked, axis=2)
            sig = 1.4826 * np.nanmedian(np.abs(masked - med[..., None]), axis=2)
    keep_px = valid & (np.abs(boxes - med[..., None]) <= p.tolerance * np.maximum(sig, 1e-12)[..., None] + 1e-12)
    frac = keep_px.mean(axis=2)
    value = np.where(keep_px, boxes, 0).sum(axis=2) / np.maximum(keep_px.sum(axis=2), 1)
    kept = (frac >= p.min_box_fraction) & np.isfinite(med) & (keep_px.sum(axis=2) > 0)
    cy = (ys + (b - 1) / 2 + 0.5) * (plane.shape[0] / h) - 0.5
    cx = (xs + (b - 1) / 2 + 0.5) * (plane.shape[1] / w) - 0.5
    gy, gx = np.meshgrid(cy, cx, indexing="ij")
    return BoxSamples(gx.ravel(), gy.ravel(), value.ravel(), kept.ravel())


def _norm(v: np.ndarray, n: int) -> np.ndarray:
    return 2.0 * v / max(n - 1, 1) - 1.0


def _terms(degree: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]


def polynomial_design(x: np.ndarray, y: np.ndarray, shape: tuple[int, int], degree: int) -> np.ndarray:
    """The design matrix (N, terms) of a 2-D Legendre polynomial of ``degree`` at pixels (x, y) of a
    frame ``shape`` (H, W), coordinates scaled to [-1, 1]; the column order is :class:`Surface`'s."""
    vx = legendre.legvander(_norm(x, shape[1]), degree)
    vy = legendre.legvander(_norm(y, shape[0]), degree)
    return np.stack([vx[:, i] * vy[:, j] for i, j in _terms(degree)], axis=1)


def radius2(x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The two terms of r^2 (squared distance from the frame's centre in half-diagonals) at pixel
    columns ``x`` and rows ``y`` of a frame ``shape`` (H, W): (x term, y term), each broadcastable."""
    h, w = shape
    diag = float(np.hypot(h, w))
    return (_norm(x, w) * (w / diag)) ** 2, (_norm(y, h) * (h / diag)) ** 2


class Surface:
    """A fitted background surface; call it with the full-resolution shape to evaluate.

    A polynomial may carry a radial ``falloff`` k: the surface is then the polynomial times
    (1 - k r^2), r the distance from the frame's centre in half-diagonals (a lens's vignetting)."""

    def __init__(self, kind: str, shape: tuple[int, int], coef=None, degree: int = 0, rbf=None,
                 falloff: float = 0.0):
        self.kind, self.shape, self.coef, self.degree, self.rbf = kind, shape, coef, degree, rbf
        self.falloff = float(falloff)

    def falloff_factor(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The falloff factor (1 - k r^2) at pixels (x, y) (arrays of one shape)."""
        rx, ry = radius2(np.asarray(x, np.float64), np.asarray(y, np.float64), self.shape)
        return 1.0 - self.falloff * (rx + ry)

    def at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.kind == "polynomial":
            values = polynomial_design(x, y, self.shape, self.degree) @ self.coef
            return values * self.falloff_factor(x, y) if self.falloff else values
        pts = np.stack([_norm(x, self.shape[1]), _norm(y, self.shape[0])], 1)
        return self.rbf(pts)

    def evaluate(self) -> np.ndarray:
        """The surface at every pixel, float32 (H, W)."""
        h, w = self.shape
        if self.kind == "polynomial":
            vx = legendre.legvander(_norm(np.arange(w, dtype=np.float64), w), self.degree)
            vy = legendre.legvander(_norm(np.arange(h, dtype=np.float64), h), self.degree)
            C = np.zeros((self.degree + 1, self.degree + 1))
            for c, (i, j) in zip(self.coef, _terms(self.degree)):
                C[j, i] = c
            out = (vy @ C @ vx.T).astype(np.float32)
            if self.falloff:
                rx, ry = radius2(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64), self.shape)
                # one float32 frame for the factor, built from its row and column terms
                factor = np.add.outer((self.falloff * ry).astype(np.float32), (self.falloff * rx).astype(np.float32))
                np.subtract(np.float32(1), factor, out=factor)
                out *= factor
            return out
        # a thin-plate spline varies slowly: evaluate on a coarse grid and interpolate
        gh, gw = min(h, 96), min(w, 128)
        gy = np.linspace(0, h - 1, gh)
        gx = np.linspace(0, w - 1, gw)
        X, Y = np.meshgrid(gx, gy)
        coarse = self.at(X.ravel(), Y.ravel()).reshape(gh, gw).astype(np.float32)
        # separable cubic interpolation as two small matrix products: a fraction of a second at 24 Mpx
        return _cubic_weights(h, gh) @ coarse @ _cubic_weights(w, gw).T


def _cubic_weights(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) float32 weights of Keys' cubic convolution (a = -0.5) from n_in samples spread
    over n_out pixels (first and last coincide). Beyond the ends, Keys' boundary condition
    (f(-1) = 3 f(0) - 3 f(1) + f(2)) keeps the edge cells as accurate as the interior."""
    pos = np.linspace(0, n_in - 1, n_out)
    i = np.floor(pos).astype(np.int64)
    t = pos - i
    taps = (((-0.5 * t + 1.0) * t - 0.5) * t,       # i - 1
            (1.5 * t - 2.5) * t * t + 1.0,           # i
            ((-1.5 * t + 2.0) * t + 0.5) * t,        # i + 1
            (0.5 * t - 0.5) * t * t)                 # i + 2
    m = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    for k, wk in zip((-1, 0, 1, 2), taps):
        j = i + k
        if n_in >= 3:
            for ghost, inner in ((j < 0, (0, 1, 2)), (j > n_in - 1, (n_in - 1, n_in - 2, n_in - 3))):
                for idx, c in zip(inner, (3.0, -3.0, 1.0)):
                    np.add.at(m, (rows[ghost], idx), c * wk[ghost])
            inside = (j >= 0) & (j <= n_in - 1)
            np.add.at(m, (rows[inside], j[inside]), wk[inside])
        else:
            np.add.at(m, (rows, np.clip(j, 0, n_in - 1)), wk)
    return m.astype(np.float32)


def _fit(kind: str, s: BoxSamples, sel: np.ndarray, shape, degree: int, smoothing: float,
         vignetting: bool = False) -> Surface:
    if kind not in SURFACES:
        raise ValueError(f"surface method {kind!r} is not one of {', '.join(SURFACES)}")
    x, y, v = s.x[sel], s.y[sel], s.value[sel]
    if kind == "polynomial":
        A = polynomial_design(x, y, shape, degree)
        if vignetting and degree > 0:
            return _fit_falloff(A, x, y, v, shape, degree)
        coef, *_ = np.linalg.lstsq(A, v, rcond=None)
        return Surface("polynomial", shape, coef, degree)
    from scipy.interpolate import RBFInterpolator

    pts = np.stack([_norm(x, shape[1]), _norm(y, shape[0])], 1)
    rbf = RBFInterpolator(pts, v, kernel="thin_plate_spline", smoothing=smoothing, degree=1)
    return Surface("rbf", shape, rbf=rbf)


# The falloff k of ``vignetting`` is searched from 0 (none) to 0.9 (a corner at 10 % of the centre's
# light; a fast lens's -35 % corners are k = 0.35): on a coarse grid, then to 0.01 about its best.
FALLOFF_COARSE = np.round(np.arange(0.0, 0.9001, 0.05), 2)
FALLOFF_STEP = 0.01
# The residuals' spread that judges each k is taken on at most this many boxes (evenly spread).
FALLOFF_JUDGED = 4000


def _fit_falloff(design: np.ndarray, x: np.ndarray, y: np.ndarray, v: np.ndarray, shape, degree: int) -> Surface:
    """A polynomial (``design``: its terms at the boxes x, y; values v) times a radial falloff
    (1 - k r^2) about the frame's centre: least squares for each k, the k whose residuals have the
    smallest median absolute deviation (FALLOFF_COARSE, then FALLOFF_STEP).

    Why a falloff and not a higher degree: a wide lens's vignetting multiplies the sky and its
    gradient, and a light-pollution ramp times the falloff is a cubic that degree 2 cannot follow
    (over the narrow image's part of the frame it left a ramp of 1.5 % of sky on a -35 % lens);
    degree 4 follows it but follows nebula too (it made four of the quality benchmark's scenes
    0.03-0.2 % of sky worse), where the falloff adds one term, radial about the optical axis."""
    rx, ry = radius2(x, y, shape)
    r2 = rx + ry
    # least squares for every k at once, from the normal equations of design * (1 - k r^2): its
    # Gram matrix and right side are quadratic and linear in k (a small solve per k instead of a
    # least-squares fit of every box: 4.4 -> 0.2 s for 91 values on an 18000-box frame)
    d0, d1, d2 = design.T @ design, design.T @ (design * r2[:, None]), design.T @ (design * (r2 * r2)[:, None])
    e0, e1 = design.T @ v, design.T @ (r2 * v)
    judged = slice(None, None, max(1, v.size // FALLOFF_JUDGED))

    def solve(ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        coefs = np.stack([np.linalg.lstsq(d0 - 2 * k * d1 + k * k * d2, e0 - k * e1, rcond=None)[0] for k in ks])
        res = v[judged, None] - (design[judged] @ coefs.T) * (1.0 - r2[judged, None] * ks[None, :])  # (boxes, k)
        res -= np.median(res, axis=0)
        return coefs, np.median(np.abs(res), axis=0)

    _, spread = solve(FALLOFF_COARSE)
    centre = float(FALLOFF_COARSE[int(np.argmin(spread))])
    fine = np.round(np.arange(max(0.0, centre - 0.04), min(0.9, centre + 0.04) + 1e-9, FALLOFF_STEP), 2)
    coefs, spread = solve(fine)
    best = int(np.argmin(spread))
    return Surface("polynomial", shape, coefs[best], degree, falloff=float(fine[best]))


def _thin(s: BoxSamples, sel: np.ndarray, max_boxes: int) -> np.ndarray:
    idx = np.flatnonzero(sel)
    if idx.size <= max_boxes:
        return sel
    keep = np.zeros_like(sel)
    keep[idx[np.linspace(0, idx.size - 1, max_boxes).astype(int)]] = True
    return keep


def _sky_boxes(s: BoxSamples, surf: Surface, centre_of: np.ndarray, p: ABEParams) -> np.ndarray:
    """The usable boxes within deviation sigma above and unbalance x deviation sigma below ``surf``
    (the residuals' centre taken over the boxes ``centre_of``)."""
    res = s.value - surf.at(s.x, s.y)
    centre = float(np.median(res[centre_of]))
    # the noise of sky boxes, from the dark side of the residuals (structure only adds light), over
    # every usable box so that it does not shrink as boxes are rejected
    dark = res[s.kept & (res <= centre)] - centre
    sigma = float(np.sqrt(np.mean(dark ** 2))) + 1e-12 if dark.size >= 3 else 1e-12
    return s.kept & (res - centre <= p.deviation * sigma) & (res - centre >= -p.unbalance * p.deviation * sigma)


def fit_background(plane: np.ndarray, p: ABEParams, mask: np.ndarray | None = None,
                   samples: BoxSamples | None = None, probe_falloff: bool = False) -> tuple[Surface, dict]:
    """Fit the background of one plane (H, W). Returns the surface and statistics.

    ``samples`` are the plane's boxes from :func:`sample_boxes` with the same ``p`` and ``mask``,
    when the caller has them already (several fits of one plane). A polynomial of degree 0 is a
    constant, the median of the kept boxes: what ``degree: auto`` gives a frame without gradient.
    Where the rejection would leave fewer boxes than the surface needs, the last selection with
    enough boxes is kept and ``stopped_at`` in the statistics says at which surface it stopped.
    ``probe_falloff``: see :func:`fit_samples`."""
    s = sample_boxes(plane, p, mask) if samples is None else samples
    return fit_samples(s, plane.shape, p, probe_falloff)


def fit_samples(s: BoxSamples, shape: tuple[int, int], p: ABEParams,
                probe_falloff: bool = False) -> tuple[Surface, dict]:
    """:func:`fit_background` on boxes sampled already, of a plane of ``shape`` (H, W): the surface
    and its statistics. The boxes' values may have been mapped since (a tone curve), as long as sky
    stays darker than structure.

    With ``p.passes`` 2 a polynomial is fitted twice: once to the boxes as they are, then again,
    from the start, to the boxes with that first surface taken out, and the two surfaces are added.
    Which boxes the rejection keeps as sky should not depend on the gradient; but the first stages
    (a plane) cannot follow a curved gradient, what they leave widens the rejection's noise
    estimate, and nebula boxes get in. On the flattened boxes the stages start from a nearly flat
    sky, as on an image without gradient. That helps where fine-structured nebula covers much of a
    wide field (the stock graphs' wide image); on broad, smooth glows, which look like gradient to
    either pass, the second lets a little more of them in, so 1 is the default. ``passes`` in the
    statistics says how many were used (1 also where the second would stop at a lower degree, and
    for a constant or a thin-plate surface).

    With ``probe_falloff`` and ``p.vignetting`` off, the falloff is tried all the same and the
    surface stays the polynomial's: ``falloff_seen`` (k) and ``falloff_cv`` in the statistics say
    that a lens's falloff would have been kept, for the caller to suggest ``vignetting``."""
    surf, stats, sky = _fit_passes(s, shape, p)
    if (p.vignetting or probe_falloff) and surf.kind == "polynomial" and surf.degree > 0:
        fitted, fitted_stats = _with_falloff(s, surf, stats, sky, shape, p)
        if p.vignetting:
            return fitted, fitted_stats
        if fitted_stats["falloff"]:
            stats = {**stats, "falloff_seen": fitted_stats["falloff"], "falloff_cv": fitted_stats["falloff_cv"]}
    return surf, stats


def _fit_passes(s: BoxSamples, shape: tuple[int, int], p: ABEParams,
                falloff: bool = False) -> tuple[Surface, dict, np.ndarray]:
    """The staged fit, once or twice (``p.passes``; see :func:`fit_samples`), with a fitted radial
    falloff where ``falloff``: the surface, its statistics and the boxes it kept as sky (bool, one
    per box)."""
    first, stats, sky = _fit_staged(s, shape, p, falloff)
    if p.method != "polynomial" or p.degree == 0 or p.passes < 2:
        return first, {**stats, "passes": 1}, sky
    at_boxes = first.at(s.x, s.y)
    level = float(np.median(at_boxes[s.kept]))
    flattened = BoxSamples(s.x, s.y, s.value - at_boxes + level, s.kept)
    try:
        second, stats2, sky2 = _fit_staged(flattened, shape, p, falloff)
    except MsgrError:
        return first, {**stats, "passes": 1}, sky
    if second.degree != first.degree:
        return first, {**stats, "passes": 1}, sky
    if falloff:
        # two falloffs do not add up to one: the second pass chose the sky boxes, and the surface
        # is fitted once more to their values as they are
        return _fit("polynomial", s, sky2, shape, first.degree, 0, True), {**stats2, "passes": 2}, sky2
    coef = first.coef + second.coef
    coef[0] -= level  # the first term of the Legendre basis is the constant
    return Surface("polynomial", shape, coef, first.degree), {**stats2, "passes": 2}, sky2


# A falloff is kept where it predicts held-out sky boxes at least twice as well as the polynomial
# alone, and is tried only where both fits keep at least FALLOFF_MIN_SKY sky boxes (8 for each of
# the 16 held-out regions). Measured (held-out error with / without) on the 97 wide frames of the
# quality and held-out benchmarks and the tests: 0.16-0.25 on the three of lenses vignetting by
# 35-60 % under a strong light-pollution gradient; 0.73-0.97 where a falloff followed nebula or the
# gradient instead (a fine nebula over most of a wide frame: 0.73, where a falloff took its
# gradient's model from 0.80 to 1.06 % of sky off). On a 480x360 wide frame full of nebula (40-60
# sky boxes) the held-out error could not tell a falloff from nebula at all.
FALLOFF_GAIN = 0.5
FALLOFF_MIN_SKY = 128
# ... and only a falloff of at least this much at the corners: a weaker one barely bends a degree-2
# model (what it leaves scales with the falloff times the gradient), and the weak ones found were a
# bright nebula in the frame's middle, not a lens (M42's wide frame: 0.07, accepted by the held-out
# boxes, took part of the nebula's glow out of the wide image: 0.19 -> 0.36 % of sky).
FALLOFF_MIN = 0.15


def _with_falloff(s: BoxSamples, surf: Surface, stats: dict, sky: np.ndarray, shape: tuple[int, int],
                  p: ABEParams) -> tuple[Surface, dict]:
    """``vignetting``: the fit made again with every polynomial stage times a radial falloff
    (1 - k r^2, :func:`_fit_falloff`), so that the boxes kept as sky are chosen by a surface that
    can follow a vignetted gradient, and kept only where it predicts held-out boxes better than
    ``surf`` (the polynomial alone, fitted on the boxes ``sky``; :func:`_held_out_error`,
    FALLOFF_GAIN, FALLOFF_MIN_SKY, FALLOFF_MIN). The falloff of a flat sky is a term of degree 2
    (r^2): only a gradient's dimmed edges tell it apart."""
    stats = {**stats, "falloff": 0.0}
    if sky.sum() < FALLOFF_MIN_SKY:  # known before the second fit: no need to make it
        return surf, stats
    try:
        fitted, fitted_stats, fitted_sky = _fit_passes(s, shape, p, falloff=True)
    except MsgrError:
        return surf, stats
    if fitted.falloff < FALLOFF_MIN or fitted_sky.sum() < FALLOFF_MIN_SKY:
        return surf, stats
    # judged on the boxes either fit takes for sky: on every usable box (as choose_degree), a nebula
    # over most of a wide frame decides the error, and it could not tell a -35 % lens from none
    # (0.80 against 0.92 for a falloff that followed nebula)
    judged = sky | fitted_sky
    plain = _held_out_error(s, sky, shape, surf.degree, False, judged)
    with_falloff = _held_out_error(s, fitted_sky, shape, surf.degree, True, judged)
    stats["falloff_cv"] = [plain, with_falloff]
    if not with_falloff < FALLOFF_GAIN * plain:
        return surf, stats
    return fitted, {**fitted_stats, "falloff": fitted.falloff, "falloff_cv": [plain, with_falloff]}


def _held_out_error(s: BoxSamples, train: np.ndarray, shape: tuple[int, int], degree: int, vignetting: bool,
                    judged: np.ndarray) -> float:
    """How well a polynomial (times a fitted falloff where ``vignetting``) fitted on the boxes
    ``train`` predicts the boxes ``judged`` of each 4 x 4 region of the frame left out of its fit:
    the mean over regions of 1.4826 x the median absolute error (as :func:`choose_degree`); inf
    where a region leaves too few boxes to fit."""
    folds = _spatial_folds(s, shape)
    need = max(3 * (len(_terms(degree)) + int(vignetting)), 12)
    errors = []
    for f in np.unique(folds[judged]):
        test = judged & (folds == f)
        fit_on = train & (folds != f)
        if fit_on.sum() < need:
            return float("inf")
        pred = _fit("polynomial", s, fit_on, shape, degree, 0, vignetting).at(s.x[test], s.y[test])
        errors.append(float(1.4826 * np.median(np.abs(s.value[test] - pred))))
    return float(np.mean(errors)) if errors else float("inf")


def _fit_staged(s: BoxSamples, shape: tuple[int, int], p: ABEParams,
                falloff: bool = False) -> tuple[Surface, dict, np.ndarray]:
    """One fit of :func:`fit_samples`: the surface raised degree by degree, rejecting structure at
    each step (each polynomial times a fitted radial falloff where ``falloff``), its statistics and
    the boxes it kept (bool, one per box)."""
    if p.method == "polynomial" and p.degree == 0:
        if not s.kept.any():
            raise MsgrError(f"0 of {s.kept.size} boxes kept after local rejection; raise tolerance or lower "
                            f"min_box_fraction")
        level = float(np.median(s.value[s.kept]))
        return Surface("polynomial", shape, np.array([level]), 0), {
            "boxes": int(s.kept.size), "boxes_used": int(s.kept.sum()),
            "residual_rms": float(np.sqrt(np.mean((s.value[s.kept] - level) ** 2)))}, s.kept
    n_terms = (len(_terms(p.degree)) + int(falloff)) if p.method == "polynomial" else 10
    sel = s.kept.copy()
    total = s.kept.size
    need = max(3 * n_terms, 12)
    if sel.sum() < need:
        raise MsgrError(f"{int(sel.sum())} of {total} boxes kept after local rejection, need {need}; raise "
                        f"tolerance or lower min_box_fraction")
    # raise the degree step by step, rejecting structure at each step: a gradient or a vignette is
    # followed before it could be mistaken for structure, and a nebula is rejected before it can
    # bend a flexible surface
    stages = [("polynomial", d) for d in range(1, (p.degree if p.method == "polynomial" else 3) + 1)]
    if p.method != "polynomial":
        stages.append((p.method, 0))
    surf = _fit("polynomial", s, sel, shape, 1, 0, falloff)
    collapsed = False
    for kind, degree in stages:
        if collapsed:
            break
        for it in range(max(2, p.iterations // len(stages))):
            new = _sky_boxes(s, surf, sel, p)
            if new.sum() < need:
                # the rejection would leave too few boxes for this surface (on a small frame whose dark
                # boxes are kept, it can close in on the darkest few): keep the last selection that had
                # enough, and its surface, rather than fail the whole graph
                collapsed = True
                break
            fit_sel = _thin(s, new, 1500) if kind == "rbf" else new
            surf = _fit(kind, s, fit_sel, shape, degree, p.smoothing, falloff)
            stable = np.array_equal(new, sel)
            sel = new
            if stable:
                break
    res = s.value[sel] - surf.at(s.x[sel], s.y[sel])
    stats = {"boxes": int(total), "boxes_used": int(sel.sum()), "residual_rms": float(np.sqrt(np.mean(res ** 2)))}
    if collapsed:
        stats["stopped_at"] = f"degree {surf.degree}" if surf.kind == "polynomial" else "the thin-plate surface"
    return surf, stats, sel


def fit_mapped(s: BoxSamples, shape: tuple[int, int], p: ABEParams,
               value_map: Callable[[np.ndarray], np.ndarray]) -> Surface | None:
    """:func:`fit_samples` on the boxes with their values put through ``value_map`` (float32 array in
    and out: a tone curve that undoes a stretch), or None where the rejection no longer leaves enough
    boxes for the surface."""
    mapped = BoxSamples(s.x, s.y, np.asarray(value_map(s.value.astype(np.float32)), np.float64), s.kept)
    try:
        return fit_samples(mapped, shape, p)[0]
    except MsgrError:
        return None


def gives_model(s: BoxSamples, p: ABEParams, model: np.ndarray, tolerance: float = 0.01) -> bool:
    """Whether the boxes, fitted as they are, give ``model`` (an (H, W) plane) again, within
    ``tolerance`` of its range at 16 x 16 points: a model changed after it was fitted (scaled,
    registered) keeps the metadata of the one it came from, and its boxes are then not its own."""
    same = fit_mapped(s, model.shape, p, lambda v: v)
    if same is None:
        return False
    ys, xs = (np.linspace(0, n - 1, 16).round().astype(int) for n in model.shape)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    error = np.abs(same.at(gx.ravel(), gy.ravel()) - model[gy, gx].ravel())
    return bool(np.max(error) <= tolerance * (float(np.ptp(model)) + 1e-6))


def _spatial_folds(s: BoxSamples, shape: tuple[int, int], k: int = 4) -> np.ndarray:
    """A fold number in [0, k^2) for every box: k x k tiles of the frame, so that a held-out fold is
    a region the fit has not seen (neighbouring boxes would hide an over-flexible surface)."""
    ty = np.clip((s.y / max(shape[0], 1) * k).astype(int), 0, k - 1)
    tx = np.clip((s.x / max(shape[1], 1) * k).astype(int), 0, k - 1)
    return ty * k + tx


def choose_degree(plane: np.ndarray, p: ABEParams, mask: np.ndarray | None = None,
                  degrees: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6),
                  samples: BoxSamples | None = None) -> tuple[int, dict]:
    """The polynomial degree that predicts held-out sample boxes best, chosen blind.

    Each degree is fitted as :func:`fit_background` does (with its rejection of structure); then
    the frame is cut into 4 x 4 regions and, for each region in turn, the surface is refitted on the
    boxes outside it and judged on every usable box inside it. The error of a region is a robust
    RMS (1.4826 x median absolute deviation from 0); the lowest degree within 5 % of the best wins: a simpler surface when the data cannot tell
    them apart.
    Degree 0 (a constant) is a candidate: it wins on a frame without a gradient.

    Parameters
    ----------
    plane : ndarray (H, W) float
        The image plane, nominally in [0, 1] (a starless image gives cleaner boxes).
    p : ABEParams
        Box sampling and rejection settings (``degree`` is ignored).
    mask : ndarray (H, W) bool or None
        True = pixels not sampled.
    degrees : tuple of int
        Candidate degrees, 0-6.
    samples : BoxSamples or None
        The plane's boxes from :func:`sample_boxes` with the same ``p`` and ``mask``, when the caller
        has them already; sampled here otherwise.

    Returns
    -------
    degree : int
        The chosen degree.
    info : dict
        ``cv_error`` per degree (same units as ``plane``) and the boxes used.
    """
    samples = sample_boxes(plane, p, mask) if samples is None else samples
    fitted = {}
    for d in degrees:
        if d == 0:
            continue
        try:
            surf, _ = fit_background(plane, ABEParams(**{**p.__dict__, "degree": d, "method": "polynomial",
                                                         "vignetting": False}), mask,
                                     samples)
        except MsgrError:
            continue  # too few boxes for this many terms
        fitted[d] = _sky_boxes(samples, surf, samples.kept, p)
    if not fitted:
        raise MsgrError("too few sample boxes to choose a degree; lower box_size or box_separation")
    # judged on every box that survived local rejection: structure is a minority of them, and the
    # median absolute error does not see it
    sky = samples.kept
    folds = _spatial_folds(samples, plane.shape)
    errors = {}
    for d in degrees:
        if d == 0:
            per_fold = []
            for f in np.unique(folds[sky]):
                test, train = sky & (folds == f), sky & (folds != f)
                if train.any():
                    pred = np.median(samples.value[train])
                    per_fold.append(float(1.4826 * np.median(np.abs(samples.value[test] - pred))))
            if per_fold:
                errors[d] = float(np.mean(per_fold))
        elif d in fitted:
            error = _held_out_error(samples, fitted[d], plane.shape, d, False, sky)
            if np.isfinite(error):  # a region left too few boxes for this many terms
                errors[d] = error
    return simplest_degree(errors), {"cv_error": errors, "boxes_used": int(sky.sum())}


def simplest_degree(cv_error: dict, degrees: tuple[int, ...] | None = None) -> int:
    """The lowest degree whose cross-validation error (``cv_error``: degree -> error, as
    :func:`choose_degree` gives) is within 5 % of the best among ``degrees`` (default: all of them).
    The standard error over the regions would be too wide where nebulosity fills many boxes, and
    choose too stiff a surface."""
    errors = {d: e for d, e in cv_error.items() if degrees is None or d in degrees}
    best = min(errors.values())
    return min(d for d, e in errors.items() if e <= 1.05 * best)


# the degrees a blind choice may pick: without a reference, a more flexible surface follows
# nebulosity as readily as a gradient (on real photographs filled with nebula, degree 3-6 made the
# image worse than leaving it alone, where degree 2 improved it)
BLIND_DEGREES = (0, 1, 2)


def blind_degree(plane: np.ndarray, p: ABEParams, mask: np.ndarray | None = None,
                 samples: BoxSamples | None = None) -> tuple[int, dict]:
    """The degree of ``degree: auto`` and of the single-image floor: :func:`choose_degree` over
    :data:`BLIND_DEGREES`. ``plane`` is (H, W), nominally in [0, 1]; ``mask`` True = not sampled;
    ``samples`` the plane's boxes when the caller has them (as for :func:`fit_background`).
    Degree 0 means no gradient was found (a constant model)."""
    return choose_degree(plane, p, mask, degrees=BLIND_DEGREES, samples=samples)


CORRECTIONS = ("subtract", "divide", "none")


def correct(data: np.ndarray, models: np.ndarray, mode: str, normalize: bool) -> np.ndarray:
    """Apply background models (C, H, W) to data (C, H, W), per channel: ``mode`` is one of
    :data:`CORRECTIONS` (``none`` returns a copy); ``normalize`` adds back (or multiplies by) each
    model's median so the corrected sky keeps its level."""
    if mode not in CORRECTIONS:
        raise ValueError(f"correction mode {mode!r} is not one of {', '.join(CORRECTIONS)}")
    out = np.empty_like(data, dtype=np.float32)
    for c in range(data.shape[0]):
        m = models[c]
        ref = float(np.median(m))
        if mode == "subtract":
            out[c] = data[c] - m + (ref if normalize else 0.0)
        elif mode == "divide":
            safe = np.where(np.abs(m) > 1e-12, m, 1e-12)
            out[c] = data[c] / safe * (ref if normalize else 1.0)
        else:
            out[c] = data[c]
    return out
