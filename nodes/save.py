"""Save: write an image file atomically, with its header, WCS and the graph that made it."""
import os

from msgr_nodes.api import NodeError, NodeSpec, Param, Port
from msgr_nodes.io.formats import write_image
from msgr_nodes.io.paths import SOURCE_FIELDS, fill_source_fields
from msgr_nodes.provenance import graph_for_output


def expand(path: str, image) -> str:
    """Fill {source_dir}, {source_stem}, {source_name} from the file the image was loaded from."""
    if "{" not in path:
        return path
    source = image.meta.get("source")
    if not source:
        raise NodeError(f"path {path!r} names the image's source file, but this image was not loaded from a "
                        f"file: set save.path to a file name")
    try:
        return fill_source_fields(path, source)
    except ValueError as exc:
        raise NodeError(f"path {path!r}: {exc}") from None


def run(ctx, inputs, params):
    """Write the image (atomically, with its provenance) and pass it through."""
    path = expand(params["path"], inputs["image"])
    if os.path.realpath(path) in ctx.input_paths:
        raise NodeError(f"{path}: is an input of this graph; Save never writes over an input: choose another path")
    provenance = graph_for_output(ctx.graph_json, ctx.node_id) if ctx.graph_json else None
    written, fmt, depth = write_image(path, inputs["image"], params["format"], params["bit_depth"],
                                      params["overwrite"], provenance)
    ctx.metadata.update({"written": [str(written)], "format": fmt, "bit_depth": depth})
    return {"image": inputs["image"]}


SPEC = NodeSpec(
    type="Save", version=1, category="Input/Output",
    help="Write an image file (format from the extension or explicit). Writes atomically, refuses to "
         "replace an existing file unless overwrite is set, and stores the producing graph in the file "
         "(msgr-nodes extract-graph gives it back).",
    run=run, cacheable=False,
    inputs=(Port(name="image", type="image", help="the image to write"),),
    outputs=(Port(name="image", type="image", help="the same image, passed through"),),
    params=(
        Param(name="path", kind="path", default="", help="file to write; relative paths resolve against the graph file's folder; "
              "{source_dir}, {source_stem} and {source_name} name it after the image's source file",
              required=True, writes=True, extensions=(".fits", ".xisf", ".tif", ".png", ".jpg"),
              placeholders=SOURCE_FIELDS),
        Param(name="format", kind="choice", default="auto", help="file format; auto = from the extension",
              choices=("auto", "fits", "xisf", "tiff", "png", "jpeg")),
        Param(name="bit_depth", kind="choice", default="auto", help="sample format; auto = the source's where the format allows, "
              "else float32 (PNG: uint16, JPEG: uint8)", choices=("auto", "float32", "uint16", "uint8")),
        Param(name="overwrite", kind="bool", default=False, help="replace an existing file"),
    ),
)
