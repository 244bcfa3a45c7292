"""msgr-nodes: a node graph for astronomical image processing.

Three lines run a graph file::

    from msgr_nodes import Graph
    g = Graph.load("msgr_additive"); g.set("narrow.path", "N.fits"); g.set("wide.path", "W.fits")
    g.run()
"""
from pathlib import Path as _Path


# The built-in nodes, stock graphs and sample data live in the top-level folders nodes/, graphs/
# and assets/ of a source checkout; an install maps them to msgr_nodes.nodes, .graphs and .assets
# (pyproject.toml's package-dir). In a checkout (where the tests run) the same three names must
# resolve too, so a small finder maps exactly them to the checkout's folders.
_root = _Path(__file__).resolve().parent.parent
if not (_Path(__file__).parent / "nodes").is_dir() and (_root / "pyproject.toml").is_file():
    import importlib.abc as _abc
    import importlib.util as _util
    import sys as _sys

    class _CheckoutFolders(_abc.MetaPathFinder):
        """Finds msgr_nodes.nodes/.graphs/.assets in a source checkout's top-level folders."""

        names = {f"{__name__}.{n}": _root / n for n in ("nodes", "graphs", "assets")}

        def find_spec(self, fullname, path=None, target=None):
            folder = self.names.get(fullname)
            if folder is None or not (folder / "__init__.py").is_file():
                return None
            return _util.spec_from_file_location(fullname, folder / "__init__.py",
                                                 submodule_search_locations=[str(folder)])

    _sys.meta_path.append(_CheckoutFolders())

from .version import __version__  # noqa: E402
from .errors import GraphInvalid, MsgrError, NodeError, Problem  # noqa: E402
from .image import Image  # noqa: E402
from .graph import Graph  # noqa: E402
from .batchrun import Job, JobResult, batch  # noqa: E402

__all__ = ["Graph", "Image", "MsgrError", "NodeError", "GraphInvalid", "Problem", "__version__",
           "batch", "Job", "JobResult"]
