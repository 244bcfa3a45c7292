"""Small real node types for executor tests (a test-only node pack)."""
import threading
import time

import numpy as np

from msgr_nodes.errors import NodeError
from msgr_nodes.image import Image
from msgr_nodes.params import Param
from msgr_nodes.registry import Registry
from msgr_nodes.nodespec import NodeSpec, Port

IMG = (Port(name="image", type="image", help="result"),)


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
    NodeSpec(type="Const", version=1, category="Test", help="a constant image", run=_const, outputs=IMG,
             params=(Param(name="value", kind="float", default=0.5, help="value", min=-10, max=10),
                     Param(name="width", kind="int", default=8, help="width", min=1, max=4096),
                     Param(name="height", kind="int", default=6, help="height", min=1, max=4096))),
    NodeSpec(type="Add", version=1, category="Test", help="a + b", run=_add, outputs=IMG,
             inputs=(Port(name="a", type="image"), Port(name="b", type="image"))),
    NodeSpec(type="Scale", version=1, category="Test", help="image * factor", run=_scale, outputs=IMG,
             inputs=(Port(name="image", type="image"),), params=(Param(name="factor", kind="float", default=2.0, help="factor", min=0, max=100),)),
    NodeSpec(type="Fail", version=1, category="Test", help="always fails", run=_fail, outputs=IMG,
             inputs=(Port(name="image", type="image"),), params=(Param(name="message", kind="str", default="bad input: fix it", help="why"),)),
    NodeSpec(type="Crash", version=1, category="Test", help="an internal error", run=_crash, outputs=IMG,
             inputs=(Port(name="image", type="image"),)),
    NodeSpec(type="Meet", version=1, category="Test", help="waits for its twin", run=_meet, outputs=IMG,
             inputs=(Port(name="image", type="image"),), params=(Param(name="tag", kind="str", default="", help="makes keys differ"),)),
    NodeSpec(type="Slow", version=1, category="Test", help="reports progress", run=_slow, outputs=IMG,
             inputs=(Port(name="image", type="image"),), params=(Param(name="steps", kind="int", default=5, help="steps", min=1, max=10000),)),
    NodeSpec(type="Stars", version=1, category="Test", help="gives a star list", run=lambda c, i, p: {"stars": {"x": [1.0]}},
             outputs=(Port(name="stars", type="stars"),)),
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


def fake_install(folder, name: str, entry_point: str) -> None:
    """Make ``folder`` look like site-packages holding distribution ``name`` with one
    ``msgr_nodes.nodes`` entry point (``"key = module"``), as pip would leave it; put
    ``folder`` on sys.path (monkeypatch.syspath_prepend) for discover() to find it."""
    dist = folder / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[msgr_nodes.nodes]\n{entry_point}\n")
