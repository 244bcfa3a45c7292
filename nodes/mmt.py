"""MMT: the multiscale median transform; MSGR keeps only its large scales."""
import warnings

import numpy as np

from msgr_nodes.api import NodeError, NodeSpec, Param, Port
from msgr_nodes.ops import mmt
from msgr_nodes.ops.median_kernels import SHAPES


def _enabled(params, shape=None) -> set:
    if params["remove_layers"] < 0:  # automatic, from the frame size
        from msgr_nodes.ops.gradient import auto_layers

        K = auto_layers(shape) if shape is not None else 1
        return set(range(K + 1, max(params["layers"], K) + 1)) | {"R"}
    if params["remove_layers"] > 0:
        K = params["remove_layers"]
        if K > params["layers"]:
            raise ValueError(f"remove_layers ({K}) is more than layers ({params['layers']})")
        return set(range(K + 1, params["layers"] + 1)) | {"R"}
    return mmt.parse_layers(params["enabled"], params["layers"])


def check(params):
    """Problems of the layer settings, found before a run."""
    try:
        _enabled(params)
    except ValueError as exc:
        return [str(exc)]
    if params["method"] == "pixinsight" and params["scaling"] == "linear":
        return ["method pixinsight uses the dyadic sequence: set scaling to dyadic"]
    return []


def run(ctx, inputs, params):
    """The enabled MMT layers of each channel."""
    img = inputs["image"]
    try:
        enabled = _enabled(params, img.data.shape[1:])
    except ValueError as exc:
        raise NodeError(str(exc)) from None
    n_layers = max([params["layers"]] + [j for j in enabled if j != "R"])
    out = np.empty_like(img.data)
    bounds = []
    n_ch = img.channels
    for c in range(n_ch):
        info = mmt.MMTInfo()

        def progress(f, msg, c=c):
            ctx.progress((c + f) / n_ch, f"channel {c + 1}/{n_ch}: {msg}")

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", mmt.MMTWarning)
            out[c] = mmt.layers(img.data[c], n_layers, params["method"], params["scaling"],
                                params["scale_delta"], params["structure"], progress, info, enabled)
        for w in caught:
            if c == 0:
                ctx.warn(str(w.message))
        bounds.append(info.error_bound)
        ctx.metadata.setdefault("windows", info.windows)
    if params["method"] == "accurate":
        ctx.metadata["max_error_bound"] = max(bounds)
    ctx.metadata["enabled"] = sorted(enabled, key=lambda j: (j == "R", j if j != "R" else 0))
    return {"image": img.derive(out)}


SPEC = NodeSpec(
    type="MMT", version=1, category="Multiscale",
    help="Multiscale Median Transform. With the first K detail layers removed (remove_layers) it returns "
         "the K-th cascaded median smoothing: only structures larger than about 2^K px survive. MSGR "
         "removes 8 layers (257 px windows) on large frames; use fewer on small frames (K with 2^K about "
         "a fifth of the frame's short side).",
    run=run, check=check,
    inputs=(Port(name="image", type="image", help="the image to transform"),),
    outputs=(Port(name="image", type="image", help="the sum of the enabled layers"),),
    params=(
        Param(name="remove_layers", kind="int", default=8, help="disable the first K detail layers and keep the rest with the "
              "residual (PixInsight MMT with K layers unchecked); 0 = use 'enabled' instead; -1 = from the "
              "frame size (2^K about a sixteenth of the short side: 8 at 4000 px, 6 at 1200 px)", min=-1, max=12),
        Param(name="layers", kind="int", default=8, help="number of detail layers n (window of layer j: 2^j + 1 px, dyadic)",
              min=1, max=12),
        Param(name="enabled", kind="str", default="R", help="when remove_layers is 0: enabled layers, e.g. 'R' (residual), "
              "'1-4' (high-pass), '5-8,R'"),
        Param(name="method", kind="choice", default="accurate", help="exact: bit-equal to scipy's median chain (slow); accurate: "
              "integer histograms, error <= 5e-4 x background; pixinsight: PixInsight's downsampling scheme; "
              "preview: fast pyramid for tuning", choices=mmt.METHODS),
        Param(name="scaling", kind="choice", default="dyadic", help="window sequence: dyadic (3, 5, 9, 17, ...) or linear",
              choices=mmt.SCALINGS),
        Param(name="scale_delta", kind="int", default=1, help="linear scaling: radius increment per layer", min=1, max=256,
              unit="px", advanced=True),
        Param(name="structure", kind="choice", default="square", help="structuring element: square, or circle (rounder, slower for "
              "large windows)", choices=SHAPES),
    ),
)
