"""Evaluate parsed PixelMath on whole images, in row blocks, in float64.

Images are float32 arrays (C, H, W), C = 1 or 3. Each output channel c is
evaluated on its own: an image reference yields channel c (a mono image
yields its only channel), an image statistic yields channel c's value.
Row blocks keep temporaries in cache; statistics are computed once over the
whole image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import PixelMathError
from .functions import FUNCTIONS, image_statistic, mtf, pointwise_statistic
from .parser import Assign, Binary, Call, Index, Name, Num, Unary, children, parse, parse_symbols

DBL_MAX = np.finfo(np.float64).max
DBL_EPS = np.finfo(np.float64).eps
TARGET_NAMES = ("$T", "$target")
BLOCK_PIXELS = 1 << 17


@dataclass
class Program:
    """A checked expression: one statement list per channel expression, plus declared symbols."""

    expressions: list[list]            # one per given expression (1, or 3 for R, G, B)
    symbols: dict[str, float]
    inputs: tuple[str, ...]
    target: str
    texts: list[str] = field(default_factory=list)


def compile_program(expressions: list[str], inputs: list[str], symbols: str = "", target: str = "") -> Program:
    """Parse and check expressions against the input names and declared symbols.

    Raises :class:`PixelMathError` naming the first problem (with its column).
    """
    for name in inputs:
        if not name or not (name[0].isalpha() or name[0] == "_") or not all(c.isalnum() or c == "_" for c in name):
            raise PixelMathError(f"input name {name!r} is not a valid identifier")
        if name in FUNCTIONS:
            raise PixelMathError(f"input name {name!r} is a function name; choose another")
    if len(set(inputs)) != len(inputs):
        raise PixelMathError("input names must be different from each other")
    target = target or (inputs[0] if inputs else "")
    if target and target not in inputs:
        raise PixelMathError(f"target {target!r} is not one of the inputs ({', '.join(inputs)})")
    syms = parse_symbols(symbols)
    for s in syms:
        if s in inputs:
            raise PixelMathError(f"symbol {s!r} has the same name as an input")
    progs = []
    for text in expressions:
        stmts = parse(text)
        for st in stmts:
            _check(st, text, set(inputs), syms, bool(target))
        progs.append(stmts)
    return Program(progs, syms, tuple(inputs), target, list(expressions))


def _check(node, text: str, inputs: set[str], syms: dict, has_target: bool) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Num):
            continue
        if isinstance(n, Name):
            if n.name in TARGET_NAMES:
                if not has_target:
                    raise PixelMathError("$T needs an input image", text, n.col)
            elif n.name not in inputs and n.name not in syms:
                hint = "a function needs '()'" if n.name in FUNCTIONS else \
                    f"inputs: {', '.join(sorted(inputs)) or 'none'}; declare variables in symbols"
                raise PixelMathError(f"unknown identifier {n.name!r} ({hint})", text, n.col)
        elif isinstance(n, Index):
            if n.name not in inputs and n.name not in TARGET_NAMES:
                raise PixelMathError(f"{n.name!r} is not an input image, so it has no channels", text, n.col)
            if n.channel > 2:
                raise PixelMathError(f"channel {n.channel} does not exist (0, 1 or 2)", text, n.col)
        elif isinstance(n, Call):
            spec = FUNCTIONS.get(n.name)
            if spec is None:
                raise PixelMathError(f"unknown function {n.name!r}", text, n.col)
            lo, hi, kind = spec
            if not lo <= len(n.args) <= hi:
                want = str(lo) if lo == hi else (f"at least {lo}" if hi > 100 else f"{lo} to {hi}")
                raise PixelMathError(f"{n.name}() takes {want} argument(s), got {len(n.args)}", text, n.col)
            if kind == "coord" and n.args and not (isinstance(n.args[0], Name) and
                                                   (n.args[0].name in inputs or n.args[0].name in TARGET_NAMES)):
                raise PixelMathError(f"{n.name}() takes an image name", text, n.col)
            if n.name == "iswitch" and len(n.args) % 2 == 0:
                raise PixelMathError("iswitch() takes pairs of condition, value and a default", text, n.col)
            stack.extend(n.args)
        elif isinstance(n, Unary):
            stack.append(n.operand)
        elif isinstance(n, Binary):
            stack.extend((n.left, n.right))
        elif isinstance(n, Assign):
            if n.name not in syms:
                raise PixelMathError(f"cannot assign to {n.name!r}: declare it in symbols", text, n.col)
            stack.append(n.value)


@dataclass
class Counters:
    """Pixels touched by PixelMath's special cases (reported as warnings)."""

    divided_by_zero: int = 0
    out_of_domain: int = 0
    not_a_number: int = 0


class _Channel:
    """Evaluation of one output channel over one block of rows."""

    def __init__(self, images: dict[str, np.ndarray], target: str, c: int, rows: slice,
                 width: int, height: int, stats: dict, counters: Counters, symbols: dict):
        self.images, self.target, self.c, self.rows = images, target, c, rows
        self.width, self.height = width, height
        self.stats, self.counters = stats, counters
        self.vars = dict(symbols)
        self.shape = (len(range(*rows.indices(height))), width)  # the block's pixels, for counting

    def count(self, mask) -> int:
        """How many of the block's pixels ``mask`` marks (a scalar mask stands for all of them)."""
        return int(np.count_nonzero(np.broadcast_to(mask, self.shape)))

    def image(self, name: str, channel: int | None = None) -> np.ndarray:
        img = self.images[self.target if name in TARGET_NAMES else name]
        ch = channel if channel is not None else (self.c if img.shape[0] == 3 else 0)
        return img[ch, self.rows].astype(np.float64)

    def ev(self, n):
        if isinstance(n, Num):
            return n.value
        if isinstance(n, Name):
            if n.name in self.vars:
                return self.vars[n.name]
            return self.image(n.name)
        if isinstance(n, Index):
            img = self.images[self.target if n.name in TARGET_NAMES else n.name]
            if n.channel >= img.shape[0]:
                raise PixelMathError(f"{n.name}[{n.channel}]: {n.name} is mono (1 channel)")
            return self.image(n.name, n.channel)
        if isinstance(n, Unary):
            v = self.ev(n.operand)
            if n.op == "-":
                return -v
            if n.op == "+":
                return v
            if n.op == "~":
                return 1.0 - v
            return _bool(np.asarray(v) == 0)
        if isinstance(n, Binary):
            return self.binary(n.op, self.ev(n.left), self.ev(n.right))
        if isinstance(n, Call):
            return self.call(n)
        if isinstance(n, Assign):
            v = self.ev(n.value)
            if n.op != "=":
                v = self.binary(n.op[:-1], self.vars[n.name], v)
            self.vars[n.name] = v
            return v
        raise TypeError(n)

    def binary(self, op: str, a, b):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            b = np.asarray(b, np.float64)
            tiny = np.abs(b) <= DBL_EPS
            if np.any(tiny):
                self.counters.divided_by_zero += self.count(tiny)
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.where(tiny, DBL_MAX, a / np.where(tiny, 1.0, b))
            return a / b
        if op == "%":
            b = np.asarray(b, np.float64)
            tiny = np.abs(b) <= DBL_EPS
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(tiny, 0.0, np.fmod(a, np.where(tiny, 1.0, b)))
        if op == "^":
            with np.errstate(all="ignore"):
                return np.power(np.asarray(a, np.float64), b)
        if op == "--":
            return np.abs(a - b)
        if op in ("<", "<=", ">", ">=", "==", "!="):
            f = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                 "==": np.equal, "!=": np.not_equal}[op]
            return _bool(f(a, b))
        if op == "&&":
            return _bool(np.logical_and(np.asarray(a) != 0, np.asarray(b) != 0))
        if op == "||":
            return _bool(np.logical_or(np.asarray(a) != 0, np.asarray(b) != 0))
        ia, ib = _int(a), _int(b)
        bits = {"&": lambda: ia & ib, "!&": lambda: ~(ia & ib), "|": lambda: ia | ib, "!|": lambda: ~(ia | ib),
                "&|": lambda: ia ^ ib, "!&|": lambda: ~(ia ^ ib)}[op]()
        return np.asarray(bits, np.float64) if np.ndim(bits) else float(bits)

    def call(self, n: Call):
        name, args = n.name, n.args
        kind = FUNCTIONS[name][2]
        if kind == "stat":
            if len(args) == 1:
                return self.statistic(n)
            return pointwise_statistic(name, [self.ev(a) for a in args])
        if kind == "coord":
            return self.coord(name, args)
        if name == "pi":
            return math.pi
        if name == "iif":
            c = self.ev(args[0])
            return np.where(np.asarray(c) != 0, self.ev(args[1]), self.ev(args[2]))
        if name == "iswitch":
            out = self.ev(args[-1])
            for i in range(len(args) - 3, -1, -2):
                out = np.where(np.asarray(self.ev(args[i])) != 0, self.ev(args[i + 1]), out)
            return out
        vals = [np.asarray(self.ev(a), np.float64) for a in args]
        x = vals[0]
        with np.errstate(all="ignore"):
            if name in ("sqrt", "ln", "log", "log2"):
                bad = x < 0 if name == "sqrt" else x <= 0
                if np.any(bad):
                    self.counters.out_of_domain += self.count(bad)
                    x = np.where(bad, 1.0, x)
                fn = {"sqrt": np.sqrt, "ln": np.log, "log": np.log10, "log2": np.log2}[name]
                return np.where(bad, 0.0, fn(x)) if np.any(bad) else fn(x)
            if name in ("asin", "acos"):
                bad = np.abs(x) > 1
                if np.any(bad):
                    self.counters.out_of_domain += self.count(bad)
                fn = np.arcsin if name == "asin" else np.arccos
                return np.where(bad, 0.0, fn(np.clip(x, -1, 1)))
            simple: dict[str, Callable] = {
                "abs": np.abs, "sign": np.sign, "exp": np.exp, "floor": np.floor, "ceil": np.ceil,
                "trunc": np.trunc, "frac": lambda v: v - np.trunc(v), "sin": np.sin, "cos": np.cos,
                "tan": np.tan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh}
            if name in simple:
                return simple[name](x)
            if name == "round":
                if len(vals) == 1:
                    return np.round(x)
                return np.round(x * 10.0 ** np.trunc(vals[1])) / 10.0 ** np.trunc(vals[1])
            if name == "atan":
                return np.arctan(x) if len(vals) == 1 else np.arctan2(x, vals[1])
            if name == "range":
                return np.clip(x, vals[1], vals[2])
            if name == "rescale":
                lo, hi = np.minimum(vals[1], vals[2]), np.maximum(vals[1], vals[2])
                span = hi - lo
                return np.where(np.abs(span) < DBL_EPS, 0.0,
                                np.clip((x - lo) / np.where(np.abs(span) < DBL_EPS, 1.0, span), 0.0, 1.0))
            if name == "mtf":
                return mtf(vals[0], vals[1])
        raise PixelMathError(f"function {name}() is not available")

    def statistic(self, n: Call):
        key = (id(n), self.c)
        if key not in self.stats:
            arg = n.args[0]
            full = _Channel(self.images, self.target, self.c, slice(None), self.width, self.height,
                            self.stats, self.counters, self.vars)
            values = full.ev(arg)
            self.stats[key] = image_statistic(n.name, np.asarray(values, np.float64))
        return self.stats[key]

    def coord(self, name: str, args):
        w, h = self.width, self.height
        if name in ("width", "height", "area"):
            return {"width": float(w), "height": float(h), "area": float(w * h)}[name]
        r0 = self.rows.start or 0
        r1 = self.rows.stop if self.rows.stop is not None else h
        if name in ("x", "X"):
            xs = np.arange(w, dtype=np.float64)[None, :]
            return np.broadcast_to(xs / w if name == "X" else xs, (r1 - r0, w))
        ys = np.arange(r0, r1, dtype=np.float64)[:, None]
        return np.broadcast_to(ys / h if name == "Y" else ys, (r1 - r0, w))


def _bool(v) -> np.ndarray | float:
    return np.asarray(v, np.float64) if np.ndim(v) else float(bool(v))


def _int(v):
    a = np.trunc(np.nan_to_num(np.asarray(v, np.float64), nan=0.0, posinf=0.0, neginf=0.0))
    return np.clip(a, -2**62, 2**62).astype(np.int64)


def evaluate(program: Program, images: dict[str, np.ndarray], *, truncate: bool = True,
             truncate_range: tuple[float, float] = (0.0, 1.0), rescale: bool = False,
             rescale_range: tuple[float, float] = (0.0, 1.0),
             progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, Counters]:
    """Evaluate ``program`` on ``images`` (name -> float32 (C, H, W)); returns float32 (C, H, W).

    With ``rescale`` the result is mapped from its global [min, max] (all channels
    jointly) to ``rescale_range``; otherwise with ``truncate`` it is clamped to
    ``truncate_range`` (PixInsight's default: [0, 1]). Division by (near) zero
    gives the largest double, as in PixInsight; sqrt/ln/log of out-of-domain
    values give 0; NaN results become 0. All are counted in the returned counters.

    Parameters
    ----------
    program : Program
        A parsed expression (:func:`parse`), with the input names it uses.
    images : dict
        Input name -> float32 (C, H, W); all of one (H, W).
    truncate, truncate_range : bool, tuple
        Clamp the result to the range (PixInsight's default [0, 1]).
    rescale, rescale_range : bool, tuple
        Map the result's [min, max] to the range instead (all channels jointly).
    progress : callable, optional
        ``progress(fraction)``, once per block.

    Returns
    -------
    result : ndarray
        float32 (C, H, W).
    counters : Counters
        Pixels that met a special case (division by zero, out-of-domain functions, NaN).
    """
    missing = [n for n in program.inputs if n not in images]
    if missing:
        raise PixelMathError(f"no image given for input(s) {', '.join(missing)}")
    shapes = {n: images[n].shape[1:] for n in program.inputs}
    first = program.inputs[0] if program.inputs else None
    if first is None:
        raise PixelMathError("PixelMath needs at least one input image (it sets the output size)")
    h, w = shapes[first]
    for n, s in shapes.items():
        if s != (h, w):
            raise PixelMathError(f"{n} is {s[1]}x{s[0]} but {first} is {w}x{h}: PixelMath images must "
                                 f"have the same size (register them first)")
    colour = any(images[n].shape[0] == 3 for n in program.inputs) or len(program.expressions) == 3
    nch = 3 if colour else 1
    out = np.empty((nch, h, w), np.float32)
    counters = Counters()
    stats: dict = {}
    step = max(1, BLOCK_PIXELS // max(w, 1))
    blocks = [(r, min(r + step, h)) for r in range(0, h, step)]
    total = nch * len(blocks)
    done = 0
    for c in range(nch):
        stmts = program.expressions[c if len(program.expressions) == 3 else 0]
        for r0, r1 in blocks:
            ch = _Channel(images, program.target, c, slice(r0, r1), w, h, stats, counters, program.symbols)
            value = None
            with np.errstate(all="ignore"):  # overflow and NaN are handled (and counted) below
                for st in stmts:
                    value = ch.ev(st)
            block = np.broadcast_to(np.asarray(value, np.float64), (r1 - r0, w))
            bad = ~np.isfinite(block)
            if np.any(bad):
                n_bad = int(np.count_nonzero(bad & np.isnan(block)))
                counters.not_a_number += n_bad
                block = np.nan_to_num(block, nan=0.0, posinf=DBL_MAX, neginf=-DBL_MAX)
            if rescale:
                out[c, r0:r1] = block  # float32 overflow to inf is handled by the rescale below
            else:
                if truncate:
                    block = np.clip(block, truncate_range[0], truncate_range[1])
                with np.errstate(over="ignore"):
                    out[c, r0:r1] = block
            done += 1
            if progress is not None:
                progress(done / total)
    if rescale:
        lo, hi = float(np.min(out)), float(np.max(out))
        a, b = rescale_range
        if hi - lo > 0 and np.isfinite(hi - lo):
            out = ((out.astype(np.float64) - lo) / (hi - lo) * (b - a) + a).astype(np.float32)
        else:
            out[:] = a
    return out, counters


def image_names(expressions: list[str], symbols: str = "") -> tuple[list[str], bool]:
    """The image identifiers the expressions read, in order of first use (declared symbols,
    assigned variables and function names left out), and whether they use the target ``$T``.
    Raises :class:`PixelMathError` for an expression that does not parse."""
    declared = set(parse_symbols(symbols))
    names: list[str] = []
    uses_target = False
    for text in expressions:
        if not text.strip():
            continue
        for statement in parse(text):
            stack = [statement]
            while stack:
                n = stack.pop(0)
                if isinstance(n, Assign):
                    declared.add(n.name)
                if isinstance(n, (Name, Index)):
                    if n.name in TARGET_NAMES:
                        uses_target = True
                    elif n.name not in declared and n.name not in FUNCTIONS and n.name not in names:
                        names.append(n.name)
                stack[:0] = list(children(n))
    return names, uses_target
