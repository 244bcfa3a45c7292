"""LinearFit: rescale the target to match the reference with a robust L1 line, per channel."""
from msgr_nodes.api import NodeError, NodeSpec, Param, Port
from msgr_nodes.ops.linear_fit import apply_fit, linear_fit
from msgr_nodes.ops.stars import match_channels


def run(ctx, inputs, params):
    """Fit the target to the reference per channel and give the fitted target."""
    ref, tgt = inputs["reference"], inputs["target"]
    if params["reject_low"] >= params["reject_high"]:
        raise NodeError("reject_low must be below reject_high")
    mask = inputs.get("mask")
    if mask is not None and mask.data.shape[1:] != ref.data.shape[1:]:
        raise NodeError(f"mask is {mask.describe()} but the images are {ref.describe()}")
    target = match_channels(tgt.data, ref.channels)  # mono narrow + RGB wide, or the reverse
    fits = linear_fit(ref.data, target, params["reject_low"], params["reject_high"],
                      params["max_samples"], None if mask is None else mask.data[0] > 0.5,
                      params["detail_sigma"] if params["fit_on"] == "detail" else 0.0)
    for c, f in enumerate(fits):
        ctx.progress((c + 1) / len(fits), f"channel {c}: a={f.a:.6g} b={f.b:.6g}")
    ctx.metadata["channels"] = [{"a": f.a, "b": f.b, "adev": f.adev, "used": f.used, "samples": f.samples}
                                for f in fits]
    return {"image": tgt.derive(apply_fit(target, fits, params["truncate"]))}


SPEC = NodeSpec(
    type="LinearFit", version=1, category="Intensity",
    help="Match the target to the reference: target' = a + b * target per channel, with a robust L1 "
         "(least absolute deviation) line over pixels inside (reject_low, reject_high) in both images, "
         "as PixInsight's LinearFit.",
    run=run,
    inputs=(Port(name="reference", type="image", help="the image to match (MSGR: the narrow image)"),
            Port(name="target", type="image", help="the image to rescale (MSGR: the wide image), same size and colour"),
            Port(name="mask", type="mask", help="optional: only pixels where the mask is > 0.5 are fitted", optional=True)),
    outputs=(Port(name="image", type="image", help="the rescaled target"),),
    params=(
        Param(name="reject_low", kind="float", default=0.0, help="samples at or below this are not fitted", min=0.0, max=1.0),
        Param(name="reject_high", kind="float", default=0.92, help="samples at or above this are not fitted", min=0.0, max=1.0),
        Param(name="truncate", kind="bool", default=True, help="clamp the result to [0, 1] as PixInsight does"),
        Param(name="fit_on", kind="choice", default="image", help="image: fit the whole signal (PixInsight); detail: measure the "
              "slope on fine detail (a band from detail_sigma/2 to 4 detail_sigma), which gradients do not bias",
              choices=("image", "detail")),
        Param(name="detail_sigma", kind="float", default=8.0, help="scale of the detail band for fit_on=detail", min=1.0, max=512, unit="px"),
        Param(name="max_samples", kind="int", default=1_000_000, help="evenly spread samples used per channel", min=1000,
              max=100_000_000, advanced=True),
    ),
)
