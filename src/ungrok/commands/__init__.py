"""CLI verbs grouped by concern; each module exposes `register(app)` and cli.py calls them all."""

from __future__ import annotations


def fmt_value(x: object, spec: str = ".3f") -> str:
    """A table cell: "-" for a missing value, a float to `spec`, anything else as it prints."""
    return "-" if x is None else format(x, spec) if isinstance(x, float) else str(x)
