"""An example node pack for msgr-nodes: three nodes and a wire type of its own.

- ``Gain`` multiplies an image by a factor (the smallest useful node).
- ``Histogram`` gives a ``histogram`` wire (a type this pack registers, cached on disk as JSON);
  ``HistogramPeak`` reads it.
- ``Pedestal`` subtracts a level read from the environment variable ``MSGR_EXAMPLE_PEDESTAL``:
  state that is neither an input nor a file, so the node declares a ``fingerprint``.
"""
import os

import numpy as np

from msgr_nodes.api import NodeError, NodeSpec, Param, Port, PortType, register_wire_type


def _is_histogram(value) -> bool:
    return isinstance(value, dict) and {"counts", "edges"} <= set(value)


def _save_histogram(value, folder, stem):
    return {"counts": [int(c) for c in value["counts"]], "edges": [float(e) for e in value["edges"]]}


def _load_histogram(info, folder, stem):
    return {"counts": info["counts"], "edges": info["edges"]}


HISTOGRAM = register_wire_type(PortType(
    name="histogram", description="pixel counts per value bin: dict of counts (n) and edges (n + 1)",
    check=_is_histogram, save=_save_histogram, load=_load_histogram))


def _gain(ctx, inputs, params):
    image = inputs["image"]
    return {"image": image.derive(image.data * np.float32(params["gain"]))}


def _histogram(ctx, inputs, params):
    data = inputs["image"].data
    counts, edges = np.histogram(data[np.isfinite(data)], bins=params["bins"], range=(0.0, 1.0))
    ctx.metadata["pixels"] = int(counts.sum())
    return {"histogram": {"counts": counts.tolist(), "edges": edges.tolist()}}


def _peak(ctx, inputs, params):
    h = inputs["histogram"]
    i = int(np.argmax(h["counts"]))
    return {"value": 0.5 * (h["edges"][i] + h["edges"][i + 1])}


PEDESTAL_VARIABLE = "MSGR_EXAMPLE_PEDESTAL"


def _pedestal_level() -> float:
    text = os.environ.get(PEDESTAL_VARIABLE, "0")
    try:
        return float(text)
    except ValueError:
        raise NodeError(f"{PEDESTAL_VARIABLE}={text!r} is not a number: set it to a level such as 0.01") from None


def _pedestal(ctx, inputs, params):
    image = inputs["image"]
    return {"image": image.derive(image.data - np.float32(_pedestal_level()))}


IMAGE_IN = (Port(name="image", type="image", help="any image"),)
IMAGE_OUT = (Port(name="image", type="image", help="the result"),)

SPECS = [
    NodeSpec(type="Gain", version=1, category="Example", help="Multiply an image by a factor.",
             run=_gain, inputs=IMAGE_IN, outputs=IMAGE_OUT,
             params=(Param(name="gain", kind="float", default=1.0, min=0.0, max=100.0,
                           help="the factor"),)),
    NodeSpec(type="Histogram", version=1, category="Example", help="Count pixels per value bin in [0, 1].",
             run=_histogram, inputs=IMAGE_IN,
             outputs=(Port(name="histogram", type="histogram", help="counts and bin edges"),),
             params=(Param(name="bins", kind="int", default=64, min=2, max=65536, help="number of bins"),)),
    NodeSpec(type="HistogramPeak", version=1, category="Example", help="The centre of the fullest bin.",
             run=_peak, inputs=(Port(name="histogram", type="histogram", help="a histogram"),),
             outputs=(Port(name="value", type="scalar", help="the peak's value"),)),
    NodeSpec(type="Pedestal", version=1, category="Example",
             help=f"Subtract the level in the environment variable {PEDESTAL_VARIABLE}.",
             run=_pedestal, inputs=IMAGE_IN, outputs=IMAGE_OUT,
             fingerprint=lambda params: _pedestal_level()),
]
