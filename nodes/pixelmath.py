"""PixelMath: PixInsight's expression language on the node's named image inputs."""
from msgr_nodes.api import NodeError, NodeSpec, Param, Port
from msgr_nodes.ops.pixelmath import PixelMathError, compile_program, evaluate


def _expressions(params):
    if params["use_single_expression"]:
        return [params["expression"]]
    return [params["expression"], params["expression1"] or params["expression"],
            params["expression2"] or params["expression"]]


def _program(params):
    return compile_program(_expressions(params), list(params["inputs"]), params["symbols"], params["target"])


def check(params):
    """Syntax errors and unknown names of the expressions, found before a run."""
    try:
        _program(params)
    except PixelMathError as exc:
        return [f"expression: {exc}"]
    return []


def inputs_for(params):
    """One image input per name in ``inputs``."""
    return tuple(Port(name=name, type="image", help=f"the image called {name} in the expression") for name in params["inputs"])


def run(ctx, inputs, params):
    """Evaluate the expression on the named input images."""
    program = _program(params)
    images = {name: inputs[name].data for name in program.inputs}
    try:
        data, counters = evaluate(program, images, truncate=params["truncate"],
                                  truncate_range=(params["truncate_lower"], params["truncate_upper"]),
                                  rescale=params["rescale"],
                                  rescale_range=(params["rescale_lower"], params["rescale_upper"]),
                                  progress=lambda f: ctx.progress(f, "evaluating"))
    except PixelMathError as exc:
        raise NodeError(str(exc)) from None
    if counters.divided_by_zero:
        if params["rescale"]:
            then = (f", which the rescale maps to {params['rescale_upper']:g} (squeezing every other value "
                    f"toward {params['rescale_lower']:g})")
        elif params["truncate"]:
            then = f", then truncated to [{params['truncate_lower']:g}, {params['truncate_upper']:g}]"
        else:
            then = " (3.4e38 in a float32 image)"
        ctx.warn(f"{counters.divided_by_zero} pixel value(s) divided by zero: set to the largest number, "
                 f"as in PixInsight{then}")
    if counters.out_of_domain:
        ctx.warn(f"{counters.out_of_domain} pixel value(s) outside a function's domain (sqrt/ln/log of "
                 f"negative or zero values) were set to 0")
    if counters.not_a_number:
        ctx.warn(f"{counters.not_a_number} pixel value(s) gave NaN and were set to 0")
    ctx.metadata.update({"divided_by_zero": counters.divided_by_zero, "out_of_domain": counters.out_of_domain,
                         "nan": counters.not_a_number})
    target = inputs[program.target]
    out = target.derive(data, name=params.get("output_name") or target.name)
    # msgr-nodes' own check cards (MSGR*) and their HISTORY travel from every input to the result
    for name in program.inputs:
        if name != program.target:
            out.take_msgr_cards(inputs[name].header)
    return {"image": out}


SPEC = NodeSpec(
    type="PixelMath", version=1, category="Math",
    help="PixInsight's PixelMath: an expression on the named input images, per channel (RGB/K, or "
         "separate R, G, B). Statistics such as med(Wide) are per channel. Comments /* */ and // are "
         "allowed, so expressions paste straight from PixInsight.",
    run=run, inputs_for=inputs_for, check=check,
    inputs=(Port(name="image", type="image", help="the image called image in the expression"),),
    outputs=(Port(name="image", type="image", help="the result, with the target's header"),),
    params=(
        Param(name="expression", kind="text", default="$T", help="RGB/K expression (or the red one with separate expressions)"),
        Param(name="inputs", kind="list", default=["image"], help="names of the input images as the expression uses them; "
              "each becomes an input pin"),
        Param(name="target", kind="str", default="", help="which input is $T (default: the first)"),
        Param(name="use_single_expression", kind="bool", default=True, help="one expression for every channel; off: "
              "expression, expression1, expression2 give R, G, B"),
        Param(name="expression1", kind="text", default="", help="green expression (separate expressions only)", advanced=True),
        Param(name="expression2", kind="text", default="", help="blue expression (separate expressions only)", advanced=True),
        Param(name="symbols", kind="str", default="", help="declared variables: 'a, b = 0.5'", advanced=True),
        Param(name="truncate", kind="bool", default=True, help="clamp the result to [truncate_lower, truncate_upper] (PixInsight's default)"),
        Param(name="truncate_lower", kind="float", default=0.0, help="lower clamp", advanced=True),
        Param(name="truncate_upper", kind="float", default=1.0, help="upper clamp", advanced=True),
        Param(name="rescale", kind="bool", default=False, help="map the result's [min, max] (all channels jointly) to the rescale range; "
              "takes precedence over truncate"),
        Param(name="rescale_lower", kind="float", default=0.0, help="rescale range low", advanced=True),
        Param(name="rescale_upper", kind="float", default=1.0, help="rescale range high", advanced=True),
        Param(name="output_name", kind="str", default="", help="name of the output image (default: the target's)", advanced=True),
    ),
)
