"""Load: read an image file (FITS, XISF, TIFF, PNG, JPEG)."""
from msgr_nodes.api import NodeSpec, Param, Port
from msgr_nodes.io.formats import read_image
from msgr_nodes.ops.local_trust import black_borders


def run(ctx, inputs, params):
    """Read the file named by ``path``."""
    img = read_image(params["path"], params["index"], params["nan_policy"])
    if "replaced_nonfinite" in img.meta:
        ctx.warn(f"replaced {img.meta['replaced_nonfinite']} NaN/infinite pixel(s) ({params['nan_policy']})")
    ctx.metadata.update({"file": params["path"], "format": img.meta["format"], "size": img.describe(),
                         "source_dtype": img.meta["source_dtype"], "scale": img.meta["scale"]})
    # black in every channel: the borders a stacker leaves where not every frame had data
    borders = black_borders(img.data)
    if borders > 0:
        ctx.metadata["black_borders"] = borders
        ctx.warn(f"{borders:.1%} of the frame is black along its edges (an uncropped stack?): crop it; "
                 f"msgr_additive leaves it out, but msgr.json, MMT and PixelMath take it for sky")
    return {"image": img}


SPEC = NodeSpec(
    type="Load", version=1, category="Input/Output",
    help="Read an image file: FITS (.fits/.fit/.fts/.fz), XISF, TIFF, PNG or JPEG. Integer samples "
         "are scaled to [0, 1]; float samples keep their values. Headers and WCS travel with the image. A "
         "stack left uncropped (black along its edges) gets a warning: crop it.",
    run=run,
    outputs=(Port(name="image", type="image", help="the image, float32 (C, H, W)"),),
    params=(
        Param(name="path", kind="path", default="", help="image file to read; relative paths resolve against the graph file's folder",
              required=True, reads=True, extensions=(".fits", ".fit", ".fts", ".fz", ".xisf", ".tif",
                                                     ".tiff", ".png", ".jpg", ".jpeg")),
        Param(name="index", kind="int", default=-1, help="FITS HDU or XISF/TIFF image index; -1 = the first image", min=-1, max=999,
              advanced=True),
        Param(name="nan_policy", kind="choice", default="error", help="what to do with NaN/infinite pixels: refuse the file, "
              "replace them by 0, or by the channel's median", choices=("error", "zero", "median")),
    ),
)
