"""CLI verbs grouped by concern; each module exposes `register(app)` and cli.py calls them all."""

from __future__ import annotations

from typing import Annotated

import typer

# How a scoring verb runs the forward (`ungrok score`, `ungrok hub score`; ungrok.probes.models).
ScorePrecision = Annotated[
    str, typer.Option(help="Matmuls: fp32, or bf16 (autocast, fp32 weights; CPU or GPU, any model).")
]
ScoreCompile = Annotated[
    bool,
    typer.Option("--compile", help="torch.compile the forward: tens of seconds once per process, then each "
                 "checkpoint scores faster (for long sweeps; the arithmetic differs in the last bits)."),
]


def fmt_value(x: object, spec: str = ".3f") -> str:
    """A table cell: "-" for a missing value, a float to `spec`, anything else as it prints."""
    return "-" if x is None else format(x, spec) if isinstance(x, float) else str(x)
