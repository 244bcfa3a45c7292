"""GradientModel: the additive MSGR model, narrow minus intensity-matched wide at large scales, self-checked."""
import numpy as np

from msgr_nodes.errors import NodeError
from msgr_nodes.image import Image
from msgr_nodes.ops.gradient import gradient_model
from msgr_nodes.params import Param
from msgr_nodes.spec import NodeSpec, Port


def run(ctx, inputs, params):
    n, w = inputs["narrow"], inputs["wide"]
    if n.data.shape[1:] != w.data.shape[1:]:
        raise NodeError(f"narrow is {n.describe()} but wide is {w.describe()}: register the wide image first")
    if n.channels != w.channels:
        raise NodeError(f"narrow is {n.describe()} but wide is {w.describe()}: both must be mono or both RGB")
    models = np.empty_like(n.data)
    fitted = np.empty_like(n.data)
    infos = []
    for c in range(n.channels):
        r = gradient_model(n.data[c], w.data[c], layers=params["layers"], method=params["method"],
                           smoothing=params["smoothing"], detail_sigma=params["detail_sigma"],
                           slope_tolerance=params["slope_tolerance"], detail_threshold=params["detail_threshold"],
                           fallback_threshold=params["fallback_threshold"])
        models[c], fitted[c] = r.model, r.fitted
        infos.append(r.info)
        ctx.progress((c + 1) / n.channels, f"channel {c + 1}: b = {r.info['b']:.4f}, {r.info['check']}")
        if r.info["check"] != "passed":
            ctx.warn(f"channel {c + 1}: {r.info['check']}")
    ctx.metadata["channels"] = infos
    header = n.header.copy()
    verdicts = ["passed" if i["check"] == "passed" else i["check"].split(":")[0] for i in infos]
    header["MSGRCHK"] = (", ".join(dict.fromkeys(verdicts))[:40], "MSGR self-check; see HISTORY")
    for c, i in enumerate(infos):
        text = f"MSGR check ch{c + 1}: {i['check']}"
        for start in range(0, len(text), 70):
            header.add_history(text[start:start + 70])
    return {"model": Image(models, header, "Model", dict(n.meta)),
            "fitted": w.derive(fitted, name=f"{w.name}_fitted")}


SPEC = NodeSpec(
    type="GradientModel", version=1, title="GradientModel", category="Multiscale",
    help="The additive MSGR model: the wide image is matched to the narrow one with a slope measured on "
         "fine detail (gradients do not bias it), their difference is smoothed to its large scales, and "
         "the result is checked: if the wide image explains the narrow one's detail poorly the large-scale "
         "slope is used (the plain additive model), and if it explains none of it nothing is subtracted. "
         "Each decision is a warning and a header card (MSGRCHK).",
    run=run,
    inputs=(Port("narrow", "image", "the starless narrow image"),
            Port("wide", "image", "the starless wide image registered onto the narrow grid")),
    outputs=(Port("model", "image", "the additive gradient, median 0 (subtract it from the narrow image)"),
             Port("fitted", "image", "the wide image matched to the narrow one: a + b wide")),
    params=(
        Param("layers", "int", 0, "large-scale threshold as MMT layers (structures above 2^K px are gradient); "
              "0 = from the frame size: 2^K about a sixteenth of the short side (K = 8 at 4000 px, 6 at 1200 px)",
              min=0, max=10),
        Param("method", "choice", "surface", "how the difference is smoothed: surface (a smoothing thin-plate "
              "spline on box medians, no mirrored-border bias) or mmt (the K-th cascaded median)",
              choices=("surface", "mmt")),
        Param("smoothing", "float", 0.1, "surface: stiffness of the spline", min=0.0, max=1000.0),
        Param("detail_sigma", "float", 8.0, "scale of the shared detail band (sigma/2 to 4 sigma); 0.5x to 8x "
              "are tried, the smallest stable one is used", min=1.0, max=128.0, unit="px"),
        Param("slope_tolerance", "float", 0.05, "largest relative difference of the slopes measured at two "
              "neighbouring scales for the slope to be trusted", min=0.0, max=10.0),
        Param("detail_threshold", "float", 0.5, "the difference must keep less than this share of the narrow "
              "image's fine detail, else the wide image does not explain it and the graph falls back",
              min=0.0, max=10.0),
        Param("fallback_threshold", "float", 0.5, "above this share of unexplained detail nothing is subtracted "
              "(between detail_threshold and this, the large-scale slope is used)", min=0.0, max=10.0),
    ),
)
