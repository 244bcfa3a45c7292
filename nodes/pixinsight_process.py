"""PixInsightProcess: a PixInsight process msgr-nodes does not have, kept from an imported icon set.

It keeps the instance's XML (its parameters stay visible and go back unchanged on export) and
refuses to run, naming the process: a graph holding one is reported by validation.
"""
from msgr_nodes.api import NodeError, NodeSpec, Param, Port


def _reason(params) -> str:
    return (f"{params['process'] or 'this process'} is a PixInsight process msgr-nodes does not have: it is kept "
            f"for export back to PixInsight and cannot run here; replace it by a node that does the same, "
            f"or remove it")


def check(params):
    """The one-line reason this node cannot run."""
    return [_reason(params)]


def run(ctx, inputs, params):
    """Never runs (validation refuses the graph first); raises the same reason if called."""
    raise NodeError(_reason(params))


SPEC = NodeSpec(
    type="PixInsightProcess", version=1, category="PixInsight",
    help="A process from a PixInsight icon set that msgr-nodes does not implement (GradientCorrection, "
         "BlurXTerminator, a Script, ...). Its parameters are kept as PixInsight wrote them and exported "
         "back unchanged; the node itself cannot run.",
    run=run, check=check,
    inputs=(Port(name="image", type="image", help="the image it would be applied to", optional=True),),
    outputs=(Port(name="image", type="image", help="what it would give"),),
    params=(
        Param(name="process", kind="str", default="", help="the PixInsight process class, e.g. GradientCorrection"),
        Param(name="xml", kind="text", default="", help="the process instance as PixInsight wrote it (XPSM)"),
    ),
)
