"""PixelMath errors: one-line messages; syntax errors also carry a caret display."""
from __future__ import annotations

from ...errors import MsgrError

MAX_LENGTH = 100_000      # characters in one expression
MAX_DEPTH = 100           # nesting of parentheses, function calls and unary operators
MAX_TREE_DEPTH = 250      # operators applied one inside another (a+b+c+... counts each +)
MAX_STATEMENTS = 1_000    # ';'-separated statements
MAX_TOKENS = 50_000


class PixelMathError(MsgrError):
    """A problem with an expression. ``column`` is 1-based (None if not tied to a place)."""

    def __init__(self, message: str, text: str | None = None, column: int | None = None):
        self.text = text
        self.column = column
        self.message = message
        where = f" at column {column}" if column is not None else ""
        snippet = ""
        if text is not None and column is not None:
            start = max(0, column - 30)
            line = text[start:column + 20].replace("\n", " ")
            snippet = f": {line[:column - 1 - start]}\u2038{line[column - 1 - start:]}"
        super().__init__(f"{message}{where}{snippet}")

    @property
    def caret(self) -> str:
        """Two lines: the expression's line holding the error, and a caret under the column."""
        if self.text is None or self.column is None:
            return self.message
        before = self.text[: self.column - 1]
        line_start = before.rfind("\n") + 1
        line_end = self.text.find("\n", line_start)
        line = self.text[line_start: None if line_end < 0 else line_end]
        return f"{line}\n{' ' * (self.column - 1 - line_start)}^ {self.message}"
