"""The recommended graph on a generated pair (:mod:`synthpair`), and its result scored against the
pair's truth: what the quality tests share."""
import json

import numpy as np
from astropy.io import fits

from msgr_nodes.graph import Graph
from msgr_nodes.ops.score import score
from msgr_nodes.stock import stock_graph


def score_pair(pair, image_path) -> dict:
    """:func:`msgr_nodes.ops.score.score` of an image (H, W) on the pair's narrow grid against the
    pair's truth (``resid_rms`` and the rest, % of sky)."""
    truth = json.loads((pair / "truth.json").read_text())
    get = lambda n: fits.getdata(pair / f"narrow_{n}.fits").astype(np.float64)  # noqa: E731
    return score(fits.getdata(image_path).astype(np.float64), get("nebula"), get("clean"), get("gradient"),
                 truth["narrow"]["sky_e"] / 65535)


def run_recommended(pair, out, narrow="narrow.fits", graph="msgr_additive", result=None, settings=None,
                    unlink=()):
    """A stock graph (msgr_additive unless ``graph`` names another) on ``pair`` (``narrow`` names its
    narrow file there; the cascade's ultra-wide image is ``ultra.fits``), saved into the folder
    ``out``: (corrected path, model path, the corrected file's header). ``result``, a list, receives
    the run's :class:`~msgr_nodes.executor.RunResult`; ``settings`` ({"node.param": value}) are set
    on the graph before it runs; ``unlink`` ((node, input port), ...) are disconnected."""
    out.mkdir(exist_ok=True)
    g = Graph.load(stock_graph(graph))
    g.set("narrow.path", str(pair / narrow))
    g.set("wide.path", str(pair / "wide.fits"))
    if "ultra" in g.nodes:
        g.set("ultra.path", str(pair / "ultra.fits"))
    g.set("save.path", str(out / "out.fits"))
    g.set("save_model.path", str(out / "model.fits"))
    for key, value in (settings or {}).items():
        g.set(key, value)
    for node, port in unlink:
        assert g.unlink(node, port) is not None, f"{node}.{port} is not connected"
    res = g.run()
    assert res.ok, res.errors
    if result is not None:
        result.append(res)
    return out / "out.fits", out / "model.fits", fits.getheader(out / "out.fits")


def check_history(header, channel: int = 1) -> str:
    """The self-check's text for one channel, joined from the ``MSGR check`` HISTORY lines."""
    prefix = f"MSGR check ch{channel}"
    return "".join(str(h).split(" ", 3)[3] for h in header["HISTORY"] if str(h).startswith(prefix))
