"""Exceptions that carry a message meant for the user.

Every error raised on purpose by msgr-nodes is a :class:`MsgrError`: its text
names what is wrong and what to do, and the command line prints it as one line
without a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass


class MsgrError(Exception):
    """An error whose message is written for the user (one line, actionable)."""


class NodeError(MsgrError):
    """Raised by a node's ``run`` for bad input; the executor adds the node id."""


class UsageError(MsgrError):
    """The command line itself is wrong (exit status 2), e.g. a malformed ``-s``."""


class Cancelled(MsgrError):
    """The run was cancelled by the user."""


@dataclass(frozen=True)
class Problem:
    """One validation problem: which node (or ``None`` for the graph) and what to change."""

    node: str | None
    message: str
    param: str | None = None

    def __str__(self) -> str:
        where = self.node if self.param is None else f"{self.node}.{self.param}"
        return f"{where}: {self.message}" if where else self.message


class GraphInvalid(MsgrError):
    """A graph failed validation; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class FormatError(MsgrError):
    """A graph file that cannot be read (bad JSON, wrong format, newer version)."""
