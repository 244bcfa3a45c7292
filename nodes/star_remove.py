"""StarRemove: classical star removal (detection, flux-grown masks, multiscale background fill)."""
import numpy as np

from msgr_nodes.api import Image, NodeSpec, Param, Port
from msgr_nodes.ops.stars import psf_shape, remove_stars


def run(ctx, inputs, params):
    """Remove the stars: the starless image, the star mask and the stars alone."""
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
    # the stars' FWHM and Moffat beta travel with the starless image: DetailFit compares the two
    # images' large scales at the softer one's resolution, and blurs stars to the softer one's wings
    fwhm, beta = psf_shape(img.data) if found else (0.0, 0.0)
    ctx.metadata.update({"stars": found, "masked_fraction": float(mask.mean()), "psf_fwhm": fwhm, "psf_beta": beta})
    stars_only = np.clip(img.data - starless, 0, None)
    return {"image": img.derive(starless, psf_fwhm=fwhm, psf_beta=beta),
            "mask": Image(mask.astype(np.float32), img.header.copy(), "star_mask"),
            "stars": img.derive(stars_only, name=f"{img.name}_stars")}


def check(params):
    """Problems of the backend settings, found before a run."""
    if params["backend"] == "onnx" and not params["model_path"]:
        return ["backend onnx needs model_path: a local .onnx star-removal model (nothing is downloaded)"]
    return []


SPEC = NodeSpec(
    type="StarRemove", version=4, category="Stars",
    help="Remove stars so that dense fields and bright halos do not leak into large scales: SEP detection "
         "on the luminance, elliptical masks that grow with flux (saturated stars doubled), filled from the "
         "surrounding background by multiscale normalised convolution. Hot pixels are masked by their own footprint; "
         "satellite trails stay in the image (for DetailFit to find as defects) but never fill a star they pass. "
         "backend=onnx runs a local model file. The stars' FWHM (the lower quartile of the sources' "
         "half-maximum widths) and the Moffat beta of their median profile go with the starless image, "
         "for DetailFit.",
    run=run, check=check,
    inputs=(Port(name="image", type="image", help="the image, linear"),),
    outputs=(Port(name="image", type="image", help="the starless image"),
             Port(name="mask", type="mask", help="the star mask (1 = star)"),
             Port(name="stars", type="image", help="the stars only (image - starless)")),
    params=(
        Param(name="detection_sigma", kind="float", default=3.0, help="detection threshold, in background RMS", min=1.0, max=100.0),
        Param(name="min_area", kind="int", default=5, help="smallest source, in pixels", min=1, max=1000, unit="px"),
        Param(name="mask_scale", kind="float", default=3.5, help="mask radius, in units of each star's shape (a, b)", min=0.5, max=20.0),
        Param(name="mask_growth", kind="float", default=1.0, help="how fast masks grow with flux (0 = fixed size)", min=0.0, max=10.0),
        Param(name="max_radius", kind="float", default=80.0, help="largest mask radius", min=2.0, max=2000.0, unit="px"),
        Param(name="saturation", kind="float", default=0.95, help="pixels at or above this are saturated (larger masks)",
              min=0.0, max=1.0),
        Param(name="backend", kind="choice", default="classic", help="classic: detection and fill; onnx: a user-supplied ONNX model "
              "run with onnxruntime", choices=("classic", "onnx")),
        Param(name="model_path", kind="path", default="", help="backend onnx: the .onnx model file", reads=True, advanced=True,
              extensions=(".onnx",)),
    ),
)
