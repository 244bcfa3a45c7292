"""Register: resample a wide-field image onto the narrow frame (star alignment with distortion correction)."""
import numpy as np

from msgr_nodes.api import Image, NodeSpec, Param, Port
from msgr_nodes.ops import register as reg_ops
from msgr_nodes.ops.stars import luminance, replace_hot_pixels


def run(ctx, inputs, params):
    """Register the target onto the reference's pixel grid."""
    ref, tgt = inputs["reference"], inputs["target"]
    reg = reg_ops.register(luminance(ref.data), luminance(tgt.data), ref.header, tgt.header,
                           use_wcs=params["use_wcs"], detection_sigma=params["detection_sigma"],
                           max_stars=params["max_stars"], min_stars=params["min_stars"],
                           tolerance=params["tolerance"], smoothing=params["smoothing"],
                           distortion=params["distortion"], progress=ctx.progress)
    ctx.progress(0.85, "resampling")
    map_x, map_y = reg_ops.coordinate_maps(reg, params["grid_step"])
    out = np.empty((tgt.channels,) + ref.data.shape[1:], np.float32)
    # the target's hot pixels would be spread by the interpolation into blobs of a star's size (and
    # taken for saturated stars downstream): replaced by their surroundings first
    hot = reg.target_hot_pixels
    for c in range(tgt.channels):
        plane = tgt.data[c] if hot is None or not len(hot) else replace_hot_pixels(tgt.data[c], hot)
        out[c] = reg_ops.resample(plane, map_x, map_y, float(np.median(tgt.data[c])), params["clamping"])
    cover = reg_ops.footprint(map_x, map_y, tgt.data.shape[1:])
    covered = float(cover.mean())
    if covered < 0.999:
        ctx.warn(f"the target covers {100 * covered:.1f} % of the reference frame; the rest is filled with "
                 f"the target's median (see the footprint output)")
    stats = dict(reg.stats, covered=covered, hot_pixels_replaced=0 if hot is None else int(len(hot)))
    if "warning" in stats:
        ctx.warn(stats["warning"])
    ctx.metadata.update(stats)
    if "inliers" in stats:
        ctx.progress(1.0, f"{stats['inliers']} stars, rms {stats['rms_target_px']:.3f} target px")
    header = ref.header.copy()  # the output lies on the reference grid, so the reference's WCS applies
    image = Image(out, header, tgt.name, dict(tgt.meta))
    # what msgr-nodes did to the target (a cascade's check of the wide image) travels with its pixels
    image.take_msgr_cards(tgt.header)
    return {"image": image,
            "footprint": Image(cover, ref.header.copy(), "footprint"),
            "transform": reg.to_dict()}


SPEC = NodeSpec(
    type="Register", version=3, category="Geometry",
    help="Star alignment: resample the target (wide field) onto the reference (narrow field) grid. The "
         "narrow field is found inside the wide one from both WCS headers or, without them, by a star "
         "pattern search over scales 1-8, rotations and mirroring; then a projective model (RANSAC) and a "
         "smoothing thin-plate spline correct the distortion. Hot pixels of the target (sources whose light "
         "sits in one pixel) are replaced by their surroundings before it is resampled. The matched stars' "
         "fluxes (target against reference) also measure a target lens's radial falloff (the transform's "
         "star_falloff: k of 1 - k r^2, r in the target frame's half-diagonals), by which DetailFit divides the "
         "wide image, as a flat would (where it is clear, or confirms the falloff the wide image's ABE found).",
    run=run,
    inputs=(Port(name="reference", type="image", help="the frame to align to (MSGR: narrow)"),
            Port(name="target", type="image", help="the image to resample (MSGR: wide, after ABE)")),
    outputs=(Port(name="image", type="image", help="the target on the reference grid (target's colour)"),
             Port(name="footprint", type="mask", help="1 where the target covers the reference frame"),
             Port(name="transform", type="transform", help="the fitted mapping and its statistics (with the "
                                                                     "stars' falloff)")),
    params=(
        Param(name="use_wcs", kind="bool", default=True, help="start from both images' WCS when present (plate-solved pairs)"),
        Param(name="detection_sigma", kind="float", default=5.0, help="star detection threshold, in background RMS", min=1.5, max=100),
        Param(name="max_stars", kind="int", default=2000, help="brightest stars used per image", min=20, max=20000),
        Param(name="min_stars", kind="int", default=20, help="fewest stars needed in each image", min=4, max=1000),
        Param(name="tolerance", kind="float", default=4.0, help="star matching radius", min=0.5, max=50, unit="target px"),
        Param(name="distortion", kind="bool", default=True, help="thin-plate-spline distortion correction on top of the projective model"),
        Param(name="smoothing", kind="float", default=0.0005, help="spline smoothing per matched star, on coordinates normalised to the "
              "frame (0 = interpolating; larger = stiffer)", min=0, max=10),
        Param(name="grid_step", kind="int", default=16, help="the map is evaluated every grid_step px and interpolated", min=2, max=256,
              unit="px", advanced=True),
        Param(name="clamping", kind="bool", default=True, help="limit the cubic interpolation to the neighbouring pixels' range "
              "(no ringing around stars)", advanced=True),
    ),
)
