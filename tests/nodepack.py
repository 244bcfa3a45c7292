"""Small real node types for executor tests (a test-only node pack)."""
import threading
import time

import numpy as np

from msgr_nodes.errors import NodeError
from msgr_nodes.image import Image
from msgr_nodes.params import Param
from msgr_nodes.registry import Registry
from msgr_nodes.spec import NodeSpec, Port

IMG = (Port("image", "image", "result"),)


def _const(ctx, inputs, params):
    return {"image": Image(np.full((1, params["height"], params["width"]), params["value"], np.float32))}


def _add(ctx, inputs, params):
    return {"image": inputs["a"].derive(inputs["a"].data + inputs["b"].data)}


def _scale(ctx, inputs, params):
    return {"image": inputs["image"].derive(inputs["image"].data * np.float32(params["factor"]))}


def _fail(ctx, inputs, params):
    raise NodeError(params["message"])


def _crash(ctx, inputs, params):
    return {"image": 1 / 0}


BARRIER = {"barrier": None}


def _meet(ctx, inputs, params):
    """Waits until another Meet node runs at the same time (proves branches run concurrently)."""
    BARRIER["barrier"].wait(timeout=10)
    return {"image": inputs["image"]}


def _slow(ctx, inputs, params):
    for i in range(params["steps"]):
        ctx.progress(i / params["steps"], f"step {i}")
        time.sleep(0.01)
    return {"image": inputs["image"]}


SPECS = [
    NodeSpec("Const", 1, "Const", "Test", "a constant image", _const, outputs=IMG,
             params=(Param("value", "float", 0.5, "value", min=-10, max=10),
                     Param("width", "int", 8, "width", min=1, max=4096),
                     Param("height", "int", 6, "height", min=1, max=4096))),
    NodeSpec("Add", 1, "Add", "Test", "a + b", _add, outputs=IMG,
             inputs=(Port("a", "image"), Port("b", "image"))),
    NodeSpec("Scale", 1, "Scale", "Test", "image * factor", _scale, outputs=IMG,
             inputs=(Port("image", "image"),), params=(Param("factor", "float", 2.0, "factor", min=0, max=100),)),
    NodeSpec("Fail", 1, "Fail", "Test", "always fails", _fail, outputs=IMG,
             inputs=(Port("image", "image"),), params=(Param("message", "str", "bad input: fix it", "why"),)),
    NodeSpec("Crash", 1, "Crash", "Test", "an internal error", _crash, outputs=IMG,
             inputs=(Port("image", "image"),)),
    NodeSpec("Meet", 1, "Meet", "Test", "waits for its twin", _meet, outputs=IMG,
             inputs=(Port("image", "image"),), params=(Param("tag", "str", "", "makes keys differ"),)),
    NodeSpec("Slow", 1, "Slow", "Test", "reports progress", _slow, outputs=IMG,
             inputs=(Port("image", "image"),), params=(Param("steps", "int", 5, "steps", min=1, max=10000),)),
    NodeSpec("Stars", 1, "Stars", "Test", "gives a star list", lambda c, i, p: {"stars": {"x": [1.0]}},
             outputs=(Port("stars", "stars"),)),
]


def registry(with_builtins: bool = True) -> Registry:
    if with_builtins:
        from msgr_nodes.registry import discover
        reg = discover(entry_points=False)
    else:
        reg = Registry()
    for s in SPECS:
        reg.add(s)
    return reg


def new_barrier(n: int = 2) -> None:
    BARRIER["barrier"] = threading.Barrier(n)
