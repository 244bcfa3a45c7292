"""msgr-nodes: a node graph for astronomical image processing.

Three lines run a graph file::

    from msgr_nodes import Graph
    g = Graph.load("graphs/msgr.json"); g.set("narrow.path", "N.fits")
    g.run()
"""
__version__ = "0.1.0"

from .errors import GraphInvalid, MsgrError, NodeError, Problem  # noqa: E402
from .image import Image  # noqa: E402
from .graph import Graph  # noqa: E402

__all__ = ["Graph", "Image", "MsgrError", "NodeError", "GraphInvalid", "Problem", "__version__"]
