"""Shared helpers: threshold comparisons and checked (step, value) series."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from ungrok.errors import UngrokError

# Threshold comparisons allow this much floating-point slack, so a value that equals a
# threshold in decimal (e.g. a tail range 1.0 - 0.8, which is 0.19999999999999996 in
# binary) falls on the side the registered "≥"/"≤" reads. Accuracies are ratios of item
# counts, so a genuine difference is at least 1/(items·k·window), i.e. far above 1e-9;
# with the paper's item counts (12, 16, 24, 48, 72, 96, 108 — none a multiple of 5) no
# smoothed value can equal 0.2/0.6/0.8/0.15 exactly, so the slack never changes a paper
# verdict. It only settles exact ties in batteries whose item counts allow them.
EPS = 1e-9


def ge(a: float, b: float) -> bool:
    return a >= b - EPS


def le(a: float, b: float) -> bool:
    return a <= b + EPS


def checked_series(
    steps: Sequence[int], values: Sequence[float], what: str, *, unit_interval: bool = False
) -> tuple[list[int], list[float]]:
    """Validate and sort a (step, value) series by step; one-line UngrokError on bad input."""
    if len(steps) != len(values):
        raise UngrokError(f"{what}: {len(steps)} steps but {len(values)} values")
    if len(steps) == 0:
        raise UngrokError(f"{what}: empty series")
    pairs: list[tuple[int, float]] = []
    for s, v in zip(steps, values, strict=True):
        if isinstance(s, bool) or int(s) != s:
            raise UngrokError(f"{what}: step {s!r} is not an integer")
        if v is None or not math.isfinite(float(v)):
            raise UngrokError(f"{what}: value at step {int(s)} is {v!r}, not a finite number")
        fv = float(v)
        if unit_interval and not 0.0 <= fv <= 1.0:
            raise UngrokError(f"{what}: accuracy {fv} at step {int(s)} is outside [0, 1]")
        pairs.append((int(s), fv))
    pairs.sort(key=lambda p: p[0])
    for (a, _), (b, _) in itertools.pairwise(pairs):
        if a == b:
            raise UngrokError(f"{what}: step {a} appears twice")
    return [p[0] for p in pairs], [p[1] for p in pairs]


def window_mean(values: Sequence[float], m: int) -> float:
    """Mean of the last m values (all of them when there are fewer than m)."""
    tail = list(values[-m:])
    return math.fsum(tail) / len(tail)
