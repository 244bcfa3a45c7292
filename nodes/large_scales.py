"""LargeScales: the large-scale part of an image (a smooth surface or the K-th cascaded median)."""
import numpy as np

from msgr_nodes.api import NodeSpec, Param, Port
from msgr_nodes.ops.gradient import LARGE_SCALE_METHODS, auto_layers, large_scales, sampled_median


def run(ctx, inputs, params):
    """The large scales of each channel of the input (the gradient model)."""
    img = inputs["image"]
    K = params["layers"] or auto_layers(img.data.shape[1:])
    out = np.empty_like(img.data)

    def channel(c):
        plane = large_scales(img.data[c], params["method"], K, params["smoothing"])
        if params["zero_median"]:
            plane -= np.float32(sampled_median(plane))
        return plane

    for c, plane in enumerate(ctx.map(channel, range(img.channels))):
        out[c] = plane
        ctx.progress((c + 1) / img.channels, f"channel {c + 1}")
    ctx.metadata.update({"layers": K, "scale_px": 2 ** K})
    return {"image": img.derive(out, name="Model")}


SPEC = NodeSpec(
    type="LargeScales", version=2, category="Multiscale",
    help="The large-scale part of an image: structures above about 2^K px. surface fits a smoothing "
         "thin-plate spline to box medians (2^(K-2) px boxes; no mirrored-border bias, so it is right up "
         "to the frame edges), mmt takes the K-th cascaded median (MMT c_K). In MSGR it turns the "
         "difference narrow - fitted wide into the gradient model. K = 0 chooses the scale from the frame: "
         "2^K about a sixteenth of the short side (K = 8 at 4000 px, 6 at 1200 px); the recipe's 8-9 layers "
         "suit large frames only (on 1600x1200 frames K = 8 left 1.6-4.2 % of the sky, K = 5 0.1-0.2 %).",
    run=run,
    inputs=(Port(name="image", type="image", help="the image, e.g. narrow - fitted wide"),),
    outputs=(Port(name="image", type="image", help="its large scales (median 0 with zero_median)"),),
    params=(
        Param(name="layers", kind="int", default=0, help="large-scale threshold as MMT layers (structures above 2^K px); 0 = from the "
              "frame size", min=0, max=10),
        Param(name="method", kind="choice", default="surface", help="surface: a smoothing thin-plate spline on box medians; mmt: the "
              "K-th cascaded median", choices=LARGE_SCALE_METHODS),
        Param(name="smoothing", kind="float", default=0.1, help="surface: stiffness of the spline (higher = smoother)", min=0.0,
              max=1000.0),
        Param(name="zero_median", kind="bool", default=True, help="subtract the result's median, so that removing it keeps the sky "
              "level"),
    ),
)
