"""PixInsight's PixelMath language: lexer, parser and a safe evaluator (no eval, no exec).

Limits: an expression holds at most 100,000 characters, 50,000 tokens, 1,000
statements, 100 levels of nesting (parentheses, calls, unary operators) and
250 operators applied one inside another; longer or deeper input is refused with
a one-line :class:`PixelMathError`.
"""
from .errors import MAX_DEPTH, MAX_LENGTH, MAX_STATEMENTS, MAX_TOKENS, PixelMathError
from .evaluator import Counters, Program, compile_program, evaluate, image_names
from .functions import FUNCTIONS
from .parser import parse, parse_symbols

__all__ = ["PixelMathError", "Program", "Counters", "compile_program", "evaluate", "image_names", "parse", "parse_symbols",
           "FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH", "MAX_STATEMENTS", "MAX_TOKENS"]
