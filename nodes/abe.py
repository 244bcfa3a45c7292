"""ABE: automatic background extraction (robust polynomial or thin-plate surface on sample boxes)."""
import numpy as np

from msgr_nodes.api import Image, NodeSpec, Param, Port
from msgr_nodes.ops.abe import (CORRECTIONS, SURFACES, ABEParams, blind_degree, correct, fit_background, no_data,
                                sample_boxes)


def run(ctx, inputs, params):
    """Fit each channel's background model; the corrected image and the model."""
    img = inputs["image"]
    mask = inputs.get("mask")
    excl = None if mask is None else mask.data[0] > 0.5
    p = ABEParams(box_size=params["box_size"], box_separation=params["box_separation"],
                  downsample=params["downsample"], tolerance=params["tolerance"],
                  min_box_fraction=params["min_box_fraction"], deviation=params["deviation"],
                  unbalance=params["unbalance"], degree=params["degree"], method=params["method"],
                  smoothing=params["smoothing"], use_brightness_limits=params["use_brightness_limits"],
                  min_background=params["min_background"], max_background=params["max_background"],
                  passes=params["passes"], vignetting=params["vignetting"])
    models = np.empty_like(img.data)
    stats = []
    boxes = []
    for c in range(img.channels):
        samples = sample_boxes(img.data[c], p, excl)  # once, for the choice, the fit and the model's metadata
        if params["degree"] == 0 and p.method == "polynomial":  # auto: chosen blind on held-out boxes
            p.degree, cv = blind_degree(img.data[c], p, excl, samples)
            ctx.progress(c / img.channels, f"channel {c + 1}: degree {p.degree} chosen by cross-validation")
        elif params["degree"] == 0:
            p.degree = 4  # rbf: the polynomial stages before the surface
        # with vignetting off, the falloff is tried all the same: the user knows whether the image was
        # flat-fielded, which the boxes cannot tell from a bright nebula in the frame's middle
        surf, st = fit_background(img.data[c], p, excl, samples, probe_falloff=True)
        st["degree"] = p.degree
        if "stopped_at" in st:
            ctx.warn(f"channel {c + 1}: the rejection left too few boxes for the surface asked for; the model "
                     f"stopped at {st['stopped_at']} on {st['boxes_used']} of {st['boxes']} boxes: lower the "
                     f"box size or separation, or raise deviation")
        if st.get("falloff_seen"):
            plain_error, falloff_error = st["falloff_cv"]
            ctx.warn(f"channel {c + 1}: the background dims towards the corners as through a lens without flats "
                     f"(a radial falloff of {100 * st['falloff_seen']:.0f} % at the corners predicts held-out sample "
                     f"boxes {plain_error / falloff_error:.1f}x better than the polynomial alone); not used here, as "
                     f"vignetting is off (a DetailFit given this model uses it where the stars confirm a lens, and divides "
                     f"the wide image by it): if "
                     f"this image was not flat-fielded, set {ctx.node_id}.vignetting on (a bright nebula in the "
                     f"frame's middle can look the same)")
        models[c] = surf.evaluate()
        stats.append(st)
        if st.get("falloff"):
            ctx.progress(c / img.channels, f"channel {c + 1}: a radial falloff of {100 * st['falloff']:.0f} % at the "
                                           f"corners fitted (vignetting)")
        # and whether a lens's falloff fitted them better (DetailFit asks the stars whether it is a lens's)
        boxes.append({**samples.to_meta(), "degree": p.degree, "falloff_seen": float(st.get("falloff_seen", 0.0))})
        ctx.progress((c + 1) / img.channels, f"channel {c + 1}: {st['boxes_used']} of {st['boxes']} boxes")
    negative = int((models <= 0).sum())
    if negative:
        ctx.warn(f"the background model is zero or negative on {negative} pixel(s): lower the degree or "
                 f"exclude the bright region with a mask")
    out = correct(img.data, models, params["correction"], params["normalize"])
    # an uncropped stack's black borders stay black (no data is no sky to correct), so that the
    # steps after this one still see them as no data
    for c in range(img.channels):
        void = no_data(img.data[c])
        if void is not None:
            empty = void & (img.data[c] == 0)
            out[c][empty] = 0
    ctx.metadata["channels"] = stats
    # the model keeps the boxes it was fitted to and how: DetailFit fits them again once it has undone
    # a stretched wide image's tone curve (a surface fitted in stretched values, put through the
    # curve, is not the surface of the linear sky)
    settings = {k: v for k, v in p.__dict__.items() if k != "degree"}
    return {"image": img.derive(out), "model": Image(models, img.header.copy(), f"{img.name}_background",
                                                     {"abe_boxes": {"settings": settings, "channels": boxes}})}


SPEC = NodeSpec(
    type="ABE", version=7, category="Background",
    help="Automatic background extraction, as PixInsight's ABE: sample boxes with local and global "
         "rejection, a robust Legendre polynomial (degree 1-6, or chosen automatically) or a smoothing thin-plate surface, then "
         "subtract or divide. Where the image has no data (constant patches: an uncropped stack's black borders) "
         "nothing is sampled, and black stays black. Good for simple gradients; complex ones are what MSGR is for.",
    run=run,
    inputs=(Port(name="image", type="image", help="the image to flatten"),
            Port(name="mask", type="mask", help="optional: pixels > 0.5 are not sampled (e.g. a large nebula)", optional=True)),
    outputs=(Port(name="image", type="image", help="the corrected image"),
             Port(name="model", type="image", help="the background model; it keeps the sample boxes it was fitted "
                                                   "to, for DetailFit's wide_background")),
    params=(
        Param(name="degree", kind="int", default=4, help="polynomial degree (PixInsight's function degree); 0 = auto: the degree 0-2 "
              "that best predicts held-out sample boxes (cross-validation; higher degrees, chosen blind, follow "
              "nebulosity as readily as a gradient)", min=0, max=6),
        Param(name="correction", kind="choice", default="subtract", help="how the model is removed: subtract (additive gradients: "
              "light pollution), divide (multiplicative: vignetting), or none (model only)",
              choices=CORRECTIONS),
        Param(name="normalize", kind="bool", default=True, help="keep the original background level (add back the model's median)"),
        Param(name="method", kind="choice", default="polynomial", help="surface: polynomial, or rbf (a smoothing thin-plate spline "
              "for gradients a polynomial cannot follow)", choices=SURFACES),
        Param(name="smoothing", kind="float", default=10.0, help="rbf: stiffness of the surface (0 = through every box)", min=0.0,
              max=10000.0),
        Param(name="box_size", kind="int", default=5, help="sample box side, on the downsampled image", min=1, max=200, unit="px"),
        Param(name="box_separation", kind="int", default=5, help="gap between boxes, on the downsampled image", min=0, max=500, unit="px"),
        Param(name="downsample", kind="float", default=2.0, help="the model is computed on the image downsampled by this", min=1, max=16),
        Param(name="tolerance", kind="float", default=1.0, help="local rejection: pixels further than this many sigma from their box's "
              "median are ignored", min=0.1, max=10),
        Param(name="min_box_fraction", kind="float", default=0.05, help="a box needs this fraction of its pixels after local rejection",
              min=0.0, max=1.0),
        Param(name="deviation", kind="float", default=0.8, help="global rejection: boxes more than deviation sigma above the model "
              "are structure, not sky", min=0.05, max=20),
        Param(name="unbalance", kind="float", default=1.8, help="dark boxes may lie unbalance times further below the model",
              min=0.1, max=20),
        Param(name="passes", kind="int", default=1, help="polynomial: 2 = fit again on the boxes with the first model "
              "taken out, so that which boxes count as sky does not depend on the gradient's curvature (better where "
              "fine nebula fills much of a wide field; the stock graphs use 2 on the wide image)", min=1, max=2),
        Param(name="vignetting", kind="bool", default=False, help="polynomial: the surface may be multiplied by a "
              "lens's radial falloff about the frame's centre, 1 - k r^2 (r in half-diagonals, k fitted up to 0.9): a "
              "vignetting wide lens without flats dims the sky and its gradient together, which a low degree cannot "
              "follow. Kept only where it predicts held-out sample boxes at least twice as well and dims the corners "
              "by 15 % or more. Off in the stock graphs: a bright nebula in the middle of a wide frame under a strong "
              "gradient can pass both tests and be taken for a falloff; turn it on for a wide image from a lens "
              "that vignettes, without flats. Off, the falloff is still tried, and a warning says where it would "
              "have been kept; the model's metadata carries it, and a DetailFit given the model (the stock graphs) "
              "uses it where the stars Register matched confirm a lens's falloff"),
        Param(name="use_brightness_limits", kind="bool", default=False, help="only sample pixels in [min_background, max_background]",
              advanced=True),
        Param(name="min_background", kind="float", default=0.0, help="lower brightness limit", min=0.0, max=1.0, advanced=True),
        Param(name="max_background", kind="float", default=1.0, help="upper brightness limit", min=0.0, max=1.0, advanced=True),
    ),
)
