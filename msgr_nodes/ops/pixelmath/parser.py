"""PixelMath parser: precedence climbing with PixInsight's operator table.

Levels (lower binds tighter; every binary level groups left to right):
unary ``~ - + !`` (tighter than ``^``, so ``-x^2`` is ``(-x)^2``), then ``^``,
``* / %``, ``+ - --``, ``< <= > >=``, ``== !=``, ``& !&``, ``&| !&|``, ``| !|``,
``&&``, ``||``. Assignments (``x = e``, ``x += e`` ...) are statements on
declared variables. The result is a tree of plain dataclasses; nothing is ever
handed to Python's ``eval``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import MAX_DEPTH, MAX_STATEMENTS, MAX_TREE_DEPTH, PixelMathError
from .lexer import Token, tokenize

BINARY_LEVELS = [
    ("^",),
    ("*", "/", "%"),
    ("+", "-", "--"),
    ("<", "<=", ">", ">="),
    ("==", "!="),
    ("&", "!&"),
    ("&|", "!&|"),
    ("|", "!|"),
    ("&&",),
    ("||",),
]
LEVEL_OF = {op: i for i, ops in enumerate(BINARY_LEVELS) for op in ops}
UNARY = {"-", "+", "~", "!"}
ASSIGN = {"=", "+=", "-=", "*=", "/=", "^=", "%=", "--=", "&=", "!&=", "|=", "!|=", "&|=", "!&|=", "&&=", "||="}


@dataclass(frozen=True)
class Num:
    """A number literal; ``col`` is its 1-based column in the expression (for error messages)."""

    value: float
    col: int


@dataclass(frozen=True)
class Name:
    """An image or symbol name."""

    name: str
    col: int


@dataclass(frozen=True)
class Call:
    """A function call with its argument nodes."""

    name: str
    args: tuple
    col: int


@dataclass(frozen=True)
class Index:
    """One channel of an image: ``name[channel]``."""

    name: str
    channel: int
    col: int


@dataclass(frozen=True)
class Unary:
    """A prefix operator (``-``, ``+``, ``~``, ``!``) on one operand."""

    op: str
    operand: object
    col: int


@dataclass(frozen=True)
class Binary:
    """An infix operator on two operands."""

    op: str
    left: object
    right: object
    col: int


@dataclass(frozen=True)
class Assign:
    """An assignment to a symbol (``=``, ``+=``, ...), a statement of a multi-statement expression."""

    name: str
    op: str
    value: object
    col: int


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def error(self, message: str, tok: Token | None = None) -> PixelMathError:
        tok = tok or self.peek()
        return PixelMathError(message, self.text, tok.col)

    def expect(self, kind: str, what: str) -> Token:
        t = self.peek()
        if t.kind != kind:
            found = "the end of the expression" if t.kind == "END" else repr(t.text)
            raise self.error(f"expected {what}, found {found}")
        return self.take()

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels")

    def program(self) -> list:
        stmts = []
        while True:
            while self.peek().kind == "SEMI":
                self.take()
            if self.peek().kind == "END":
                break
            stmts.append(self.statement())
            if tree_depth(stmts[-1]) > MAX_TREE_DEPTH:
                raise PixelMathError(f"statement {len(stmts)} applies more than {MAX_TREE_DEPTH} operators "
                                     f"one inside another; split it with symbols and ';'")
            if len(stmts) > MAX_STATEMENTS:
                raise self.error(f"more than {MAX_STATEMENTS} statements")
            if self.peek().kind not in ("SEMI", "END"):
                t = self.peek()
                raise self.error(f"unexpected {t.text!r}: expected an operator or ';'")
        if not stmts:
            raise PixelMathError("the expression is empty")
        return stmts

    def statement(self):
        t = self.peek()
        nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None
        if t.kind == "IDENT" and nxt is not None and nxt.kind == "OP" and nxt.text in ASSIGN:
            self.take()
            op = self.take().text
            return Assign(t.text, op, self.expr(), t.col)
        return self.expr()

    def expr(self, max_level: int = len(BINARY_LEVELS) - 1):
        """Precedence climbing: operators of level <= max_level, each level left-associative."""
        left = self.unary()
        while True:
            t = self.peek()
            level = LEVEL_OF.get(t.text) if t.kind == "OP" else None
            if level is None or level > max_level:
                return left
            self.take()
            left = Binary(t.text, left, self.expr(level - 1), t.col)

    def unary(self):
        t = self.peek()
        if t.kind == "OP" and t.text in UNARY:
            self.take()
            self.enter()
            node = Unary(t.text, self.unary(), t.col)
            self.depth -= 1
            return node
        if t.kind == "OP" and t.text == "--":  # "--x" is two unary minuses
            self.take()
            self.enter()
            node = Unary("-", Unary("-", self.unary(), t.col + 1), t.col)
            self.depth -= 1
            return node
        return self.primary()

    def primary(self):
        t = self.take()
        if t.kind == "NUM":
            return Num(t.value, t.col)
        if t.kind == "LPAREN":
            self.enter()
            e = self.expr()
            self.depth -= 1
            self.expect("RPAREN", "')'")
            return e
        if t.kind == "IDENT":
            if self.peek().kind == "LPAREN":
                self.take()
                self.enter()
                args = []
                if self.peek().kind != "RPAREN":
                    args.append(self.expr())
                    while self.peek().kind == "COMMA":
                        self.take()
                        args.append(self.expr())
                self.depth -= 1
                self.expect("RPAREN", "',' or ')'")
                return Call(t.text, tuple(args), t.col)
            if self.peek().kind == "LBRACK":
                self.take()
                ch = self.expect("NUM", "a channel number")
                if ch.value != int(ch.value) or ch.value < 0:
                    raise self.error("a channel index must be 0, 1 or 2", ch)
                self.expect("RBRACK", "']'")
                return Index(t.text, int(ch.value), t.col)
            return Name(t.text, t.col)
        found = "the end of the expression" if t.kind == "END" else repr(t.text)
        raise PixelMathError(f"expected a number, an image, a function or '(', found {found}", self.text, t.col)


def children(node) -> tuple:
    """The sub-expressions of a syntax-tree node."""
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Assign):
        return (node.value,)
    return ()


def tree_depth(root) -> int:
    """Depth of a syntax tree, computed without recursion (it bounds the evaluator's recursion)."""
    deepest, stack = 0, [(root, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((c, d + 1) for c in children(node))
    return deepest


def parse(text: str) -> list:
    """Parse an expression (``;``-separated statements) into a list of syntax trees."""
    if not isinstance(text, str):
        raise PixelMathError("an expression must be text")
    return _Parser(text).program()


def parse_symbols(text: str) -> dict[str, float]:
    """Parse the ``symbols`` parameter: ``a, b = 0.5; c = -1`` -> {name: initial value}."""
    out: dict[str, float] = {}
    if not text or not text.strip():
        return out
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        name = name.strip()
        if not name or not (name[0].isalpha() or name[0] == "_") or not all(c.isalnum() or c == "_" for c in name) \
                or not name.isascii():
            raise PixelMathError(f"symbols: {name!r} is not a valid name")
        if value.strip():
            stmts = parse(value)
            if len(stmts) != 1 or not _is_constant(stmts[0]):
                raise PixelMathError(f"symbols: the initial value of {name} must be a number")
            out[name] = _constant_value(stmts[0])
        else:
            out[name] = 0.0
    return out


def _is_constant(node) -> bool:
    return isinstance(node, Num) or (isinstance(node, Unary) and node.op in "+-" and isinstance(node.operand, Num))


def _constant_value(node) -> float:
    return node.value if isinstance(node, Num) else (-node.operand.value if node.op == "-" else node.operand.value)
