"""Register a target image (wide field) onto a reference grid (narrow field).

Coordinates are 0-based pixel (x = column, y = row) in the arrays' own order.
Pipeline: an initial mapping reference -> target from both WCS headers, or, without
them, by finding the narrow field in the wide one (astroalign on the reference binned
to candidate scales, over tiles of the target, mirrored too); then star matching
with a KD-tree, a projective model by RANSAC, and a smoothing thin-plate spline on
the residuals with k-sigma rejection (an approximating spline, as StarAlignment
uses). The map is evaluated on a coarse grid and interpolated; the target is
resampled with a cubic kernel and clamped against ringing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.spatial import cKDTree

from ..errors import MsgrError
from .lens_falloff import star_falloff
from .stars import Detection, detect


class RegistrationError(MsgrError):
    """Registration failed; the message says what to change."""


class FieldsDoNotOverlap(RegistrationError):
    """Both WCS headers are valid and say the two fields share no sky."""


@dataclass
class Registration:
    """Reference pixel -> target pixel: a homography plus an optional thin-plate-spline correction."""

    H: np.ndarray                              # 3x3, maps (x, y, 1) of the reference to the target
    ref_shape: tuple[int, int]
    tgt_shape: tuple[int, int]
    tps_nodes: np.ndarray | None = None        # (m, 2) reference positions, normalised
    tps_fit: object = None                     # scipy RBFInterpolator on normalised coords
    norm: tuple[float, float, float] = (0.0, 0.0, 1.0)  # centre x, centre y, scale
    stats: dict = field(default_factory=dict)
    target_hot_pixels: np.ndarray | None = None  # (n, 2) x, y target px of the target's hot pixels

    def projective(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = self.H[2, 0] * x + self.H[2, 1] * y + self.H[2, 2]
        return ((self.H[0, 0] * x + self.H[0, 1] * y + self.H[0, 2]) / w,
                (self.H[1, 0] * x + self.H[1, 1] * y + self.H[1, 2]) / w)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, v = self.projective(np.asarray(x, np.float64), np.asarray(y, np.float64))
        if self.tps_fit is not None:
            cx, cy, s = self.norm
            pts = np.stack([(np.ravel(x) - cx) / s, (np.ravel(y) - cy) / s], axis=1)
            d = self.tps_fit(pts)
            u = u + d[:, 0].reshape(np.shape(u))
            v = v + d[:, 1].reshape(np.shape(v))
        return u, v

    def to_dict(self) -> dict:
        return {"kind": "projective+tps" if self.tps_fit is not None else "projective",
                "H": self.H.tolist(), "reference_shape": list(self.ref_shape),
                "target_shape": list(self.tgt_shape), "stats": self.stats}


class WCSRegistration(Registration):
    """The mapping through both WCS (SIP distortion included), used when too few stars match."""

    def __init__(self, ref_header, tgt_header, H, ref_shape, tgt_shape, stats):
        super().__init__(H, ref_shape, tgt_shape, stats=stats)
        self._wr, self._wt = _celestial_wcs(ref_header), _celestial_wcs(tgt_header)

    def __call__(self, x, y):
        ra, dec = self._wr.all_pix2world(np.ravel(x), np.ravel(y), 0)
        u, v = self._wt.all_world2pix(ra, dec, 0)
        return u.reshape(np.shape(x)), v.reshape(np.shape(y))

    def to_dict(self) -> dict:
        return dict(super().to_dict(), kind="wcs")


# ------------------------------------------------------------------ initial mapping
def _celestial_wcs(header):
    if header is None:
        return None
    from astropy.wcs import WCS, FITSFixedWarning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            w = WCS(header, naxis=2)
        except Exception:
            return None
    return w if w.has_celestial and w.wcs.ctype[0] else None


def _stars_only(det: Detection) -> Detection:
    """The detection without its hot pixels (:meth:`Detection.hot_pixels`)."""
    hot = det.hot_pixels()
    return det.subset(~hot) if hot.any() and not hot.all() else det


def _normalizing(points: np.ndarray) -> np.ndarray:
    """The similarity (3x3) that centres points (N, 2) and scales their mean distance to sqrt(2)."""
    c = points.mean(axis=0)
    d = float(np.mean(np.hypot(points[:, 0] - c[0], points[:, 1] - c[1])))
    if not np.isfinite(d) or d <= 0:
        raise RegistrationError("could not fit a projective transform to the matched stars (they coincide)")
    k = math.sqrt(2.0) / d
    return np.array([[k, 0.0, -k * c[0]], [0.0, k, -k * c[1]], [0.0, 0.0, 1.0]])


def _fit_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 homography src (N, 2) -> dst (N, 2) by the normalized direct linear transform.

    scikit-image's ProjectiveTransform solves the same least-squares problem but through a full SVD
    of its 2N x 9 matrix, whose 2N x 2N left factor alone took 40 ms per fit for 2000 stars (1 s of
    every registration); only the right factor is needed."""
    ts, td = _normalizing(src), _normalizing(dst)
    p = src @ ts[:2, :2].T + ts[:2, 2]
    q = dst @ td[:2, :2].T + td[:2, 2]
    n = p.shape[0]
    a = np.zeros((2 * n, 9))
    a[:n, 0:2], a[:n, 2] = p, 1.0
    a[:n, 6:8], a[:n, 8] = -q[:, :1] * p, -q[:, 0]
    a[n:, 3:5], a[n:, 5] = p, 1.0
    a[n:, 6:8], a[n:, 8] = -q[:, 1:] * p, -q[:, 1]
    h = np.linalg.svd(a, full_matrices=False)[2][-1].reshape(3, 3)
    h = np.linalg.inv(td) @ h @ ts
    if not np.all(np.isfinite(h)) or abs(h[2, 2]) < 1e-12:
        raise RegistrationError("could not fit a projective transform to the matched stars")
    return h / h[2, 2]


def initial_from_wcs(ref_header, tgt_header, ref_shape, tgt_shape) -> np.ndarray | None:
    """Homography reference -> target through the sky, from both WCS (SIP included); None without WCS.

    Raises :class:`RegistrationError` when the headers say the fields do not overlap."""
    wr, wt = _celestial_wcs(ref_header), _celestial_wcs(tgt_header)
    if wr is None or wt is None:
        return None
    h, w = ref_shape
    th, tw = tgt_shape
    gx, gy = np.meshgrid(np.linspace(0, w - 1, 12), np.linspace(0, h - 1, 12))
    ra, dec = wr.all_pix2world(gx.ravel(), gy.ravel(), 0)
    with np.errstate(all="ignore"):
        # quiet: points far outside a SIP field do not converge; they come back as they are and
        # the overlap test below judges them
        u, v = wt.all_world2pix(ra, dec, 0, quiet=True)
    ok = np.isfinite(u) & np.isfinite(v)
    inside = ok & (u >= -0.5) & (u <= tw - 0.5) & (v >= -0.5) & (v <= th - 0.5)
    if not inside.any():
        tra, tdec = wt.all_pix2world((tw - 1) / 2, (th - 1) / 2, 0)
        sep = _separation_deg(float(ra[ra.size // 2]), float(dec[dec.size // 2]), float(tra), float(tdec))
        raise FieldsDoNotOverlap(f"the WCS headers say the fields do not overlap: the reference's centre is "
                                 f"{sep:.2f} deg from the target's centre, outside its field; check that both "
                                 f"images show the same sky")
    if ok.sum() < 8:
        return None
    return _fit_homography(np.stack([gx.ravel(), gy.ravel()], 1)[ok], np.stack([u, v], 1)[ok])


def _separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angle between two sky positions (degrees in, degrees out)."""
    from astropy.coordinates import angular_separation
    import astropy.units as u

    return float(angular_separation(ra1 * u.deg, dec1 * u.deg, ra2 * u.deg, dec2 * u.deg).to_value(u.deg))


def triangle_invariants(points: np.ndarray, neighbours: int = 5) -> np.ndarray:
    """Scale-, rotation- and mirror-invariant descriptors of a star list (n, 2): for every star and
    its nearest neighbours, each triangle's side ratios (L2/L1, L3/L2) with L1 >= L2 >= L3."""
    from itertools import combinations

    if len(points) < 3:
        return np.zeros((0, 2))
    k = min(neighbours, len(points))
    _, idx = cKDTree(points).query(points, k)
    tris = {tuple(sorted(t)) for row in idx for t in combinations(row, 3)}
    tri = np.array(sorted(tris))
    p = points[tri]
    sides = np.sort(np.stack([np.hypot(*(p[:, 0] - p[:, 1]).T), np.hypot(*(p[:, 1] - p[:, 2]).T),
                              np.hypot(*(p[:, 0] - p[:, 2]).T)], 1), axis=1)[:, ::-1]
    ok = sides[:, 1] > 0
    return np.stack([sides[ok, 1] / sides[ok, 0], sides[ok, 2] / sides[ok, 1]], 1)


def initial_by_search(ref_det: Detection, tgt_det: Detection, ref_shape, tgt_shape,
                      ratios=(1.5, 2, 3, 4, 5, 6, 8), n_points: int = 50, candidates: int = 4,
                      progress: Callable[[float, str], None] | None = None) -> tuple[np.ndarray, dict]:
    """Find the reference field inside the target without WCS.

    Triangle invariants do not depend on scale, rotation or mirroring: the target is cut
    into overlapping tiles sized for each candidate scale ratio, each tile is scored by how
    many of its brightest stars' invariants agree with the reference's, and astroalign
    fits the transform (direct and mirrored) on the best few tiles only.

    Parameters
    ----------
    ref_det, tgt_det : Detection
        Stars of the reference and the target image (0-based pixels).
    ref_shape, tgt_shape : tuple of int
        (H, W) of each image.
    ratios : sequence of float
        Candidate target-to-reference scale ratios (target px per reference px, inverted).
    n_points : int
        Brightest stars per side used for the triangle invariants.
    candidates : int
        Best-scoring tiles that get a full fit.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    H : ndarray
        3x3 homography, reference (x, y, 1) -> target.
    stats : dict
        ``search_matches`` (stars that agree) and ``mirrored``.
    """
    import astroalign as aa

    h, w = ref_shape
    th, tw = tgt_shape
    ref_best = ref_det.brightest(n_points)
    src0 = np.stack([ref_best.x, ref_best.y], 1)
    ref_tree = cKDTree(triangle_invariants(src0))
    tgt_xy = np.stack([tgt_det.x, tgt_det.y], 1)
    order = np.argsort(-tgt_det.flux)
    tiles = []
    for ratio in ratios:
        fh, fw = h / ratio, w / ratio
        ty, tx = min(th, int(fh * 1.5) + 1), min(tw, int(fw * 1.5) + 1)
        sy, sx = max(1, int(fh * 0.5)), max(1, int(fw * 0.5))
        for y0 in sorted(set(list(range(0, max(th - ty, 0) + 1, sy)) + [max(th - ty, 0)])):
            for x0 in sorted(set(list(range(0, max(tw - tx, 0) + 1, sx)) + [max(tw - tx, 0)])):
                inside = order[(tgt_xy[order, 0] >= x0) & (tgt_xy[order, 0] < x0 + tx) &
                               (tgt_xy[order, 1] >= y0) & (tgt_xy[order, 1] < y0 + ty)][:n_points]
                if inside.size < 8:
                    continue
                inv = triangle_invariants(tgt_xy[inside])
                votes = sum(len(m) > 0 for m in ref_tree.query_ball_point(inv, 0.01))
                tiles.append((votes / max(len(inv), 1), ratio, inside))
    tiles.sort(key=lambda t: -t[0])
    best = None
    for k, (_, ratio, inside) in enumerate(tiles[:candidates]):
        for flip in (False, True):
            if progress:
                progress((2 * k + flip) / (2 * candidates), f"matching stars at scale 1/{ratio:g}")
            src = src0.copy()
            if flip:
                src[:, 0] = (w - 1) - src[:, 0]
            try:
                T, (s_pts, _) = aa.find_transform(src, tgt_xy[inside], max_control_points=n_points)
            except Exception:  # no consistent match on this tile
                continue
            if best is None or len(s_pts) > best[0]:
                best = (len(s_pts), flip, T.params.copy())
        if best is not None and best[0] >= 12:
            break
    if best is None or best[0] < 6:
        raise RegistrationError("could not find the reference field in the target: no star pattern matched "
                                "(check that both images show the same sky, lower detection_sigma, or add WCS "
                                "by plate solving)")
    n, flip, M = best
    A = np.array([[-1.0 if flip else 1.0, 0, (w - 1.0) if flip else 0.0], [0, 1, 0], [0, 0, 1]])
    return M @ A, {"search_matches": int(n), "mirrored": bool(flip)}


# ------------------------------------------------------------------ refinement
def _match(reg_fn, ref_xy: np.ndarray, tgt_xy: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    u, v = reg_fn(ref_xy[:, 0], ref_xy[:, 1])
    tree = cKDTree(tgt_xy)
    d, j = tree.query(np.stack([u, v], 1), distance_upper_bound=tol)
    ok = np.isfinite(d)
    i = np.flatnonzero(ok)
    j = j[ok]
    # one target star for one reference star: keep the closest pair
    order = np.argsort(d[ok])
    seen, keep = set(), []
    for k in order:
        if j[k] not in seen:
            seen.add(j[k])
            keep.append(k)
    keep = np.array(sorted(keep), int)
    return i[keep], j[keep]


def refine(H0: np.ndarray, ref_det: Detection, tgt_det: Detection, ref_shape, tgt_shape, *,
           tolerance: float = 4.0, smoothing: float = 0.0005, distortion: bool = True, iterations: int = 6,
           clip_sigma: float = 3.0, min_stars: int = 8) -> Registration:
    """Projective model by RANSAC on matched stars, then a smoothing TPS on its residuals.

    Parameters
    ----------
    H0 : ndarray
        3x3 initial homography, reference (x, y, 1) -> target.
    ref_det, tgt_det : Detection
        Stars of each image (0-based pixels).
    ref_shape, tgt_shape : tuple of int
        (H, W) of each image.
    tolerance : float
        Match radius in target px.
    smoothing : float
        Thin-plate-spline smoothing of the distortion correction (PixInsight's splineSmoothness).
    distortion : bool
        Fit the distortion correction at all.
    iterations : int
        Match-and-fit rounds.
    clip_sigma : float
        Matches with residuals beyond this many robust sigmas are dropped each round.
    min_stars : int
        Fewer matched stars than this raises RegistrationError.

    Returns
    -------
    Registration
        The mapping with its residual statistics in ``stats``.
    """
    from scipy.interpolate import RBFInterpolator
    from skimage.measure import ransac
    from skimage.transform import ProjectiveTransform

    ref_xy = np.stack([ref_det.x, ref_det.y], 1)
    tgt_xy = np.stack([tgt_det.x, tgt_det.y], 1)
    reg = Registration(H0, ref_shape, tgt_shape)
    i, j = _match(reg, ref_xy, tgt_xy, tolerance)
    if i.size < min_stars:
        raise RegistrationError(f"only {i.size} stars matched within {tolerance:g} target px (need {min_stars}): "
                                f"the initial alignment is off; check the WCS headers, or lower detection_sigma")
    # few stars cannot pin down a projective model's 8 parameters: use fewer then
    from skimage.transform import AffineTransform, SimilarityTransform

    kind = ProjectiveTransform if i.size >= 30 else AffineTransform if i.size >= 12 else SimilarityTransform
    model, inliers = ransac((ref_xy[i], tgt_xy[j]), kind, min_samples=kind is SimilarityTransform and 2 or
                            (3 if kind is AffineTransform else 4), residual_threshold=1.0, max_trials=2000, rng=0)
    if model is None or inliers is None or inliers.sum() < min_stars:
        raise RegistrationError("no consistent projective model among the matched stars")
    reg = Registration(model.params, ref_shape, tgt_shape)
    # re-match with the better model and a tighter tolerance
    i, j = _match(reg, ref_xy, tgt_xy, min(tolerance, 2.0))
    fit_model = (lambda p, q: _fit_homography(p, q)) if i.size >= 30 else (lambda p, q: kind.from_estimate(p, q).params)
    H = fit_model(ref_xy[i], tgt_xy[j])
    reg = Registration(H, ref_shape, tgt_shape)
    keep = np.ones(i.size, bool)
    h, w = ref_shape
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    s = math.hypot(cx, cy)
    for _ in range(iterations):
        p, q = ref_xy[i[keep]], tgt_xy[j[keep]]
        H = fit_model(p, q)
        reg = Registration(H, ref_shape, tgt_shape)
        if distortion and keep.sum() >= 30:
            u, v = reg.projective(p[:, 0], p[:, 1])
            nodes = np.stack([(p[:, 0] - cx) / s, (p[:, 1] - cy) / s], 1)
            fit = RBFInterpolator(nodes, np.stack([q[:, 0] - u, q[:, 1] - v], 1), kernel="thin_plate_spline",
                                  smoothing=smoothing * keep.sum())
            reg = Registration(H, ref_shape, tgt_shape, nodes, fit, (cx, cy, s))
        u, v = reg(ref_xy[i, 0], ref_xy[i, 1])
        res = np.hypot(u - tgt_xy[j, 0], v - tgt_xy[j, 1])
        sigma = 1.4826 * np.median(np.abs(res[keep] - np.median(res[keep]))) + 1e-6
        new_keep = res < np.median(res[keep]) + clip_sigma * max(sigma, 0.02)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    u, v = reg(ref_xy[i[keep], 0], ref_xy[i[keep], 1])
    res = np.hypot(u - tgt_xy[j[keep], 0], v - tgt_xy[j[keep], 1])
    scale = math.sqrt(abs(np.linalg.det(H[:2, :2])))
    rotation = math.degrees(math.atan2(H[1, 0] - H[0, 1], H[0, 0] + H[1, 1]))
    reg.stats = {"matched": int(i.size), "inliers": int(keep.sum()),
                 "rms_target_px": float(np.sqrt(np.mean(res ** 2))), "peak_target_px": float(res.max()),
                 "rms_reference_px": float(np.sqrt(np.mean(res ** 2)) / max(scale, 1e-9)),
                 "scale_ratio": float(1.0 / max(scale, 1e-9)), "rotation_deg": float(rotation),
                 "mirrored": bool(np.linalg.det(H[:2, :2]) < 0), "distortion": reg.tps_fit is not None}
    return reg


# ------------------------------------------------------------------ resampling
def _axis_weights(n_out: int, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.interp(np.arange(n_out, dtype=np.float64), nodes, np.arange(nodes.size, dtype=np.float64))
    i0 = np.minimum(np.floor(pos).astype(np.int64), nodes.size - 2)
    return i0, i0 + 1, (pos - i0).astype(np.float32)


def coordinate_maps(reg: Registration, step: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Target coordinates (map_x, map_y), float32 (H, W), of every reference pixel.

    The map is evaluated on a grid every ``step`` px that reaches one node past every
    border, and interpolated bilinearly: a TPS varies slowly, and evaluating it at every pixel costs far more
    than the warp itself (``benchmarks/register.py`` times both)."""
    xs, ys = _grid_nodes(reg.ref_shape, step)
    gx, gy = np.meshgrid(xs, ys)
    u, v = reg(gx.ravel(), gy.ravel())
    return (_from_grid(u.reshape(gx.shape), xs, ys, reg.ref_shape),
            _from_grid(v.reshape(gx.shape), xs, ys, reg.ref_shape))


def _grid_nodes(shape: tuple[int, int], step: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of a grid every ``step`` px that reaches one node past every border of ``shape``."""
    h, w = shape
    return (np.arange(-step, w + 2 * step, step, dtype=np.float64),
            np.arange(-step, h + 2 * step, step, dtype=np.float64))


def _from_grid(values: np.ndarray, xs: np.ndarray, ys: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Values on the grid nodes (ys.size, xs.size), interpolated bilinearly to every pixel of ``shape``."""
    i0, i1, wy = _axis_weights(shape[0], ys)
    j0, j1, wx = _axis_weights(shape[1], xs)
    g = values.astype(np.float32)
    rows = g[i0] * (1 - wy)[:, None] + g[i1] * wy[:, None]
    return np.ascontiguousarray(rows[:, j0] * (1 - wx)[None, :] + rows[:, j1] * wx[None, :], dtype=np.float32)


@dataclass
class GridSurface:
    """A smooth surface on a (H, W) frame, given at grid nodes (``xs``, ``ys`` in its pixels) and
    bilinear between: a background model carried at a few thousand values instead of a frame."""

    values: np.ndarray             # (ys.size, xs.size)
    xs: np.ndarray
    ys: np.ndarray
    shape: tuple[int, int]

    def evaluate(self, factor: int = 1) -> np.ndarray:
        """The surface at every pixel, float32 (H, W); for ``factor`` > 1 at the centres of the frame's
        factor x factor blocks, (H // factor, W // factor), as :func:`~msgr_nodes.ops.abe.downsample`
        gives a plane for an integer factor."""
        if factor <= 1:
            return _from_grid(self.values, self.xs, self.ys, self.shape)
        return _from_grid(self.values, (self.xs + 0.5) / factor - 0.5, (self.ys + 0.5) / factor - 0.5,
                          (self.shape[0] // factor, self.shape[1] // factor))


def smooth_onto_reference(plane: np.ndarray, transform: dict | None = None, step: int = 32) -> GridSurface:
    """A smooth plane (a background model) on the reference grid, as a :class:`GridSurface`.

    It is sampled where the transform's projective part maps a grid every ``step`` reference px:
    a surface that varies over hundreds of px needs neither the distortion correction (a few px) nor
    a warp of every pixel.

    Parameters
    ----------
    plane : ndarray
        float32 (h, w) on the target's grid, the transform's ``target_shape``.
    transform : dict, optional
        Register's transform output (:meth:`Registration.to_dict`): ``H`` maps reference (x, y, 1) to
        the target, with ``reference_shape`` and ``target_shape`` (rows, columns). None: the plane is
        on the reference grid already.
    step : int
        Grid step in reference px.

    Returns
    -------
    GridSurface
        On the reference frame; beyond the target's frame, its nearest border value.
    """
    from scipy import ndimage

    if transform is None:
        shape, H = plane.shape, np.eye(3)
    else:
        if not all(k in transform for k in ("H", "reference_shape", "target_shape")):
            raise MsgrError("the transform has no projective mapping (H, reference_shape, target_shape): give "
                            "Register's transform output")
        if tuple(transform["target_shape"]) != plane.shape:
            raise MsgrError(f"the transform maps onto a {transform['target_shape'][1]}x"
                            f"{transform['target_shape'][0]} image, not this {plane.shape[1]}x{plane.shape[0]} "
                            f"one: give the transform that registered this image")
        shape, H = tuple(int(v) for v in transform["reference_shape"]), np.asarray(transform["H"], np.float64)
    xs, ys = _grid_nodes(shape, step)
    gx, gy = np.meshgrid(xs, ys)
    u, v = Registration(H, shape, plane.shape).projective(gx, gy)
    values = ndimage.map_coordinates(np.asarray(plane, np.float32), [v.ravel(), u.ravel()], order=1, mode="nearest")
    return GridSurface(values.reshape(gx.shape), xs, ys, shape)


def resample(plane: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, fill: float,
             clamping: bool = True) -> np.ndarray:
    """Sample one plane (h, w) at (map_x, map_y): Keys cubic (OpenCV), clamped to the range of the
    neighbouring source pixels where ``clamping`` (no ringing around stars)."""
    import cv2

    src = np.ascontiguousarray(plane, dtype=np.float32)
    out = cv2.remap(src, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=float(fill))
    if clamping:
        from scipy import ndimage

        # the 3x3 neighbourhood of the nearest source pixel holds the 2x2 cell the cubic interpolates in
        lo = cv2.remap(ndimage.minimum_filter(src, 3), map_x, map_y, cv2.INTER_NEAREST,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=float(fill))
        hi = cv2.remap(ndimage.maximum_filter(src, 3), map_x, map_y, cv2.INTER_NEAREST,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=float(fill))
        np.clip(out, np.minimum(lo, hi), np.maximum(lo, hi), out=out)
    return out


def footprint(map_x: np.ndarray, map_y: np.ndarray, tgt_shape: tuple[int, int]) -> np.ndarray:
    """1 where the target covers the reference pixel, else 0 (float32 (H, W))."""
    h, w = tgt_shape
    return ((map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)).astype(np.float32)


# A start from WCS is kept only when the stars confirm it: a wrong WCS (another field, a bad plate
# solve) can still pair a few stars by chance, with a residual far above centroid errors.
# Twelve stars agreeing to half a pixel do not happen by chance.
MAX_CONFIRMED_RMS = 0.5  # target px
MIN_CONFIRMED_STARS = 12


def _confirmed(reg: Registration) -> bool:
    return (reg.stats.get("inliers", 0) >= MIN_CONFIRMED_STARS
            and reg.stats.get("rms_target_px", np.inf) <= MAX_CONFIRMED_RMS)


def register(ref: np.ndarray, tgt: np.ndarray, ref_header=None, tgt_header=None, *, use_wcs: bool = True,
             detection_sigma: float = 5.0, max_stars: int = 2000, min_stars: int = 20, tolerance: float = 4.0,
             smoothing: float = 0.0005, distortion: bool = True,
             progress: Callable[[float, str], None] | None = None) -> Registration:
    """Registration of a target image onto a reference image.

    Starts from both WCS headers when they exist (and ``use_wcs``), verified against the stars;
    otherwise, or when the stars do not confirm the WCS start, finds the reference field inside
    the target by a star-pattern search. Falls back to the WCS alone (with a warning in
    ``stats["warning"]``) only when too few stars can be matched either way.

    Parameters
    ----------
    ref, tgt : ndarray (H, W) and (h, w), float
        Luminances of the reference (narrow) and target (wide) images, any linear scale.
    ref_header, tgt_header : astropy Header or None
        Their FITS headers; a celestial WCS in both enables the WCS start.
    use_wcs : bool
        Start from the WCS headers when both have one.
    detection_sigma : float
        Star detection threshold in background RMS.
    max_stars, min_stars : int
        Brightest stars used per image; fewest confirmed (inlier) stars for a star match.
    tolerance : float
        Star matching radius, target px.
    smoothing : float
        Thin-plate-spline smoothing per matched star (0 = interpolating).
    distortion : bool
        Fit the spline on top of the projective model.
    progress : callable (fraction, message) or None
        Progress reports.

    Returns
    -------
    Registration
        Maps reference pixel coordinates (x, y) to target pixel coordinates; ``stats`` holds the
        matched and inlier counts, residuals, scale ratio, rotation and how the start was found.
    """
    say = progress or (lambda f, m: None)
    say(0.05, "detecting stars")
    # hot pixels are bright but match nothing: left out before the brightest are taken
    ref_det = _stars_only(detect(ref, detection_sigma)).brightest(max_stars)
    tgt_all = detect(tgt, detection_sigma)
    tgt_det = _stars_only(tgt_all).brightest(max_stars)
    enough_stars = len(ref_det) >= min_stars and len(tgt_det) >= min_stars
    wcs_problem = None
    H0 = None
    if use_wcs:
        try:
            H0 = initial_from_wcs(ref_header, tgt_header, ref.shape, tgt.shape)
        except FieldsDoNotOverlap as exc:
            if not enough_stars:
                raise
            wcs_problem = str(exc)  # the headers may be wrong: the stars decide
    for name, det in (("reference", ref_det), ("target", tgt_det)):
        if len(det) < min_stars and H0 is None:
            raise RegistrationError(f"found {len(det)} stars in the {name} image, need {min_stars}: lower "
                                    f"detection_sigma (now {detection_sigma:g})")
    refine_options = dict(tolerance=tolerance, smoothing=smoothing, distortion=distortion, min_stars=6)
    say(0.1, "matching stars")
    from_wcs = None
    if H0 is not None:
        try:
            from_wcs = refine(H0, ref_det, tgt_det, ref.shape, tgt.shape, **refine_options)
            from_wcs.stats["initial"] = "wcs"
        except RegistrationError as exc:
            wcs_problem = f"the stars do not confirm the WCS start ({exc})"
        if from_wcs is not None and not _confirmed(from_wcs):
            wcs_problem = (f"the stars do not confirm the WCS start ({from_wcs.stats['inliers']} stars at "
                           f"{from_wcs.stats['rms_target_px']:.2f} target px rms)")
    reg = from_wcs if from_wcs is not None and wcs_problem is None else None
    if reg is None and enough_stars:
        try:
            H1, info = initial_by_search(ref_det, tgt_det, ref.shape, tgt.shape,
                                         progress=lambda f, m: say(0.1 + 0.5 * f, m))
            say(0.7, "matching stars")
            found = refine(H1, ref_det, tgt_det, ref.shape, tgt.shape, **refine_options)
            found.stats.update(info, initial="star search")
            if H0 is None or _confirmed(found):
                reg = found
                if wcs_problem:
                    reg.stats["warning"] = f"{wcs_problem}; aligned by a star search instead"
        except RegistrationError as exc:
            if H0 is None:
                if wcs_problem:
                    raise RegistrationError(f"{wcs_problem}, and {exc}") from None
                raise
    if reg is None:
        if H0 is None:
            raise RegistrationError(wcs_problem or "could not register the images")
        reg = WCSRegistration(ref_header, tgt_header, H0, ref.shape, tgt.shape,
                              {"refined": False, "initial": "wcs",
                               "warning": f"aligned from the WCS headers only: {wcs_problem}"})
    reg.stats.update({"stars_reference": len(ref_det), "stars_target": len(tgt_det)})
    if not isinstance(reg, WCSRegistration):
        # the matched stars' flux ratios: a wide lens's falloff that a nebula cannot mimic (DetailFit
        # uses it to confirm the falloff ABE's sample boxes prefer)
        ref_xy, tgt_xy = np.stack([ref_det.x, ref_det.y], 1), np.stack([tgt_det.x, tgt_det.y], 1)
        i, j = _match(reg, ref_xy, tgt_xy, 1.5)
        reg.stats["star_falloff"] = star_falloff(ref, tgt, ref_xy[i], tgt_xy[j], np.sqrt(tgt_det.a[j] * tgt_det.b[j]),
                                                 1.0 / reg.stats["scale_ratio"])
    hot = tgt_all.hot_pixels()
    reg.target_hot_pixels = np.stack([tgt_all.x[hot], tgt_all.y[hot]], 1)
    _check_fold(reg)
    return reg


def _check_fold(reg: Registration) -> None:
    """Refuse a map that folds the image (the Jacobian changes sign over the frame), judged on a grid of
    64 points across the short side. The map is evaluated at the grid's points alone: expanded to
    full-resolution maps first, it cost 0.85 s and two frames of memory at 6000x4000 for the 6300
    points the check reads."""
    h, w = reg.ref_shape
    step = max(1, min(h, w) // 64)
    xs, ys = np.meshgrid(np.arange(0, w, step, dtype=np.float64), np.arange(0, h, step, dtype=np.float64))
    mx, my = reg(xs, ys)
    gx, gy = np.gradient(np.asarray(mx, np.float64)), np.gradient(np.asarray(my, np.float64))
    jac = gx[1] * gy[0] - gx[0] * gy[1]
    if np.any(np.sign(jac) != np.sign(np.median(jac))):
        raise RegistrationError("the fitted distortion would fold the image: too few or badly spread stars; "
                                "raise smoothing or turn distortion off")
