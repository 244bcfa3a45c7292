"""PixelMath tokenizer: numbers, identifiers, $-metasymbols, operators, comments."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import MAX_LENGTH, MAX_TOKENS, PixelMathError

# Longest first, so that "a--b" reads as the absolute-difference operator.
OPERATORS = sorted([
    "!&|=", "&|=", "!&=", "!|=", "--=", "&&=", "||=", "!&|", "&|", "!&", "!|", "--", "&&", "||",
    "<=", ">=", "==", "!=", "+=", "-=", "*=", "/=", "^=", "%=", "&=", "|=",
    "+", "-", "*", "/", "%", "^", "<", ">", "=", "&", "|", "!", "~",
], key=len, reverse=True)
DIGITS = frozenset("0123456789")
# ASCII only: str.isdigit()/isalpha() also accept other scripts' digits and letters.
NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_$")
NAME_CHARS = NAME_START.union(DIGITS) - {"$"}
PUNCT = {"(": "LPAREN", ")": "RPAREN", "[": "LBRACK", "]": "RBRACK", ",": "COMMA", ";": "SEMI"}


@dataclass(frozen=True)
class Token:
    """One token of an expression: its kind, text, 1-based column and (numbers) value."""

    kind: str     # NUM, IDENT, OP, LPAREN, RPAREN, LBRACK, RBRACK, COMMA, SEMI, END
    text: str
    col: int      # 1-based position in the whole text
    value: float = 0.0


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens; comments (/* */ and //) are dropped."""
    if len(text) > MAX_LENGTH:
        raise PixelMathError(f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise PixelMathError("unterminated comment (missing */)", text, i + 1)
            i = end + 2
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if ch in DIGITS or (ch == "." and i + 1 < n and text[i + 1] in DIGITS):
            j = i
            while j < n and text[j] in DIGITS:
                j += 1
            if j < n and text[j] == ".":
                j += 1
                while j < n and text[j] in DIGITS:
                    j += 1
            if j < n and text[j] in "eE":
                k = j + 1
                if k < n and text[k] in "+-":
                    k += 1
                if k < n and text[k] in DIGITS:
                    j = k
                    while j < n and text[j] in DIGITS:
                        j += 1
            literal = text[i:j]
            value = float(literal)
            if not math.isfinite(value):
                raise PixelMathError(f"number {literal} is out of range", text, i + 1)
            out.append(Token("NUM", literal, i + 1, value))
            i = j
            continue
        if ch in NAME_START:
            j = i + 1
            while j < n and text[j] in NAME_CHARS:
                j += 1
            word = text[i:j]
            if word == "$":
                raise PixelMathError("'$' must start a metasymbol such as $T", text, i + 1)
            out.append(Token("IDENT", word, i + 1))
            i = j
            continue
        if ch in PUNCT:
            out.append(Token(PUNCT[ch], ch, i + 1))
            i += 1
            continue
        for op in OPERATORS:
            if text.startswith(op, i):
                out.append(Token("OP", op, i + 1))
                i += len(op)
                break
        else:
            shown = ch if ch.isprintable() else repr(ch)
            raise PixelMathError(f"unexpected character {shown!r}", text, i + 1)
        if len(out) > MAX_TOKENS:
            raise PixelMathError(f"expression has more than {MAX_TOKENS} tokens")
    out.append(Token("END", "", n + 1))
    return out
