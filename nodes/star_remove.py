"""StarRemove: classical star removal (detection, flux-grown masks, multiscale background fill)."""
import numpy as np

from msgr_nodes.image import Image
from msgr_nodes.ops.stars import remove_stars
from msgr_nodes.params import Param
from msgr_nodes.spec import NodeSpec, Port


def run(ctx, inputs, params):
    img = inputs["image"]
    if params["backend"] == "onnx":
        from msgr_nodes.ops.onnx_backend import remove_stars_onnx

        starless = remove_stars_onnx(img.data, params["model_path"], progress=ctx.progress)
        mask = (img.data - starless).max(axis=0) > 0
        found = -1
    else:
        ctx.progress(0.1, "detecting stars")
        starless, mask, found = remove_stars(img.data, params["detection_sigma"], params["min_area"],
                                             params["mask_scale"], params["mask_growth"], params["max_radius"],
                                             params["saturation"])
    if found == 0:
        ctx.warn("no stars found: the image is passed through unchanged")
    ctx.metadata.update({"stars": found, "masked_fraction": float(mask.mean())})
    stars_only = np.clip(img.data - starless, 0, None)
    return {"image": img.derive(starless), "mask": Image(mask.astype(np.float32), img.header.copy(), "star_mask"),
            "stars": img.derive(stars_only, name=f"{img.name}_stars")}


def check(params):
    if params["backend"] == "onnx" and not params["model_path"]:
        return ["backend onnx needs model_path: a local .onnx star-removal model (nothing is downloaded)"]
    return []


SPEC = NodeSpec(
    type="StarRemove", version=2, title="StarRemove", category="Stars",
    help="Remove stars so that dense fields and bright halos do not leak into large scales: SEP detection "
         "on the luminance, elliptical masks that grow with flux (saturated stars doubled), filled from the "
         "surrounding background by multiscale normalised convolution. backend=onnx runs a local model file.",
    run=run, check=check,
    inputs=(Port("image", "image", "the image, linear"),),
    outputs=(Port("image", "image", "the starless image"),
             Port("mask", "mask", "the star mask (1 = star)"),
             Port("stars", "image", "the stars only (image - starless)")),
    params=(
        Param("detection_sigma", "float", 3.0, "detection threshold, in background RMS", min=1.0, max=100.0),
        Param("min_area", "int", 5, "smallest source, in pixels", min=1, max=1000, unit="px"),
        Param("mask_scale", "float", 3.5, "mask radius, in units of each star's shape (a, b)", min=0.5, max=20.0),
        Param("mask_growth", "float", 1.0, "how fast masks grow with flux (0 = fixed size)", min=0.0, max=10.0),
        Param("max_radius", "float", 80.0, "largest mask radius", min=2.0, max=2000.0, unit="px"),
        Param("saturation", "float", 0.95, "pixels at or above this are saturated (larger masks)",
              min=0.0, max=1.0),
        Param("backend", "choice", "classic", "classic: detection and fill; onnx: a user-supplied ONNX model "
              "run with onnxruntime", choices=("classic", "onnx")),
        Param("model_path", "path", "", "backend onnx: the .onnx model file", reads=True, advanced=True,
              extensions=(".onnx",)),
    ),
)
