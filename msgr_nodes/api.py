"""The node API: everything a node or a node pack needs, in one import.

::

    from msgr_nodes.api import Image, NodeError, NodeSpec, Param, Port

    def run(ctx, inputs, params):
        image = inputs["image"]
        return {"image": image.derive(image.data * params["gain"])}

    SPEC = NodeSpec(type="Gain", version=1, category="Example", help="multiply by a gain",
                    run=run,
                    inputs=(Port(name="image", type="image"),),
                    outputs=(Port(name="image", type="image"),),
                    params=(Param(name="gain", kind="float", default=1.0, min=0, max=100,
                                  help="the factor"),))

A pack is a module that exposes ``SPEC`` or ``SPECS`` and is named by an entry point in
the group ``msgr_nodes.nodes``; :func:`msgr_nodes.testing.run_node` runs one node in a
test. Bump ``version`` whenever a node's output changes (see :class:`NodeSpec`).
"""
from .context import CancelToken, RunContext
from .errors import NodeError
from .image import Image
from .nodespec import NodeSpec, Port
from .params import Param
from .wires import PortType, register_wire_type

__all__ = ["CancelToken", "Image", "NodeError", "NodeSpec", "Param", "Port", "PortType", "RunContext",
           "register_wire_type"]
