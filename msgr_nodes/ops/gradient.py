"""The additive gradient model of MSGR in two steps, each its own node so that the cache keeps the
expensive, check-heavy first step when only the smoothing is edited:

1. :func:`match_wide`: the wide image matched to the narrow one on shared fine detail, with
   self-checks; the difference narrow - (a + b wide).
2. :func:`large_scales`: the difference's large scales (the gradient model).

Planes are float32 (H, W) of starless images on the same grid, values nominally in [0, 1].
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from scipy import ndimage

from ..errors import MsgrError
from .abe import (BLIND_DEGREES, ABEParams, BoxSamples, Surface, blind_degree, blocks_free_of, choose_degree,
                  clean_block_means, downsample, fit_background, polynomial_design, sample_boxes, simplest_degree)
from .joint_background import defect_free_means, joint_background
from .linear_fit import bandpass, l1_line
from .local_trust import fit_gain, measure_tiles, uncovered, upsample_mask, wide_only_regions
from .mmt import smooth
from .psf import moffat_blur
from .register import GridSurface
from .star_wings import matching_wings
from .stars import fill_masked
from .tone_curve import fit_tone_curve


@dataclass
class WideSky:
    """The sky a background extraction took out of the wide image (ABE before the registration), on
    the narrow (H, W) frame.

    ``surface`` is that sky, ``level`` the value it left the flattened sky at (ABE's normalize: the
    model's median over the wide frame). ``refit``, where the extraction's sample boxes are known,
    takes a value map (a tone curve: stretched -> linear values, float32 arrays in and out) and gives
    the same extraction fitted again on the mapped boxes, as a (surface on this frame, level) pair,
    or None where it cannot."""

    surface: GridSurface
    level: float = 0.0
    refit: Callable[[Callable[[np.ndarray], np.ndarray]], tuple[GridSurface, float] | None] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """The (H, W) frame the sky is on."""
        return self.surface.shape


@dataclass
class MatchResult:
    """What :func:`match_wide` gives: the difference and the fitted wide image, (H, W) float32, and what it decided."""

    difference: np.ndarray       # (H, W) narrow - (a + b wide); zeros when nothing may be subtracted
    fitted: np.ndarray           # (H, W) a + b wide
    info: dict = field(default_factory=dict)


def auto_layers(shape: tuple[int, int]) -> int:
    """MMT layers to remove for a frame: 2^K about a sixteenth of the short side (K = 8 at 4000 px)."""
    return int(min(9, max(3, round(math.log2(max(min(shape), 16) / 16)))))


# Frames above this many pixels are measured on a coarser grid or a subsample: a slope or a median
# over millions of samples gains nothing from tens of millions.
WORKING_PIXELS = 4_000_000


def _stride(shape: tuple[int, int], limit: int = WORKING_PIXELS) -> int:
    """The smallest integer step that brings a frame (H, W) to at most ``limit`` pixels."""
    return max(1, math.ceil(math.sqrt(shape[0] * shape[1] / limit)))


def sampled_median(plane: np.ndarray) -> float:
    """Median of a plane (H, W), on an even subsample of at most WORKING_PIXELS pixels."""
    s = _stride(plane.shape)
    return float(np.median(plane[::s, ::s]))


def _block_medians(plane: np.ndarray, block: int, reduce: Callable = np.median) -> np.ndarray:
    """Medians (or ``reduce``) of the whole ``block`` px blocks of a plane (H, W), on a subsample."""
    s = min(_stride(plane.shape), max(1, block // 8))  # at least 8x8 samples per block
    while block % s:  # a step that divides the block keeps the blocks at their size
        s -= 1
    plane, block = plane[::s, ::s], block // s
    h, w = plane.shape[0] // block * block, plane.shape[1] // block * block
    b = plane[:h, :w].reshape(h // block, block, w // block, block).transpose(0, 2, 1, 3)
    return reduce(b.reshape(h // block, w // block, -1), axis=2)


def working_factor(shape: tuple[int, int], detail_sigma: float) -> int:
    """Narrow px per working px for a detail band of ``detail_sigma`` px: block means of about sigma/4
    px (the band then spans 2-16 working px), at least 64 of them across, and on large frames at most
    WORKING_PIXELS (block means up to sigma/2 keep the band)."""
    f = max(1, int(detail_sigma // 4))
    while f > 1 and min(shape) // f < 64:
        f //= 2
    return max(f, min(_stride(shape), max(1, int(detail_sigma // 2))))


@dataclass
class StarsForSlope:
    """The narrow image with the stars the wide image kept, for the slope of the detail bands
    (:class:`Bands`): ``narrow`` the (H, W) plane with its stars, whose stars are kept but where the
    wide image's were removed (``wide_masks``, (H, W) bool, or None: all of them); ``masks`` (H, W)
    bool where either image's stars were removed (or None), left out of the fit; ``blur`` the
    Gaussian sigma (narrow px) that brings the stars to the wide image's resolution."""

    narrow: np.ndarray
    wide_masks: np.ndarray | None
    masks: np.ndarray | None
    blur: float

    def at(self, f: int, starless: np.ndarray) -> np.ndarray:
        """The plane at the working resolution of block means of ``f`` px, not blurred, given the
        starless narrow image's block means there (``starless``): the stars the wide image removed
        are taken out again (block by block, by the share of the block its masks cover)."""
        s = downsample(self.narrow, f)
        if self.wide_masks is not None:
            # in place, float32: two channels' working planes at a time are a pipeline's peak
            if f <= 1:
                s = s.copy()  # downsample gave the caller's own plane
            gone = starless - s
            gone *= downsample(self.wide_masks, f)
            s += gone
        return s


@dataclass
class Bands:
    """Both images' detail band at a working resolution (block means of about sigma/4 px, so the band
    always spans 2-16 working pixels: cheap at every scale), and which pixels may be fitted.

    ``ok`` leaves out what is no sky detail: saturated or empty pixels and, once :func:`detail_slope`
    has found them, local defects (satellite trails, blooming, stacking edges: pixels whose residual
    stands far out), each widened by the band-pass's reach so that their ringing goes too.

    ``stars`` is the band of the narrow image with the stars the wide image kept, at the wide image's
    resolution, and ``stars_ok`` where, besides ``ok``, it may be fitted (outside both images' star
    masks; None: everywhere): a second slope is measured on it (:func:`detail_slope`, which then lets
    both go); the checks stay on the starless band."""

    narrow: np.ndarray
    wide: np.ndarray
    ok: np.ndarray
    reach: int = 1
    sigma: float = 1.0  # the band's scale, working px
    factor: int = 1  # narrow px per working px (block means of this size)
    defects: float = 0.0  # share of the pixels left out as local defects
    outliers: np.ndarray | None = None  # those pixels (h, w) bool, once detail_slope has found them
    stars: np.ndarray | None = None
    stars_ok: np.ndarray | None = None
    slope_with_stars: float | None = None  # its slope, once detail_slope has measured it

    @classmethod
    def of(cls, narrow: np.ndarray, wide: np.ndarray, detail_sigma: float, reject_high: float = 0.92,
           blur: float = 0.0, defects: np.ndarray | None = None, cache: dict | None = None,
           stars: StarsForSlope | None = None) -> "Bands":
        """The detail bands of both planes at one scale, on a working grid of block means.

        Parameters
        ----------
        narrow, wide : ndarray
            float32 (H, W) planes on the same grid, values nominally in [0, 1].
        detail_sigma : float
            Gaussian sigma (narrow px) of the band.
        reject_high : float
            Pixels at or above this value in either plane are left out (saturated).
        blur : float
            Gaussian sigma (narrow px) that first brings the narrow image to the resolution of a
            softer wide image, so that both are compared at scales both resolve.
        defects : ndarray, optional
            (H, W) bool, pixels to leave out (with the band's reach).
        cache : dict, optional
            Keeps the block means of each factor for the next scale or blur step.
        stars : StarsForSlope, optional
            The narrow image with its stars, for the slope (see the class).
        """
        f = working_factor(narrow.shape, detail_sigma)
        cache = {} if cache is None else cache
        if f not in cache:
            n, w = downsample(narrow, f), downsample(wide, f)
            s = free = None
            if stars is not None:
                s = stars.at(f, n)
                if stars.blur > 0:
                    # at the wide image's resolution before the defects are filled: a star whose core is
                    # a defect keeps the halo the wide image shows around it (filled first, such stars
                    # went whole: with all the narrow image's stars put back, the slope of a soft wide
                    # image fell to 0.97 at 8 px, 1.21 this way)
                    s = ndimage.gaussian_filter(s, stars.blur / f, mode="reflect")
                free = downsample(stars.masks, f) <= 0.5 if stars.masks is not None else None
            bad = None
            if defects is not None:
                # filled from their surroundings (at the working resolution: cheap), so that their
                # band-pass ringing never reaches the pixels around them
                bad = downsample(defects, f) > 0
                if s is None:
                    n, w = fill_masked(np.stack([n, w]), bad)
                else:
                    n, w, s = fill_masked(np.stack([n, w, s]), bad)
            cache[f] = (n, w, bad, s, free)
        n, w, bad, s, free = cache[f]
        usable = (n > 0) & (n < reject_high) & (w > 0) & (w < reject_high)
        if blur > 0:
            n = ndimage.gaussian_filter(n, blur / f, mode="reflect")
        reach = max(1, int(math.ceil(detail_sigma / f)))
        ok = ~ndimage.binary_dilation(~usable, iterations=reach) if not usable.all() else usable
        if bad is not None:
            ok &= ~bad
        bands = cls(bandpass(n, detail_sigma / f), bandpass(w, detail_sigma / f), ok, reach, detail_sigma / f, f)
        if s is not None:
            if blur > 0:  # the matched-resolution step, as the starless image gets it
                s = ndimage.gaussian_filter(s, blur / f, mode="reflect")
            bands.stars, bands.stars_ok = bandpass(s, detail_sigma / f), free
        return bands

    def ratio(self, slope: float) -> float:
        """How much of the narrow image's detail the difference narrow - slope x wide keeps (over the
        usable pixels)."""
        n, w = self.narrow[self.ok], self.wide[self.ok]
        return float(np.std(n - slope * w)) / max(float(np.std(n)), 1e-12)


def _centre_and_spread(values: np.ndarray) -> tuple[float, float]:
    """The median of ``values`` (any shape) and their robust sigma (1.4826 x the median absolute
    deviation; never 0)."""
    centre = float(np.median(values))
    return centre, 1.4826 * float(np.median(np.abs(values - centre))) + 1e-12


# Residuals beyond this many robust sigmas are a local defect, not sky detail; at most this share of
# a frame may be one: a bright trail rings over a wide strip at coarse bands (10-17 % of the pixels
# at 8-16 px); more is a mismatch of the whole image, which the checks must see.
DEFECT_SIGMA = 6.0
MAX_DEFECT_SHARE = 0.3


# The second line (with the stars the wide image kept) picks the stable pair of bands and, where it
# does, gives the slope. On 100k of its samples instead of 500k it moved by 0.00-0.09 % on the bands
# that can pass, 0.3-1.2 % on the finest (4 px, noise-dominated: slopes 0.18-0.87 where the others
# agree on 1.1-1.25), measured on four 2000 px pairs whose results stayed the same to the digit; that
# band's line and defect search took 0.19-0.32 s against 0.37-0.90. The band-passed samples are
# correlated over the band's scale, so every fifth one carries about as much. The results that move
# move within the slope's own precision (a faint wide image, darkshark, where b is 2.5: 2.48760 ->
# 2.48739, 0.284 -> 0.294 % of sky). The starless line, which the checks use, keeps up to 500k.
WITH_STARS_SAMPLES = 100_000


def detail_slope(bands: Bands, max_samples: int = 500_000,
                 max_samples_with_stars: int = WITH_STARS_SAMPLES) -> float:
    """The wide -> narrow slope on one detail band (L1 line through the band's samples).

    A first line finds the local defects (residuals beyond DEFECT_SIGMA robust sigmas, widened by the
    band's reach); they leave ``bands.ok`` and the line is fitted again without them. Where the band
    carries the narrow image with the stars the wide one kept (``bands.stars``), that band's slope is
    fitted too, the same way outside the defects and the star masks, on at most
    ``max_samples_with_stars`` evenly spread samples, into ``bands.slope_with_stars``."""
    b = _line_without_defects(bands, max_samples)
    if bands.stars is not None:
        ok = bands.ok if bands.stars_ok is None else bands.ok & bands.stars_ok
        with_stars = Bands(bands.stars, bands.wide, ok, bands.reach, bands.sigma, bands.factor)
        bands.slope_with_stars = _line_without_defects(with_stars, max_samples_with_stars)
        # only the slope is needed from here on: the scales are kept until the verdict, and their
        # planes would add to the node's peak (two channels at a time)
        bands.stars = bands.stars_ok = None
    return b


def _line_without_defects(bands: Bands, max_samples: int) -> float:
    """:func:`detail_slope`'s line on ``bands`` as they are, its defects marked in them."""
    def line() -> float:
        idx = np.flatnonzero(bands.ok.ravel())
        if idx.size > max_samples:
            idx = idx[np.linspace(0, idx.size - 1, max_samples).astype(np.int64)]
        hn, hw = bands.narrow.ravel()[idx], bands.wide.ravel()[idx]
        return float(l1_line(hw.astype(np.float64), hn.astype(np.float64))[1])

    b = line()
    r = bands.narrow - b * bands.wide
    centre, sigma = _centre_and_spread(r[bands.ok])
    outlier = bands.ok & (np.abs(r - centre) > DEFECT_SIGMA * sigma)
    if outlier.any():
        defect = ndimage.binary_dilation(outlier, iterations=bands.reach) & bands.ok
        share = float(defect.sum()) / max(int(bands.ok.sum()), 1)
        if share <= MAX_DEFECT_SHARE:
            bands.ok = bands.ok & ~defect
            bands.defects = share
            bands.outliers = defect
            if share > 0.01:  # an L1 line shrugs off a few outliers; the checks' RMS does not
                b = line()
    return b


# Pixels whose fine detail stands beyond DEFECT_SIGMA robust sigmas in the wide image while the
# narrow image shows nothing there (within QUIET_SIGMA) are no sky: a satellite trail, blooming. The
# sky's own detail (nebula, galaxies, the stars left in) shows in the narrow image too, which is
# deeper and sharper. A block of the large-scale slope is left out from WIDE_ONLY_BLOCK_SHARE of such
# pixels: a 15 px trail across a faint wide field lifted block medians by up to 40 % of its light.
QUIET_SIGMA = 3.0
WIDE_ONLY_BLOCK_SHARE = 0.25


def wide_only_detail(narrow: np.ndarray, wide: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Pixels (H, W) bool where the wide image's finest detail band stands far out and the narrow
    image's is quiet (see QUIET_SIGMA), widened by 2 sigma px; found without a slope. None are marked
    where more than MAX_DEFECT_SHARE of the frame would be (a mismatch of the whole image, for the
    checks to judge). ``narrow`` and ``wide`` are float32 (H, W) planes on one grid, nominally in
    [0, 1]; ``sigma`` the band's Gaussian sigma (px)."""
    k = _stride(narrow.shape)
    reach = int(math.ceil(2 * sigma / k))
    far = []
    for plane in (narrow, wide):
        band = bandpass(downsample(plane, k), max(sigma / k, 1.0))
        centre, spread = _centre_and_spread(band)
        far.append(np.abs(band - centre) / spread)
    marked = (far[1] > DEFECT_SIGMA) & (far[0] < QUIET_SIGMA)
    if marked.any():
        marked = ndimage.binary_dilation(marked, iterations=reach)
    if not marked.any() or marked.mean() > MAX_DEFECT_SHARE:
        return np.zeros(narrow.shape, bool)
    return upsample_mask(marked, narrow.shape, k) if k > 1 else marked


def large_scale_slope(narrow: np.ndarray, wide: np.ndarray, block: int = 32,
                      exclude: np.ndarray | None = None, reject_high: float = 0.92) -> float:
    """The slope between the images' block medians (what the recipe's LinearFit on large scales sees),
    leaving out the blocks that are mostly ``exclude`` ((H, W) bool), if given, saturated blocks
    (median at or above ``reject_high`` in either image) and blocks with detail of the wide image
    alone (:func:`wide_only_detail`, WIDE_ONLY_BLOCK_SHARE): a least-absolute-deviations line is
    robust to outliers in the narrow image but not to a far-out wide value, which it passes through
    (a saturated patch of the wide image took the slope from 1.02 to 0.04; a satellite trail across a
    faint wide field from 1.24 to 0.45, and the defects found with that slope then took the nebula,
    the only detail the images shared, and the wide image was refused)."""
    bn, bw = _block_medians(narrow, block).ravel(), _block_medians(wide, block).ravel()
    keep = (bn < reject_high) & (bw < reject_high)
    odd = wide_only_detail(narrow, wide)
    if odd.any():
        keep &= _block_medians(odd, block, np.mean).ravel() < WIDE_ONLY_BLOCK_SHARE
    if exclude is not None:
        keep &= _block_medians(exclude.view(np.uint8), block).ravel() < 0.5  # a view: no float copy of the frame
    if keep.sum() >= 2:
        bn, bw = bn[keep], bw[keep]
    return float(l1_line(bw.astype(np.float64), bn.astype(np.float64))[1])


# Below this share of the narrow frame covered by the wide image, the model would be mostly
# interpolated: the narrow image's own background model is used instead.
MIN_COVERAGE = 0.5


LARGE_SCALE_METHODS = ("surface", "mmt")


def large_scales(plane: np.ndarray, method: str = "surface", layers: int = 0, smoothing: float = 0.1,
                 exclude: np.ndarray | None = None) -> np.ndarray:
    """The large scales of a plane (H, W) float32, structures above about 2^K px (K = ``layers``, 0 = from
    the frame size, :func:`auto_layers`): MMT c_K, or a smoothing thin-plate surface on box medians of
    2^(K-2) px (no mirrored-border bias), resting only on pixels outside ``exclude`` ((H, W) bool,
    optional; the surface only). A constant plane (a refused model is all zeros) comes back unchanged."""
    if method not in LARGE_SCALE_METHODS:
        raise ValueError(f"large-scale method {method!r} is not one of {', '.join(LARGE_SCALE_METHODS)}")
    layers = layers or auto_layers(plane.shape)
    lo, hi = float(plane.min()), float(plane.max())
    if lo == hi:
        return np.full(plane.shape, lo, np.float32)
    if method == "mmt":
        return smooth(plane, layers, "accurate")
    # box medians a quarter of the scale across: at an eighth, what the difference keeps of fine
    # structure (the two images' star fills, a softer wide image's detail) moved the model; on the 43
    # scenes of the quality benchmark, 20 came out 0.005-0.046 % of sky better, 3 up to 0.028 worse
    box = max(4, 2 ** max(layers - 2, 2))
    down = max(1, box // 8)  # box medians of 8x8 block means: the same scale, far fewer pixels
    p = ABEParams(box_size=box // down, box_separation=0, downsample=down, tolerance=3.0, min_box_fraction=0.3,
                  deviation=6.0, unbalance=1.0, method="rbf", smoothing=smoothing)
    surf, _ = fit_background(plane, p, exclude)
    return surf.evaluate()


def match_wide(narrow: np.ndarray, wide: np.ndarray, *, detail_sigma: float = 8.0, slope_tolerance: float = 0.05,
               detail_threshold: float = 0.5, fallback_threshold: float = 0.5, slope: float = 0.0,
               floor_degree: int = 0, floor_unbalance: float = 1.8, floor_passes: int = 1,
               linearize: str = "auto", star_masks: np.ndarray | None = None,
               wide_sky: WideSky | None = None, difference_blur: float = 0.0,
               narrow_stars: np.ndarray | None = None, star_beta: float = 0.0,
               wide_star_mask: np.ndarray | None = None) -> MatchResult:
    """The wide image matched to the narrow one (a + b wide) and their difference, with self-checks.

    1. The slope b is measured on shared detail bands (band-passes; gradients do not bias them) at
       several scales, and for comparison on large scales (block medians, which gradients do bias).
    2. The wide image explains the narrow one at a scale if the difference narrow - b wide keeps
       little of the narrow's detail there (band-pass RMS below ``detail_threshold`` x the narrow's);
       b is trusted where two neighbouring scales do so and agree within ``slope_tolerance``.
       If none do, the plain additive model is used when the wide image still explains most of the
       detail at the large-scale slope (ratio at most ``fallback_threshold``), with the slope of the
       band that explains the narrow image best where that band does so within ``detail_threshold``
       (only its neighbours' slopes disagreed), the large-scale slope (as the recipe's LinearFit on
       large scales) otherwise; and no model at all where it does not: a reference
       that does not match the target (another processing, another sky) must never be subtracted
       (on a real pair of differently processed photographs, ratio 0.88, the plain model made the
       image worse than leaving it alone); the single-image floor stands in for it (step 3).
    3. Local defects of either image (:func:`local_defects`) are filled before the bands and in the
       difference, and so are the star masks (``star_masks``) in the difference; a softer wide image
       is compared with the narrow one blurred to its resolution (BLUR_STEPS), and the difference is
       taken with the narrow image at the wide one's resolution (``difference_blur``, from the two
       images' star FWHMs); where the wide image is refused, :func:`single_image_floor` models the
       narrow image's background alone.
    4. Trust is decided region by region: the regions where the wide image holds structure the
       narrow one lacks (:func:`~msgr_nodes.ops.local_trust.wide_only_regions`) or has no data
       (:func:`~msgr_nodes.ops.local_trust.uncovered`) are left out and interpolated across, or
       given the narrow image's own background model where that predicts better; a vignetting
       lens's gain map (:func:`~msgr_nodes.ops.local_trust.fit_gain`) is taken out of the wide
       image's structure.
    5. A stretched wide image (an asinh or screen stretch, a camera's gamma), whose detail is
       compressed where it is bright, is linearized by a tone curve fitted on the shared detail
       (:func:`linearized`) and judged again; the linearized image is kept only where the checks
       then find a stable slope again and leave no more of the narrow image's detail
       (RECHECK_GAIN). Given what the wide image's own background extraction measured
       (``wide_sky``), the curve is fitted and applied with that sky put back, and the sky is
       taken out again: fitted anew on the extraction's boxes made linear where they are known,
       through the curve otherwise.
    Each decision is reported in ``info["check"]``.

    Parameters
    ----------
    narrow, wide : ndarray
        float32 (H, W) planes on the same grid (the wide one registered onto the narrow), values
        nominally in [0, 1].
    detail_sigma : float
        Gaussian sigma (narrow px) of the finest detail band; coarser bands follow from it.
    slope_tolerance : float
        Largest relative disagreement of two neighbouring bands' slopes for the slope to be trusted.
    detail_threshold : float
        Largest share of the narrow image's band RMS that the difference may keep for the wide image
        to explain the narrow one at that band.
    fallback_threshold : float
        Largest such share, at the large-scale slope, for the plain additive model to be used when no
        band pair is stable.
    slope : float
        0: measure b; > 0: use this b once the checks accept the wide image.
    floor_degree, floor_unbalance, floor_passes : int, float, int
        The single-image floor's ABE (:func:`single_image_floor`): its degree (0 = chosen blind among
        0-2), how far below its surface a sample box may lie (in ``deviation`` sigma) and its passes
        (:class:`~msgr_nodes.ops.abe.ABEParams`).
    linearize : {"auto", "off"}
        auto: a stretched (non-linear) wide image is found and linearized by a fitted tone curve
        (:func:`linearized`) at the scale and resolution it was judged on, and judged again (step
        5); off: the wide image is taken as linear.
    star_masks : ndarray, optional
        (H, W) bool, where either image's stars were removed (StarRemove's masks). Each image's fill
        there guesses the sky under its own stars, the wide image's under much larger masks than the
        narrow one's; the difference is interpolated across them instead (step 3).
    wide_sky : WideSky, optional
        The sky the wide image's background extraction subtracted, on this (H, W) frame (ABE's
        model, registered: :func:`~msgr_nodes.ops.register.smooth_onto_reference`), the level it
        left the flattened sky at, and how to fit it again on linear values. Used only where the
        wide image is linearized (step 5): an extraction in stretched values leaves, once the curve
        undoes the stretch, a residue shaped like the nebula (:func:`linearized`).
    difference_blur : float
        Gaussian sigma (narrow px) that brings the narrow image to a softer wide image's resolution
        in the difference (from the two images' star FWHMs): what the wide image does not resolve
        of a bright, compact nebula is then not left in the difference for the model to take.
    narrow_stars : ndarray, optional
        The narrow (H, W) plane before its stars were removed (``narrow`` is then its starless
        image): the difference is taken on it, so that the stars the wide image still holds (too
        faint for its star removal) cancel instead of being taken for sky; the slope and the checks
        still use the starless ``narrow``, and so does the difference with a linearized wide image.
    star_beta : float
        Moffat beta of the wide image's stars (StarRemove measures it): with ``narrow_stars`` and a
        ``difference_blur``, the narrow image's stars are blurred by a Moffat kernel of this beta
        (and the FWHM the Gaussian would have), so that they get the wide stars' wings; outside
        1.5-10 by the Gaussian. Where the crops around the brightest stars show another kernel
        leaving the difference much flatter (:func:`~msgr_nodes.ops.star_wings.matching_wings`),
        that one is used instead. 0 (not measured, or the node's ``star_wings: gaussian``): the
        Gaussian, unchecked.
    wide_star_mask : ndarray, optional
        (H, W) bool, where the wide image's own stars were removed: the slope is measured on the
        narrow image with the stars the wide image kept (``narrow_stars`` but those), at its
        resolution; without it, with all of the narrow image's stars.

    Returns
    -------
    MatchResult
        ``difference`` and ``fitted`` (H, W) float32, and ``info`` with the slope, offset, the ratios
        per band and the verdict (``info["check"]``).
    """
    # The slope is measured on detail bands at several scales. A physical (linear) relation gives the
    # same slope at every scale the wide image resolves; differently processed images (a non-linear
    # stretch) or a wide image too coarse for the band give slopes that drift with scale. The slope
    # is trusted where two neighbouring scales both explain the narrow image's detail (ratio at most
    # detail_threshold) and agree within slope_tolerance. A wide image from softer optics explains
    # the narrow one only once the narrow one is brought to its resolution: the narrow image is
    # blurred step by step (the sharp case first, so ideal data are judged as they are) until a
    # stable pair appears.
    # Local defects of either image (trails, blooming, hot pixels, stacking edges) are left out of the
    # slope fit and the checks (with the reach of each band) and filled in the difference, so that the
    # model downstream does not see them either.
    if linearize not in ("auto", "off"):
        raise ValueError(f"linearize is {linearize!r}: use auto or off")
    if wide_sky is not None and tuple(wide_sky.shape) != wide.shape:
        raise ValueError(f"wide_sky is on a {wide_sky.shape[1]}x{wide_sky.shape[0]} frame, the wide image "
                         f"{wide.shape[1]}x{wide.shape[0]}")
    # where the registered wide image has no data (outside its field), it is no reference at all
    no_data = uncovered(wide)
    coverage = 1.0 - (float(no_data.mean()) if no_data is not None else 0.0)
    # where the narrow image itself has no data (the black borders of a stack that was not cropped),
    # there is nothing to correct: left out like the wide image's, so that its step does not enter
    # the difference (60 px of zeros along one edge left 2.6 % of sky over the rest of the frame)
    void = uncovered(narrow)
    if coverage < MIN_COVERAGE:
        info = {"check": "passed", "coverage": coverage, "b_large": 0.0, "scales": []}
        return single_image_floor(narrow, info, f"the wide image has data on only {100 * coverage:.0f} % of the "
                                                f"narrow frame", floor_degree, floor_unbalance, passes=floor_passes)
    skip = no_data if void is None else void if no_data is None else no_data | void
    b_large = large_scale_slope(narrow, wide, exclude=skip)  # block medians: robust to the defects themselves
    defects = local_defects(narrow, wide, b_large)
    if skip is not None:
        defects |= skip
    search = functools.partial(_search, narrow, detail_sigma=detail_sigma, slope_tolerance=slope_tolerance,
                               detail_threshold=detail_threshold)
    # a second slope per band, on the narrow image with the stars the wide image kept (the difference
    # below is taken on the narrow image with its stars too)
    with_stars = None if narrow_stars is None else StarsForSlope(
        narrow_stars, wide_star_mask, star_masks,
        difference_blur if difference_blur >= MIN_DIFFERENCE_BLUR else 0.0)
    blur, scales, chosen, defect_share = search(wide, defects, stars=with_stars)
    tone_note, tone = "", None
    if linearize == "auto" and scales:
        # the curve is fitted where the images were compared: at the scale judged and the matched
        # resolution (a softer wide image's fine detail is lost most where it is bright and compact,
        # which a curve fitted on the sharp comparison would take for a stretch), but not on bands so
        # coarse that the narrow image's gradient leaks into them (CURVE_MAX_SIGMA)
        sigma_judged = chosen[0] if chosen else min(scales, key=lambda t: t[3])[0]
        curve_sigma = min(max(sigma_judged / 2, detail_sigma), CURVE_MAX_SIGMA * detail_sigma)
        curved, tone_note, tone = linearized(narrow, wide, curve_sigma, defects, blur=blur, wide_sky=wide_sky)
        if tone_note:  # the slope, the defects and the checks of the linear image
            b_curved = large_scale_slope(narrow, curved, exclude=skip)
            defects_curved = local_defects(narrow, curved, b_curved)
            if skip is not None:
                defects_curved |= skip
            judged = search(curved, defects_curved)
            # kept only where the linearized image is judged better: a stable slope where the wide
            # image had one, and no more of the narrow image's detail left (a softer wide image can
            # mimic a curve on one band, and then fails the checks at others)
            before, after = _judged_ratio(scales, chosen), _judged_ratio(judged[1], judged[2])
            tone.update(judged_ratio=[before, after])
            if (judged[2] is not None or chosen is None) and after <= RECHECK_GAIN * before:
                wide, b_large, defects = curved, b_curved, defects_curved
                blur, scales, chosen, defect_share = judged
            else:
                tone["used"] = False
                tone_note = ""
    info = {"b_large": b_large, "check": "passed", "blur": blur, "defects": defect_share, "coverage": coverage,
            "scales": [{"sigma": sg, "b": bb, "detail_ratio": rr, "defects": bd.defects,
                        **({"b_with_stars": bd.slope_with_stars} if bd.slope_with_stars is not None else {})}
                       for sg, bd, bb, rr in scales]}
    if tone:
        info["tone_curve"] = tone
    if chosen is None:
        # no stable scale: judge the plain additive model on the band the wide image explains best
        sigma_used, bands, b_best, best_ratio = min(scales, key=lambda t: t[3])
        ratio_large = bands.ratio(b_large)  # the band-pass is linear: band(n - b w) = band(n) - b band(w)
        info.update(b_detail=b_best, detail_sigma=sigma_used, detail_ratio=best_ratio, large_ratio=ratio_large)
        # a band that explains the detail vouches for the wide image even where the large-scale slope
        # is far off: block medians carry both images' gradients (a Veil pair at ratio 6: 0.35 against
        # about 1.1 in the bands; refused for it, the joint floor left 0.42 % of sky, the band's slope 0.34)
        explained = best_ratio <= detail_threshold and b_best > 0
        if not explained and (ratio_large > fallback_threshold or b_large <= 0):
            why = (f"the wide image does not explain the narrow one's detail (best detail ratio {best_ratio:.2f}, "
                   f"slopes {', '.join(f'{t[2]:.3g}' for t in scales)} drift with scale){tone_note}")
            # only the saturated pixels: the other defects marked in a pair of differently processed
            # photographs are where their detail differs, which the joint fit needs (leaving them out
            # took two real pairs from 4.26 to 8.73 and from 0.59 to 3.88 % of sky)
            return single_image_floor(narrow, info, why, floor_degree, floor_unbalance, wide=wide, exclude=skip,
                                      passes=floor_passes, defects=saturated_pixels(narrow, wide))
        if explained:
            # one band explains the narrow image's detail and only its neighbours' slopes stray (a soft
            # wide image at ratio 6: 1.19, 1.27, 1.18 at 16, 32, 64 px, truth 1.25): that band's slope.
            # Block medians carry both images' gradients (there 0.93) and took a quarter of the
            # nebula into the model (held-out Barnard's Loop: 1.02 % of sky left, 0.15 with 1.27)
            b = b_best
            info["check"] = (f"fallback: no two neighbouring scales agree on the slope ("
                             f"{', '.join(f'{t[2]:.3g}' for t in scales)}); used {b:.4f}, the slope of the "
                             f"{sigma_used:g} px band, which explains the narrow one's detail best (ratio "
                             f"{best_ratio:.2f})")
        else:
            b = b_large
            info["check"] = (f"fallback: no scale where the wide image explains the narrow one's detail with a "
                             f"stable slope; used the large-scale slope {b:.4f}")
    else:
        sigma_used, bands, b = chosen
        info.update(b_detail=b, detail_sigma=sigma_used, detail_ratio=bands.ratio(b))
        if blur:
            info["check"] = (f"passed at matched resolution (the narrow image blurred by a Gaussian of "
                             f"sigma {blur:g} px to the softer wide one's)")
    info["check"] += tone_note
    if coverage < 1.0:
        info["check"] += (f"; the wide image has no data on {100 * (1 - coverage):.1f} % of the narrow frame "
                          f"(outside its field, or clipped flat), the model interpolated across it")
    if void is not None:
        info["narrow_void"] = float(void.mean())
        info["check"] += (f"; the narrow image has no data on {100 * info['narrow_void']:.1f} % of its frame "
                          f"(a stack's uncropped borders, or clipped flat): left out, the model interpolated "
                          f"across it")
    wide_only, gain = _trust_locally(narrow.shape, bands, b, info)
    if slope > 0:
        info["b_measured"] = b
        info["check"] += f"; slope given: {slope:.4f} (measured here {b:.4f})"
        b = slope
    fitted = np.float32(b) * wide
    if gain is not None:
        # the gain multiplies the wide image's structure; its sky, flattened upstream (ABE on the
        # wide image), stays at b x its level, so that the map adds no bowl of its own
        # (its 10th percentile: the sky between the nebula; the median sits on nebula where it fills
        # the frame, and left 1.22 % of sky on a vignetted pair where this leaves 1.13)
        step = _stride(wide.shape, 250_000)
        level = np.float32(np.percentile(wide[::step, ::step], 10))
        fitted += np.float32(b) * (gain.evaluate(wide.shape) - np.float32(1)) * (wide - level)
    # the difference is taken on the narrow image with its stars where it is given: the faint stars
    # the wide image's star removal left in are then in both images and cancel (taken out of the
    # narrow image only, their light was modelled as sky: 100-200 px mottle of 0.2-0.3 % of sky
    # under a soft wide image, whose detection limit is shallower); star fills are left out below.
    # Not through a tone curve: fitted on the nebula's detail, it does not give a stretched star its
    # compressed peak back, and the stars would not cancel (asinh x2 0.84 -> 0.87 with them)
    base = narrow if narrow_stars is None or tone_note else narrow_stars
    if narrow_stars is not None:
        info["difference_with_stars"] = base is narrow_stars
    star_kernel = None
    if base is narrow_stars and star_beta > 0 and difference_blur >= MIN_DIFFERENCE_BLUR:
        noise = _pixel_noise(narrow)  # the star kernel below is only set here, and uses it too
        # the measured beta is the median profile of the wide image's stars, the sources' own
        # breadth with it: checked against what the wide image shows around its brightest stars
        beta, info["star_wings"] = matching_wings(
            narrow, narrow_stars, fitted, difference_blur, star_masks, star_beta,
            star_light=lambda s, n: _without_hot_pixels(s - n, noise))
        if beta is not None:
            star_kernel = (difference_blur * 2.3548, beta)
    if difference_blur >= MIN_DIFFERENCE_BLUR:
        # the narrow image at the wide one's resolution: what the wide image cannot resolve of a
        # bright knot (its sharp core minus the wide image's blurred one) is no sky to model. Its
        # large scales are the narrow image's own. Where it has no data, the blur's reach is left out.
        diff = ndimage.gaussian_filter(base if star_kernel is None else narrow, difference_blur, mode="reflect",
                                       output=np.float32)
        if star_kernel is not None:
            # the stars get the wide image's wings: a Gaussian (right for the nebula, whose fine
            # structure the star profile barely touches) left the wide stars' Moffat wings, up to
            # hundreds of times brighter a few FWHM out, unmatched around every star outside the
            # masks (soft wide image fwhm 3.5: 0.27 -> 0.22 % of sky)
            moffat_blur(lambda rows: _without_hot_pixels(narrow_stars[rows] - narrow[rows], noise), *star_kernel,
                        add_to=diff, shape=narrow.shape)
            info["star_kernel"] = {"fwhm": star_kernel[0], "beta": star_kernel[1]}
        diff -= fitted  # in place: one frame less per channel at the node's peak
        info["difference_blur"] = difference_blur
        if void is not None:
            defects = defects | (ndimage.gaussian_filter(void.astype(np.float32), difference_blur) > 1e-3)
    else:
        diff = base - fitted
    if wide_only is not None:
        defects = defects | wide_only
    if star_masks is not None:
        # the two images' star fills guess different sky (a nebula's structure under a soft wide
        # star's 80 px mask): their difference is no gradient. Interpolated across instead, the result
        # on small generated pairs went 0.49-0.60 -> 0.28-0.30 % of sky (sharp wide image) and
        # 0.75-1.39 -> 0.56-0.71 (soft)
        defects = defects | star_masks
        info["star_masks"] = float(star_masks.mean())
    if defects.any():
        diff = fill_coarse(diff, defects, inplace=True)  # diff is ours: no second frame in memory
    if wide_only is not None:
        # a region left out whole is filled from the surface the model will be, fitted around it:
        # the fill's coarse levels are near constant across a region hundreds of px wide, and bent
        # the model under a reflection (0.66 -> 0.23 % of sky on the benchmark's reflection scene)
        try:
            diff[wide_only] = large_scales(diff, exclude=wide_only)[wide_only]
        except MsgrError:  # too few boxes around it for a surface: the fill stays
            pass
    if no_data is not None and 1.0 - coverage >= OWN_BACKGROUND_SHARE:
        diff = _own_background_where_no_data(diff, narrow, no_data, info)
    a = sampled_median(diff)
    diff -= np.float32(a)
    fitted += np.float32(a)
    info.update({"a": a, "b": b})
    return MatchResult(diff, fitted.astype(np.float32), info)


def _without_hot_pixels(stars: np.ndarray, noise: float) -> np.ndarray:
    """The stars (H, W) StarRemove took out, without its hot pixels (set to 0 in place; ``noise``:
    the image's pixel noise sigma). A pixel 10 noise sigmas up that holds 70 % of the light of its
    3x3 neighbourhood less its brightest neighbour (a hot pair's other pixel) is no star: a star's
    central pixel holds under 55 % of it even at 1.2 px FWHM. Blurred to a wide star's wings, a hot
    pixel's light spread 20-30 px around its small mask (hot pixels in both: 0.28 -> 0.32 % of sky)."""
    box = ndimage.uniform_filter(stars, 3, mode="nearest")
    box *= np.float32(9)
    ring = np.ones((3, 3), bool)
    ring[1, 1] = False
    box -= ndimage.maximum_filter(stars, footprint=ring, mode="nearest")
    box *= np.float32(0.7)
    hot = stars > box
    # the noise floor: else every positive noise pixel among negative neighbours (the masks hold
    # noise too) would go and bias the stars low
    hot &= stars > np.float32(10 * noise)
    stars[hot] = 0  # in place: the caller's own difference of two frames
    return stars


def _pixel_noise(plane: np.ndarray) -> float:
    """The pixel noise sigma of a plane (H, W), from the differences of horizontal neighbours (MAD),
    on a sample of rows."""
    step = max(1, plane.shape[0] // 500)
    d = np.diff(plane[::step].astype(np.float32), axis=1)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))


# The tone curve is fitted on at most this many working pixels.
CURVE_PIXELS = 1_000_000
# ... and on bands of at most this many x the finest detail sigma (and twice that). The narrow image's
# own gradient leaks into coarser bands and the curve's powers of the wide image fit it: on IC 434
# with an asinh-stretched wide image, judged at the 64 px band, the curve fitted on bands of 32 and
# 64 px came out reversed (its slope falling 0.68x where the stretch's rises 1.6x; 0.29 -> 0.25 of
# the detail left) and made the result 3x worse than no curve (1.71 % of sky against 0.56); on
# bands of 16 and 32 px, 1.74x and 0.22 -> 0.09, 0.15 % of sky. With the narrow image's true
# gradient taken out, the coarse bands gave the right curve too (0.19 -> 0.05).
CURVE_MAX_SIGMA = 2.0


def linearized(narrow: np.ndarray, wide: np.ndarray, detail_sigma: float, defects: np.ndarray,
               blur: float = 0.0, reject_high: float = 0.92,
               wide_sky: WideSky | None = None) -> tuple[np.ndarray, str, dict]:
    """The wide image made linear in the narrow one where it was stretched, by a tone curve fitted on
    their shared detail (:mod:`~msgr_nodes.ops.tone_curve`), at bands of ``detail_sigma`` and twice
    that. The curve is scaled to keep the wide image's 2nd and 98th percentiles, so that its level
    and b stay comparable; pixels without data (0) and saturated ones stay as they were.

    A background extraction on the stretched image (ABE before the registration) took out a sky
    measured in stretched values: the curve turns what is left of it into an offset that follows
    the nebula (the curve is steeper there). Given that sky (``wide_sky``), the curve is fitted and
    applied to the wide image with it put back (1.59 -> 0.98 % of sky on the quality benchmark's
    asinh-stretched wide image), and the sky is taken out again: the extraction fitted anew on its
    boxes made linear by the curve (``wide_sky.refit``), or else the sky through the curve.

    Parameters
    ----------
    narrow, wide : ndarray
        float32 (H, W) starless planes on one grid, values nominally in [0, 1].
    detail_sigma : float
        Gaussian sigma (narrow px) of the finer band.
    defects : ndarray
        (H, W) bool, pixels to leave out.
    blur : float
        Gaussian sigma (narrow px) that brings the narrow image to a softer wide one's resolution.
    reject_high : float
        Pixels at or above this value in either plane are saturated.
    wide_sky : WideSky, optional
        The sky a background extraction subtracted from the wide image, on its (H, W) frame, and the
        level it left the flattened sky at (the wide image as stretched is wide + wide_sky.surface -
        wide_sky.level).

    Returns
    -------
    tuple
        (the wide plane, linearized or as it was; a note for the self-check's text, empty when
        nothing was done; what was measured, a dict).
    """
    # a curve of DEGREE terms needs far fewer samples than a slope's checks: at most CURVE_PIXELS,
    # with the finer band still 1.5 working px or more
    f = max(working_factor(narrow.shape, detail_sigma),
            min(_stride(narrow.shape, CURVE_PIXELS), max(1, int(detail_sigma / 1.5))))
    n, w = downsample(narrow, f), downsample(wide, f)
    ok = (n > 0) & (n < reject_high) & (w > 0) & (w < reject_high)
    if wide_sky is not None:  # the image as it was stretched; no data and saturation as given
        w = w + (wide_sky.surface.evaluate(f) - np.float32(wide_sky.level))
    if defects.any():
        ok &= ~(downsample(defects, f) > 0)
    sigmas = (detail_sigma / f, 2 * detail_sigma / f)
    if ok.mean() < 0.2 or 8 * sigmas[1] > min(n.shape):
        return wide, "", {}
    if blur > 0:
        n = ndimage.gaussian_filter(n, blur / f, mode="reflect")
    curve = fit_tone_curve(n, w, ok, sigmas)
    info = {"ratio_line": curve.ratio_line, "ratio_curve": curve.ratio_curve, "slope_change": curve.slope_change,
            "used": curve.needed}
    if not curve.needed:
        return wide, "", info
    lo, hi = curve.fitted_range
    g_lo, g_hi = curve.apply(np.array([lo, hi], np.float32))

    def scaled_curve(plane):
        out = curve.apply(plane)
        out -= np.float32(g_lo)
        out *= np.float32((hi - lo) / (g_hi - g_lo))
        out += np.float32(lo)
        return out

    if wide_sky is None:
        out = scaled_curve(wide)
    else:
        level = np.float32(wide_sky.level)
        sky = wide_sky.surface.evaluate()
        out = wide + sky
        out -= level
        out = scaled_curve(out)
        refitted = wide_sky.refit(scaled_curve) if wide_sky.refit is not None else None
        if refitted is not None:
            # the extraction fitted again on its boxes made linear: a surface fitted in stretched
            # values and put through the curve is not the linear sky's surface where the gradient is
            # strong (asinh-stretched, gradients x2: 1.39 -> 0.69 % of sky in the narrow field with the
            # true curve)
            surface, linear_level = refitted
            sky = surface.evaluate()
            sky -= np.float32(linear_level)
            info["sky_refitted"] = True
        else:
            # the sky through the curve, less the flat level's: what is left of the sky is the flat level
            sky = scaled_curve(sky)
            sky -= scaled_curve(np.array([level], np.float32))[0]
        out -= sky
        del sky
        info["sky_put_back"] = True
    keep = (wide <= 0) | (wide >= reject_high)
    if keep.any():
        out[keep] = np.maximum(out[keep], wide[keep]) * (wide[keep] > 0)
    note = (f"; the wide image is not linear (the slope of its detail changes {curve.slope_change:.2f}x from its "
            f"faint sky to its bright parts: a stretched image?), so it was linearized by a tone curve fitted on "
            f"the shared detail (detail ratio {curve.ratio_line:.2f} -> {curve.ratio_curve:.2f}); give a linear "
            f"wide image for the best result")
    return out, note, info


# The linearized wide image is kept when the detail it leaves at the band judged is at most this
# share of what the wide image as given left there. The band judged is the finest stable one, where
# a bright, strongly graded sky's noise is most of what both leave: on the tests' pair with
# gradients x2-x3, a camera JPEG gave 0.94 and a gamma 0.99 there, and were refused at 0.92 (2.17 and
# 2.53 % of sky; linearized 0.88 and 0.78). The evidence for a stretch is the curve's own gate
# (CURVE_GAIN, where soft and linear wide images stay at 0.95-1.0); this one asks only that the
# linear image is not judged worse.
RECHECK_GAIN = 1.0


def _judged_ratio(scales, chosen) -> float:
    """The detail ratio the verdict rests on: at the stable pair's band, or the best band without one."""
    if chosen is not None:
        sigma, bands, b = chosen
        return bands.ratio(b)
    return min(t[3] for t in scales)


def _search(narrow, wide, defects, detail_sigma, slope_tolerance, detail_threshold, stars=None):
    """The detail scales compared, sharp first and then at matched resolution (BLUR_STEPS) until a
    stable pair appears: (blur, scales, chosen, share of the frame left out as defects); see
    :func:`_stable_scales`. Without a stable pair, the sharp comparison (blur 0). ``stars``: a
    :class:`StarsForSlope` for the slopes, or None."""
    defect_share = float(defects.mean())
    stable = functools.partial(_stable_scales, narrow, wide, detail_sigma, slope_tolerance, detail_threshold,
                               defects=defects if defect_share else None, cache={}, stars=stars)
    sharp = stable(0.0)
    blur, (scales, chosen) = 0.0, sharp
    for step in BLUR_STEPS:
        if chosen or not scales:
            break
        blur, (scales, chosen) = step, stable(step)
    if not chosen:  # the fallbacks are judged on the sharp comparison
        blur, (scales, chosen) = 0.0, sharp
    if not scales:
        raise ValueError(f"the frame ({narrow.shape[1]}x{narrow.shape[0]}) is too small for detail_sigma "
                         f"{detail_sigma}")
    return blur, scales, chosen, defect_share


def _trust_locally(shape, bands: Bands, b: float, info: dict):
    """Where the wide image is trusted, region by region, and its gain map, on the band the frame was
    judged on.

    Returns (the full-resolution (H, W) bool mask of the regions that hold structure of the wide image
    alone, or None; a GainMap or None). Both are reported in ``info``."""
    mask = None
    tiles = measure_tiles(bands.narrow, bands.wide, bands.ok, edge=4 * bands.reach)
    regions = None
    if bands.outliers is not None:
        regions = wide_only_regions(bands.narrow, bands.wide, bands.outliers, b, tiles, (8 * bands.reach) ** 2)
    if regions is not None:
        # a region is left out whole: a reflection's smooth inside, which the band does not flag
        # inside its ring, holds its light as much as the ring does
        regions = ndimage.binary_fill_holes(regions)
        mask = upsample_mask(regions, shape, bands.factor)
        share = float(mask.mean())
        info["wide_only"] = share
        info["check"] += (f"; {100 * share:.1f} % of the frame left out where the wide image holds structure the "
                          f"narrow one lacks (a reflection, a halo), the model interpolated across it")
    gain = fit_gain(tiles, b, bands.narrow.shape, bands.sigma)
    if gain is not None:
        info["gain"] = [gain.low, gain.high]
        info["check"] += (f"; the wide image's gain varies over the field ({gain.low:.3f}-{gain.high:.3f}: "
                          f"vignetting), taken out multiplicatively")
    return mask, gain


# The difference is taken with the narrow image blurred to the wide one's resolution from this
# sigma (narrow px) up: below it the two resolve the same large scales.
MIN_DIFFERENCE_BLUR = 1.0

# Gaussian sigmas (narrow px) tried to bring the narrow image to a softer wide image's resolution:
# up to a wide FWHM of about 8x the narrow's (3 px stars against 24 px).
BLUR_STEPS = (2.0, 4.0, 6.0, 9.0)


def _stable_scales(narrow, wide, detail_sigma, slope_tolerance, detail_threshold, blur, defects=None,
                   cache=None, stars=None):
    """The detail scales measured (sigma, bands, slope, ratio), finest first, up to the first pair of
    neighbours that both explain the narrow image and agree; and that pair's (sigma, bands, slope)."""
    scales, chosen = [], None
    for factor in (0.5, 1, 2, 4, 8):  # finest first; stop at the first stable pair
        sigma = detail_sigma * factor
        if 4 * sigma > min(narrow.shape) / 4:
            break
        if sigma < blur:  # a band finer than the blur holds no shared detail
            continue
        bands = Bands.of(narrow, wide, sigma, blur=blur, defects=defects, cache=cache, stars=stars)
        b2 = detail_slope(bands)
        r2 = bands.ratio(b2)
        if scales:
            bands1 = scales[-1][1]
            # The wide image keeps the faint stars its star removal missed; against the starless narrow
            # image they are detail of the wide image alone and pull the slope off (a Veil pair at ratio
            # 6: 1.07 and 1.16 at 16 and 32 px, truth 1.25; with the stars the wide image kept, at its
            # resolution, 1.18 and 1.22). Those slopes go first where they agree; where they do not (a
            # band as fine as the stars, whose profiles differ: 0.29 at 4 px on a galaxy field where
            # the starless slopes agree on 1.24), the starless ones may.
            for x1, x2 in ((bands1.slope_with_stars, bands.slope_with_stars), (scales[-1][2], b2)):
                if x1 is not None and x2 is not None and x1 > 0 and abs(x1 - x2) <= slope_tolerance * abs(x2) \
                        and bands1.ratio(x1) <= detail_threshold and bands.ratio(x2) <= detail_threshold:
                    # the coarser band's slope: the finer one is the first biased by a wide image that
                    # resolves less (4 px: 1.198 where 8 and 16 px agree on 1.272)
                    chosen = (sigma, bands, x2)
                    break
        scales.append((sigma, bands, b2, r2))
        if chosen:
            break
    return scales, chosen


# A blind floor keeps to BLIND_DEGREES: a more flexible surface follows nebula as readily as a
# gradient. A wide image refused for its detail still shows which large-scale structure is sky: where
# it sees the narrow image's structure beyond degree 2 (correlation at least WITNESS_MIN, measured
# 0.63-0.88 on three real pairs) but not what the higher degree chosen by cross-validation adds (at most
# FOLLOWS_WIDE_MAX), that surface is gradient and is used. Measured: 0.12 on a galaxy field (NGC 1365,
# where degree 4 halves the residual), 0.45-0.62 on two photographs full of nebula (where degree 4-6
# doubled or trebled it).
WITNESS_MIN = 0.5
# Strong gradients of higher order than 2, which differ between the two images, hide what they share
# beyond degree-2 surfaces: where that correlation is below WITNESS_MIN it is measured again beyond
# surfaces of these degrees, until one reaches it (a soft ratio-6 pair under gradients 3x as strong:
# 0.42 beyond degree 2, 0.81 beyond 4, and ABE's floor took the nebula, 170 % of sky left against 8.1
# uncorrected, the joint fit 0.51; 5x as strong: 0.33, 0.45, 0.87 beyond 6, and 118 against 9.7). A
# wide image of other sky stays at -0.09 to 0.00 at every degree; the real pairs move by 0.01 at most.
WITNESS_HIGH_DEGREES = (4, 6)
FOLLOWS_WIDE_MAX = 0.3
# The joint floor's model may depart from ABE's blind one by at most this many times that model's
# amplitude. Measured where the joint fit helps: 0.35-0.91 on the six real pairs it took and three
# synthetic scenes, 1.05 on one more (n7000, where ABE itself is far off). Where it hurts: 1.22 on a
# wide image that holds large-scale nebula the narrow one lacks (3.7 -> 11.0 % of sky unguarded),
# 2.9-12 on sh2-263/264 with its coverage gate lifted (21-56 % of sky wrong). The margin is thin:
# the nebula-filled scenes with wide-only nebula (0.4-0.5) are not caught, and go both ways.
JOINT_MAX_DEPARTURE = 1.1
# A blind floor's surface (degree 0-2) is not subtracted where it follows the wide image's large-scale
# sky (correlation of its block means with the wide image's, at least this): it models the nebula
# both images show. Measured on the surfaces that follow the gradient: -0.04 to 0.35 (the real pairs'
# degree-2 surfaces, a galaxy field); on those that take nebula: 0.56 (sh2-263/264 with a gentle
# gradient, 5.21 -> 8.84 % of sky subtracted), 0.85 (a test scene of large nebulae at 80 % coverage,
# 5.96 -> 14.27); in between 0.52 (sh2-263/264 with another gentle gradient, where the surface took
# 6.83 to 6.13: now left at 6.83, as the input).
FLOOR_FOLLOWS_MAX = 0.5


def _correlation(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    if where.sum() < 16:
        return 0.0
    c = np.corrcoef(a[where].astype(np.float64), b[where].astype(np.float64))[0, 1]
    return float(c) if np.isfinite(c) else 0.0


@dataclass
class Witness:
    """What a refused wide image tells about the narrow image's large scales: block means (``block``
    px) of both beyond their degree-2 ABE surfaces (the gradients), the blocks where both have data,
    the narrow image's degree-2 surface (H, W), ``sky_seen``, the correlation of the two, and the
    wide image's block means themselves (``wide_blocks``)."""

    block: int
    valid: np.ndarray
    narrow_surface: np.ndarray
    wide_beyond: np.ndarray
    sky_seen: float
    wide_blocks: np.ndarray


def large_scale_witness(narrow: np.ndarray, wide: np.ndarray, exclude: np.ndarray | None = None,
                        p: ABEParams | None = None, samples: BoxSamples | None = None,
                        defects: np.ndarray | None = None) -> Witness | None:
    """How well the wide image sees the narrow image's large-scale sky (:class:`Witness`): the
    correlation of both beyond their degree-2 surfaces, or, where that is below WITNESS_MIN, the
    highest beyond the surfaces of WITNESS_HIGH_DEGREES (tried in turn until one reaches it); None where either image has too few sky boxes
    for ABE.

    Parameters
    ----------
    narrow, wide : ndarray
        float32 (H, W) planes on one grid, nominally in [0, 1].
    exclude : ndarray, optional
        (H, W) bool, where either image has no data.
    p : ABEParams, optional
        The narrow image's ABE settings.
    samples : BoxSamples, optional
        The narrow image's boxes with ``p`` (:func:`~msgr_nodes.ops.abe.sample_boxes`), when the
        caller has them.
    defects : ndarray, optional
        (H, W) bool, pixels the block means leave out (saturated ones, :func:`saturated_pixels`).
    """
    p = p or ABEParams()
    block = max(8, max(narrow.shape) // 128)
    try:
        narrow_surface = fit_background(narrow, ABEParams(**{**p.__dict__, "degree": 2}), None, samples)[0].evaluate()
        wide_samples = sample_boxes(wide, ABEParams())  # the boxes do not depend on the degree: sampled once
        wide_surface = fit_background(wide, ABEParams(degree=2), None, wide_samples)[0].evaluate()
    except MsgrError:
        return None
    valid = blocks_free_of(exclude, narrow.shape, block)
    # a 40 px saturated patch in the narrow frame, averaged into its blocks, took the correlation from
    # 0.69 to 0.05, and the large-scale fallback with it
    narrow_blocks, wide_blocks, clean = defect_free_means(narrow, wide, defects, block)
    valid &= clean
    wide_beyond = wide_blocks - downsample(wide_surface, block)
    seen = _correlation(narrow_blocks - downsample(narrow_surface, block), wide_beyond, valid)
    for degree in WITNESS_HIGH_DEGREES:
        if seen >= WITNESS_MIN:
            break
        try:
            high = ABEParams(**{**p.__dict__, "degree": degree})
            narrow_high = downsample(fit_background(narrow, high, None, samples)[0].evaluate(), block)
            wide_high = downsample(fit_background(wide, ABEParams(degree=degree), None, wide_samples)[0].evaluate(),
                                   block)
        except MsgrError:
            break
        seen = max(seen, _correlation(narrow_blocks - narrow_high, wide_blocks - wide_high, valid))
    return Witness(block, valid, narrow_surface, wide_beyond, seen, wide_blocks)


def choose_floor_degree(narrow: np.ndarray, p: ABEParams, witness: Witness | None = None,
                        samples: BoxSamples | None = None) -> tuple[int, dict, str]:
    """The single-image floor's degree, chosen blind: (degree, record, how it was chosen).

    Cross-validation on held-out sample boxes over :data:`BLIND_DEGREES`. With a ``witness`` (what
    the registered wide image shows, :func:`large_scale_witness`), a higher degree that
    cross-validation prefers is taken where the wide image witnesses that the structure it adds is
    gradient: it sees the narrow one's large-scale structure (``sky_seen`` at least WITNESS_MIN) but
    not the higher degree's additions (correlation at most FOLLOWS_WIDE_MAX). ``narrow`` is (H, W),
    nominally in [0, 1]; ``samples`` its boxes with ``p``, when the caller has them. Raises MsgrError
    when too few sky boxes remain.
    """
    if witness is None:
        degree, cv = blind_degree(narrow, p, samples=samples)  # the same choice as ABE's degree: auto
        return degree, {"cv_error": cv.get("cv_error")}, f"ABE degree {degree}, chosen by cross-validation"
    high, cv = choose_degree(narrow, p, samples=samples)
    blind = simplest_degree(cv["cv_error"], BLIND_DEGREES)
    record = {"cv_error": cv["cv_error"]}
    how = f"ABE degree {blind}, chosen by cross-validation"
    if high <= max(BLIND_DEGREES):
        return blind, record, how
    try:
        surface = fit_background(narrow, ABEParams(**{**p.__dict__, "degree": high}), None, samples)[0].evaluate()
    except MsgrError:
        return blind, record, how
    follows = _correlation(downsample(surface - witness.narrow_surface, witness.block), witness.wide_beyond,
                           witness.valid)
    used = witness.sky_seen >= WITNESS_MIN and follows <= FOLLOWS_WIDE_MAX
    record["witness"] = {"degree": high, "sky_seen": witness.sky_seen, "follows_wide": follows, "used": used}
    if not used:
        return blind, record, how
    return high, record, (f"ABE degree {high}, chosen by cross-validation: the wide image sees the same "
                          f"large-scale sky (r = {witness.sky_seen:.2f}) but not what degree {high} adds over 2 "
                          f"(r = {follows:.2f}), so that is gradient")


def _joint_floor(narrow: np.ndarray, wide: np.ndarray, exclude: np.ndarray | None, p: ABEParams,
                 witness: Witness, info: dict, samples: BoxSamples | None = None,
                 defects: np.ndarray | None = None) -> tuple[np.ndarray, str] | None:
    """The joint background (:func:`joint_background`) where the wide image sees the narrow image's
    large-scale sky (``witness.sky_seen`` at least WITNESS_MIN) and the model does not depart from
    ABE's own by more than JOINT_MAX_DEPARTURE: (model (H, W), how), or None."""
    if witness.sky_seen < WITNESS_MIN:
        return None
    try:
        degree, _ = blind_degree(narrow, p, samples=samples)
        own = fit_background(narrow, ABEParams(**{**p.__dict__, "degree": degree}), None, samples)[0].evaluate()
    except MsgrError:
        return None
    # the polynomial is at least as flexible as ABE's blind choice for the narrow image alone: the wide
    # image's term takes nebula off it, which never makes the gradient simpler. Chosen among all
    # degrees, one within 5 % of the best, a degree-1 plane, took a real pair to 6.28 % of sky (the
    # input 5.81; ABE's degree 2: 4.45) after a small change to its starless images
    joint = joint_background(narrow, wide, exclude, degrees=tuple(range(max(1, degree), 7)), defects=defects)
    if joint is None:
        return None
    model, record = joint
    # the joint model may depart from ABE's own (blind) model of the narrow image by at most
    # JOINT_MAX_DEPARTURE times that model's amplitude: more means the wide image's term carried
    # something other than the sky (two photographs whose large scales are not linearly related)
    step = _stride(narrow.shape, 250_000)
    where = np.ones(narrow.shape, bool)[::step, ::step] if exclude is None else ~exclude[::step, ::step]
    own_s, joint_s = own[::step, ::step][where], model[::step, ::step][where]
    amplitude = float(np.std(own_s - np.median(own_s)))
    departure = float(np.std((joint_s - own_s) - np.median(joint_s - own_s))) / max(amplitude, 1e-12)
    record.update(departure=departure, used=degree > 0 and departure <= JOINT_MAX_DEPARTURE)
    info["floor_joint"] = record
    if not record["used"]:
        return None
    info["floor_degree"] = record["degree"]
    term = (f"a cubic tone curve of the wide image's large scales (slope {record['b']:.3g} at its median)"
            if record["tone"] == "cubic" else f"{record['b']:.3g} x the wide image's large scales")
    return model, (f"a polynomial of degree {record['degree']} fitted jointly with {term}, which sees the same sky "
                   f"(r = {witness.sky_seen:.2f}) and takes its nebula")


def single_image_floor(narrow: np.ndarray, info: dict, why: str, degree: int = 0,
                       unbalance: float = 1.8, wide: np.ndarray | None = None,
                       exclude: np.ndarray | None = None, passes: int = 1,
                       defects: np.ndarray | None = None) -> MatchResult:
    """Where the wide image cannot be trusted at all: a background model of the narrow image alone, as
    the difference to smooth and subtract (``narrow`` (H, W), nominally in [0, 1]).

    The model is ABE's with ``unbalance`` (how far below the surface a sample box may lie, in units of
    ABE's ``deviation`` sigma) at ``degree``, or with ``degree`` 0 at a degree chosen blind by
    :func:`choose_floor_degree` (0-2 by cross-validation on held-out sample boxes, higher where the wide
    image shows the added structure is no sky). A constant winning the cross-validation means no
    gradient is seen: nothing is subtracted then; nor where that blind surface follows the large-scale
    sky the wide image shows (correlation of their block means at least FLOOR_FOLLOWS_MAX): it would
    take the nebula both images see. A degree given by hand is for a frame the user
    knows to be mostly empty sky, where a more flexible surface follows the gradient and not nebula.
    Where the narrow image has no data (a stack's black borders), ABE does not sample it.

    Parameters
    ----------
    narrow : ndarray
        float32 (H, W), nominally in [0, 1].
    info : dict
        The checks' record so far; the floor's choice is added to it.
    why : str
        Why the wide image was not used (the start of the check text).
    degree : int
        ABE's degree; 0 = chosen blind.
    unbalance : float
        How far below the surface a sample box may lie (ABE's ``deviation`` sigma).
    wide : ndarray, optional
        float32 (H, W), the registered wide image: the witness of :func:`choose_floor_degree`.
    exclude : ndarray, optional
        (H, W) bool, where either image has no data.
    passes : int
        ABE's passes (2: fitted again on the boxes flattened by the first fit).
    defects : ndarray, optional
        (H, W) bool, pixels left out of the wide image's witness and the joint fit, whose block means
        a saturated patch would pull (:func:`saturated_pixels`).

    Returns
    -------
    MatchResult
        The model as the difference, the narrow image minus it as ``fitted``, and ``info``.
    """
    p = ABEParams(unbalance=unbalance, passes=passes)
    how = f"ABE degree {degree}, given"
    try:  # the narrow image's boxes, sampled once for every fit and choice below
        samples = sample_boxes(narrow, p)
    except MsgrError:
        samples = None  # too small for boxes: each step below says so in its own way
    witness = (large_scale_witness(narrow, wide, exclude, p, samples, defects)
               if degree == 0 and wide is not None else None)
    if witness is not None:
        info["floor_sky_seen"] = witness.sky_seen
    joint = _joint_floor(narrow, wide, exclude, p, witness, info, samples, defects) if witness is not None else None
    if joint is not None:
        model, how = joint
        return _floor_result(narrow, model, info, f"large-scale fallback: {why}; used {how}")
    if degree == 0:
        try:
            degree, record, how = choose_floor_degree(narrow, p, witness, samples)
        except Exception as exc:  # too few sky boxes: leave the image alone rather than guess
            degree, record = 0, {"cv_error": None, "error": str(exc)}
        info["floor_cv"] = record.get("cv_error")
        if "witness" in record:
            info["floor_witness"] = record["witness"]
    info.update(a=0.0, b=0.0, floor_degree=degree)
    if degree == 0:
        return _nothing_subtracted(narrow, info, f"no correction: {why}; no single-image gradient either; "
                                                 f"nothing was subtracted")
    p.degree = degree
    surf, _ = fit_background(narrow, p, None, samples)
    model = surf.evaluate()
    if witness is not None and witness.sky_seen >= WITNESS_MIN and not info.get("floor_witness", {}).get("used"):
        # a blind degree's surface the wide image shows to be sky (its own witnessed degree was checked)
        follows = _correlation(downsample(model, witness.block), witness.wide_blocks, witness.valid)
        info["floor_follows_wide"] = follows
        if follows >= FLOOR_FOLLOWS_MAX:
            info["floor_degree"] = 0  # what was subtracted: nothing (the check names the degree refused)
            return _nothing_subtracted(narrow, info, (
                f"no correction: {why}; a background model of the narrow image alone ({how}) follows the "
                f"large-scale sky the wide image shows (r = {follows:.2f}): it would take nebula, not gradient, "
                f"so nothing was subtracted (give ABE's degree by hand, floor_degree, for a frame you know to "
                f"be mostly empty sky)"))
    return _floor_result(narrow, model, info, f"single-image fallback: {why}; used a background model "
                                                        f"of the narrow image alone ({how})")


def _nothing_subtracted(narrow: np.ndarray, info: dict, check: str) -> MatchResult:
    """No floor: a zero difference, the narrow image (H, W) as ``fitted``, ``check`` as the verdict."""
    info["check"] = check
    return MatchResult(np.zeros(narrow.shape, np.float32), narrow.astype(np.float32).copy(), info)


def _floor_result(narrow: np.ndarray, model: np.ndarray, info: dict, check: str) -> MatchResult:
    """A floor's model (H, W), its median taken out, as the difference to smooth and subtract; the
    narrow image minus it as ``fitted``; no slope or offset, and ``check`` as the verdict."""
    model = (model - np.float32(sampled_median(model))).astype(np.float32)
    info.update(a=0.0, b=0.0, check=check)
    return MatchResult(model, (narrow - model).astype(np.float32), info)


def saturated_pixels(narrow: np.ndarray, wide: np.ndarray, reject_high: float = 0.92) -> np.ndarray | None:
    """(H, W) bool: pixels at or above ``reject_high`` in either plane (H, W), nominally in [0, 1]
    (a saturated patch, blooming, a clipped core), widened by the size of the largest saturated region
    (at least 4 px): a star mask's fill blends a saturated region into a halo about as wide as
    itself (a 40 px patch: 0.1-0.6 of full scale 24 px beyond it). None where there are none."""
    saturated = (narrow >= reject_high) | (wide >= reject_high)
    if not saturated.any():
        return None
    labels, _ = ndimage.label(saturated)
    largest = int(np.bincount(labels.ravel())[1:].max())
    reach = max(4.0, math.sqrt(largest))
    return ndimage.distance_transform_edt(~saturated) <= reach


def local_defects(narrow: np.ndarray, wide: np.ndarray, slope: float, reject_high: float = 0.92,
                  sigma: float = 2.0) -> np.ndarray:
    """Pixels (H, W) bool of either plane that no sky explains: saturated ones, and those where the
    finest detail band of narrow - slope x wide stands beyond DEFECT_SIGMA robust sigmas (a trail,
    blooming, hot pixels, a stacking edge), each widened by 2 sigma px. No outlier of the band is
    marked when more than MAX_DEFECT_SHARE of the frame would be: that is a mismatch of the whole
    image, for the self-checks to judge, not a local defect (saturated pixels are marked all the same).

    Parameters
    ----------
    narrow, wide : ndarray
        float32 (H, W) planes on the same grid, values nominally in [0, 1].
    slope : float
        narrow ~ slope x wide (the large-scale slope), so that the shared sky cancels.
    reject_high : float
        Pixels at or above this value in either plane are saturated.
    sigma : float
        Gaussian sigma (px) of the finest detail band searched for defects.

    Returns
    -------
    ndarray
        (H, W) bool, True where a pixel is to be left out.
    """
    # large frames are searched on block means (at most WORKING_PIXELS): a 5 px trail stays far out
    k = _stride(narrow.shape)
    n, w = downsample(narrow, k), downsample(wide, k)
    r = bandpass(n - np.float32(slope) * w, max(sigma / k, 1.0))
    centre, spread = _centre_and_spread(r)
    saturated = (n >= reject_high) | (w >= reject_high)
    marked = np.abs(r - centre) > DEFECT_SIGMA * spread
    reach = int(math.ceil(2 * sigma / k))
    if marked.any():
        marked = ndimage.binary_dilation(marked, iterations=reach)
    if marked.mean() > MAX_DEFECT_SHARE:
        # a mismatch of the whole image, for the checks to judge; saturation is a defect all the same
        marked[:] = False
    if saturated.any():
        marked |= ndimage.binary_dilation(saturated, iterations=reach)
    if not marked.any():
        return np.zeros(narrow.shape, bool)
    return upsample_mask(marked, narrow.shape, k) if k > 1 else marked


# Where the wide image has no data, the narrow image's own background model replaces the
# interpolation only when it predicts the held-out ring with at most this share of the interpolation's
# error: a near tie is no evidence (on a frame of nebula, a tie at 0.99 hid a model that doubled the
# residual).
OWN_BACKGROUND_MARGIN = 0.7
# Smaller no-data regions (a strip along an edge after registration) are bridged from right next
# to them, and not worth an ABE fit of the whole frame.
OWN_BACKGROUND_SHARE = 0.05


def _own_background_where_no_data(diff: np.ndarray, narrow: np.ndarray, region: np.ndarray, info: dict,
                                  block: int = 8) -> np.ndarray:
    """``diff`` (H, W), already interpolated across ``region`` ((H, W) bool, where the wide image has
    no data), or with the narrow image's own background model there instead, whichever predicts the
    trusted difference better next to the region (chosen blind, as a held-out check).

    The model is ABE with its degree chosen by cross-validation, brought to meet the difference in a
    ring around the region by a plane (an offset and a tilt): what ABE takes of the narrow image's
    nebula is mostly of low order, and the trusted difference next to the region shows it. The check
    holds out a ring of the covered frame next to the region, as deep as the region; the interpolation
    from beyond it and the model matched beyond it each predict it (block means of ``block`` px), and
    the model is used if its RMS error is at most OWN_BACKGROUND_MARGIN of the interpolation's.
    Interpolation cannot know a glow in an uncovered corner; the narrow image's own model can, unless
    it follows nebula there. ``diff`` is changed in place."""
    coarse_region = downsample(region, block) > 0
    # the held-out ring is as deep as the region itself, so the interpolation is tested across as
    # wide a gap as it has to bridge
    width = max(2, int(ndimage.distance_transform_edt(coarse_region).max()))
    near = ndimage.binary_dilation(coarse_region, iterations=width)
    held_out = near & ~coarse_region
    beyond = ndimage.binary_dilation(near, iterations=max(2, width // 4)) & ~near
    if not held_out.any() or not beyond.any():
        return diff
    truth = downsample(diff, block)
    interpolated = fill_masked(np.where(near, 0, truth).astype(np.float32), near)
    try:
        degree, _ = choose_degree(narrow, ABEParams())
        surf, _ = fit_background(narrow, ABEParams(degree=max(degree, 1)))
    except MsgrError:  # too few sky boxes: keep the interpolation
        return diff
    own = surf.evaluate()
    own_coarse = downsample(own, block)
    error_interpolated = float(np.sqrt(np.mean((interpolated - truth)[held_out] ** 2)))
    mismatch = own_coarse - truth
    plane = _plane_through(mismatch, beyond, block, narrow.shape)
    hx, hy = _block_centres(held_out, block)
    error_own = float(np.sqrt(np.mean((mismatch[held_out] - plane.at(hx, hy)) ** 2)))
    info["no_data_errors"] = {"interpolated": error_interpolated, "own_background": error_own}
    if error_own > OWN_BACKGROUND_MARGIN * error_interpolated:
        return diff
    plane = _plane_through(mismatch, held_out | beyond, block, narrow.shape)
    ys, xs = np.nonzero(region)
    diff[ys, xs] = own[ys, xs] - plane.at(xs, ys).astype(np.float32)
    info["check"] += (f"; there the narrow image's own background model (ABE degree {max(degree, 1)}) predicts "
                      f"the difference better than interpolation, and is used")
    return diff


def _block_centres(where: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """The full-resolution pixel coordinates (x, y) of the centres of the blocks of ``block`` px that
    are True in ``where`` (a grid of block means): block k holds pixels k * block ... (k + 1) * block - 1."""
    ys, xs = np.nonzero(where)
    return (xs + 0.5) * block - 0.5, (ys + 0.5) * block - 0.5


def _plane_through(values: np.ndarray, where: np.ndarray, block: int, shape: tuple[int, int]) -> Surface:
    """The least-squares plane through the block means ``values`` (h, w) at ``where`` ((h, w) bool, not
    empty), as ABE's degree-1 :class:`~msgr_nodes.ops.abe.Surface` on the full-resolution frame
    ``shape`` (H, W); a constant, their median, where the blocks are too few for a tilt."""
    x, y = _block_centres(where, block)
    if x.size < 3:
        return Surface("polynomial", shape, np.array([float(np.median(values[where]))]), 0)
    coef, *_ = np.linalg.lstsq(polynomial_design(x, y, shape, 1), values[where].astype(np.float64), rcond=None)
    return Surface("polynomial", shape, coef, 1)


def fill_coarse(plane: np.ndarray, mask: np.ndarray, block: int = 4, inplace: bool = False) -> np.ndarray:
    """``plane`` (H, W) with its masked pixels replaced by their surroundings, filled on block means of
    ``block`` px: the difference goes on to LargeScales, which keeps only scales far above that, so
    the fill needs no finer detail (and costs a sixteenth of a full-resolution one).

    A block's mean is that of its pixels outside the mask, and only blocks with fewer than a quarter
    of such pixels are filled from around them. A block with any masked pixel was filled as a whole
    before: in a dense star field (masks on 55 % of the Eta Carinae frame) that left the gaps between
    the stars out and filled from far off, 7.6 % of sky wrong inside the masks on a smooth gradient
    (0.67 now); under M42's large masks 0.91 (0.29)."""
    # the loop keeps no masked copy of the frame: a second full frame per channel at DetailFit's peak
    coarse, share = clean_block_means(plane, mask, block)
    filled = fill_masked(coarse, share < np.float32(0.25))
    hc, wc = coarse.shape
    out = plane if inplace else plane.copy()
    ys, xs = np.nonzero(mask)
    out[ys, xs] = filled[np.minimum(ys // block, hc - 1), np.minimum(xs // block, wc - 1)]
    return out
