"""Parameter schemas: type, default, range or choices, unit and one-line help.

Parameters are stored by name in graph files. ``Param.coerce`` checks one value
and returns it normalised, or raises ``ValueError`` with a message that says
what is allowed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

KINDS = ("float", "int", "bool", "str", "choice", "path", "text", "list")


@dataclass(frozen=True, kw_only=True)
class Param:
    """One node parameter.

    kind: ``float``/``int`` (with optional ``min``/``max``), ``bool``, ``str``,
    ``choice`` (one of ``choices``), ``path`` (a file path; ``reads`` says the
    node reads that file, so its identity enters the cache key; ``writes`` says
    it is an output file), ``text`` (multi-line, e.g. an expression) or ``list``
    (a list of strings). ``extensions`` lists the file name endings a ``path`` takes (the
    editor's file dialog offers them). ``placeholders`` lists the ``{name}`` fields a path
    template may hold, filled by the node at run time (Save's ``{source_stem}``): a value that
    starts with one is left as it is when paths are resolved.
    Every field is given by keyword.
    """

    name: str
    kind: str
    default: Any = None
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    required: bool = False
    reads: bool = False
    writes: bool = False
    advanced: bool = False
    extensions: tuple[str, ...] = ()
    placeholders: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name}: kind must be one of {KINDS}")
        if self.kind == "choice" and self.default is not None and self.default not in self.choices:
            raise ValueError(f"parameter {self.name}: default {self.default!r} is not a choice")

    def is_template(self, value: Any) -> bool:
        """Whether ``value`` starts with one of this parameter's placeholders (then it is not a
        path yet: the node fills it in at run time)."""
        return isinstance(value, str) and any(value.startswith(ph) for ph in self.placeholders)

    def describe_range(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind in ("float", "int"):
            lo = "-inf" if self.min is None else f"{self.min:g}"
            hi = "inf" if self.max is None else f"{self.max:g}"
            return f"{self.kind} in [{lo}, {hi}]"
        return self.kind

    def coerce(self, value: Any) -> Any:
        """Return ``value`` checked and normalised for this parameter, or raise ValueError."""
        if value is None:
            if self.required:
                raise ValueError("is required")
            return None
        k = self.kind
        if k == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError(f"must be true or false, got {value!r}")
        if k in ("float", "int"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"must be a number ({self.describe_range()}), got {value!r}")
            if k == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(f"must be a whole number, got {value!r}")
                value = int(value)
            else:
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError(f"must be finite, got {value!r}")
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise ValueError(f"{value!r} is out of range: {self.describe_range()}")
            return value
        if k == "choice":
            if value not in self.choices:
                raise ValueError(f"{value!r} is not allowed; {self.describe_range()}")
            return value
        if k == "list":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"must be a list of strings, got {value!r}")
            return list(value)
        if not isinstance(value, str):
            raise ValueError(f"must be text, got {value!r}")
        if self.required and not value.strip():
            raise ValueError("is required (empty)")
        return value

    def parse(self, text: str) -> Any:
        """Parse a command-line string (``-s node.param=TEXT``) into a value of this kind."""
        k = self.kind
        if k == "bool":
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"must be true or false, got {text!r}")
        if k in ("float", "int"):
            try:
                return int(text) if k == "int" else float(text)
            except ValueError:
                raise ValueError(f"must be a number ({self.describe_range()}), got {text!r}") from None
        if k == "list":
            return [t.strip() for t in text.split(",") if t.strip()]
        return text

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "default": self.default, "help": self.help}
        for key in ("min", "max", "unit"):
            if getattr(self, key) not in (None, ""):
                d[key] = getattr(self, key)
        if self.choices:
            d["choices"] = list(self.choices)
        for key in ("required", "reads", "writes", "advanced"):
            if getattr(self, key):
                d[key] = True
        return d
