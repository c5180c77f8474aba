"""Statistics for verdicts: Spearman with a permutation p, template-stratified bootstrap CIs.

Bootstrap conventions (docs/method.md §4.3, §16.14):
- items are resampled with replacement WITHIN template strata, each stratum keeping
  its size, so every resample has the same item count and template mix;
- strata are visited in order of first appearance and, for each resample, one
  `rng.integers(0, m, size=m)` draw is taken per stratum — the paper's Table-12 draw
  order, so identical item flags and seed give identical resamples;
- the interval is the percentile interval (numpy's default linear interpolation);
- `paired_drop_ci` applies the SAME item resample to the peak and the final
  checkpoint, so the drop CI respects the pairing (Table 12: 10,000 draws, seed 0).
The M3 evaluator's variant (resampling template ids) is not implemented here.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Hashable, Sequence
from fractions import Fraction
from typing import Literal, NamedTuple

import numpy as np
from scipy import stats as sps

from ungrok.errors import UngrokError

# Exact permutation p up to this many points (9! = 362,880 orderings, well under a
# second); above it the p is a Monte-Carlo estimate.
MAX_EXACT_N = 9


class SpearmanResult(NamedTuple):
    rho: float
    # One-sided permutation p in the `alternative` direction; None when rho is undefined.
    p: float | None
    n: int
    exact: bool  # True: enumerated every ordering; False: Monte-Carlo permutations


class CI(NamedTuple):
    point: float
    lo: float
    hi: float


def spearman(
    x: Sequence[float],
    y: Sequence[float],
    alternative: Literal["greater", "less"] | None = None,
    *,
    n_perm: int = 100_000,
    seed: int = 0,
) -> SpearmanResult:
    """Spearman's rho (scipy.stats.spearmanr) with a one-sided permutation p.

    The p is P(rho_perm >= rho) for alternative="greater" and P(rho_perm <= rho) for
    "less", over orderings of y's ranks against x's (average ranks for ties).
    alternative=None tests in the direction of the observed rho; a registered test
    should pass its predicted direction instead. For n <= 9 every ordering is enumerated, so
    the p is exact (e.g. rho = -1 over 4 doses gives p = 1/24 for "less"); above that,
    `n_perm` random orderings (seeded) give (hits + 1) / (n_perm + 1). Constant input
    leaves rho undefined: rho is nan and p None.
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.ndim != 1 or xa.shape != ya.shape:
        raise UngrokError(f"spearman: x and y must be equal-length lists ({xa.size} vs {ya.size})")
    n = int(xa.size)
    if n < 3:
        raise UngrokError(f"spearman: needs at least 3 points, got {n}")
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        raise UngrokError("spearman: values must be finite numbers")
    exact = n <= MAX_EXACT_N
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return SpearmanResult(float("nan"), None, n, exact)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(sps.spearmanr(xa, ya).statistic)

    rx = sps.rankdata(xa) - (n + 1) / 2
    ry = sps.rankdata(ya) - (n + 1) / 2
    denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if exact:
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.intp)
    else:
        rng = np.random.default_rng(seed)
        perms = np.argsort(rng.random((n_perm, n)), axis=1)
    null = (ry[perms] @ rx) / denom
    direction = alternative or ("greater" if rho >= 0 else "less")
    tol = 1e-12  # permutations equal to the observed statistic count as hits
    hits = int(np.sum(null >= rho - tol)) if direction == "greater" else int(np.sum(null <= rho + tol))
    p = hits / len(perms) if exact else (hits + 1) / (n_perm + 1)
    return SpearmanResult(rho, float(p), n, exact)


def _flags(values: Sequence[object], what: str) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1 or a.size == 0:
        raise UngrokError(f"{what}: expected a non-empty list of 0/1 flags")
    af = a.astype(float)
    if not np.isin(af, (0.0, 1.0)).all():
        raise UngrokError(f"{what}: flags must be 0/1 (or booleans)")
    return af


def template_strata(template_ids: Sequence[Hashable]) -> list[np.ndarray]:
    """Item indices grouped by template, in first-appearance order (the bootstrap resamples within each)."""
    groups: dict[Hashable, list[int]] = {}
    for i, t in enumerate(template_ids):
        groups.setdefault(t, []).append(i)  # dict keeps first-appearance order
    return [np.asarray(ix, dtype=np.intp) for ix in groups.values()]


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def stratified_draws(strata: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, N) item indices: row i is resample i, stratified, in the paper's draw order."""
    total = sum(len(s) for s in strata)
    out = np.empty((n, total), dtype=np.intp)
    for i in range(n):
        j = 0
        for s in strata:
            m = len(s)
            out[i, j : j + m] = s[rng.integers(0, m, size=m)]
            j += m
    return out


def _percentiles(boot: np.ndarray, level: float) -> tuple[float, float]:
    if not 0.0 < level < 1.0:
        raise UngrokError(f"confidence level must be between 0 and 1, got {level}")
    # Exact decimal arithmetic: level 0.95 gives percentiles 2.5 and 97.5, not 2.5000000000000018.
    a = (1 - Fraction(repr(level))) / 2 * 100
    lo, hi = np.percentile(boot, [float(a), float(100 - a)])
    return float(lo), float(hi)


def _check_n(n: int) -> None:
    if n < 1:
        raise UngrokError(f"number of bootstrap resamples must be >= 1, got {n}")


def bootstrap_ci(
    items: Sequence[Hashable],
    template_ids: Sequence[Hashable],
    correct_flags: Sequence[object],
    n: int = 1000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
) -> CI:
    """Accuracy and its template-stratified percentile bootstrap CI.

    `items` are item ids (one per flag; duplicates are an error), `template_ids` the
    stratum of each item. `seed` may also be a numpy Generator, to continue one stream
    across families as the paper's Table-12 script does.
    """
    _check_n(n)
    flags = _flags(correct_flags, "correct_flags")
    if not len(items) == len(template_ids) == flags.size:
        raise UngrokError(
            f"bootstrap: {len(items)} items, {len(template_ids)} template ids and "
            f"{flags.size} flags must be aligned"
        )
    if len(set(items)) != len(items):
        raise UngrokError("bootstrap: item ids must be unique")
    idx = stratified_draws(template_strata(template_ids), n, _rng(seed))
    boot = flags[idx].sum(axis=1) / flags.size
    lo, hi = _percentiles(boot, level)
    return CI(float(flags.sum() / flags.size), lo, hi)


def paired_drop_ci(
    peak_flags: Sequence[object],
    final_flags: Sequence[object],
    template_ids: Sequence[Hashable],
    n: int = 10_000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
) -> CI:
    """Peak − final accuracy drop with a paired, template-stratified bootstrap CI.

    The flags are item-aligned (position i is the same item at both checkpoints).
    """
    _check_n(n)
    pk, fn = _flags(peak_flags, "peak_flags"), _flags(final_flags, "final_flags")
    if not pk.size == fn.size == len(template_ids):
        raise UngrokError(
            f"paired bootstrap: {pk.size} peak flags, {fn.size} final flags and "
            f"{len(template_ids)} template ids must be aligned"
        )
    idx = stratified_draws(template_strata(template_ids), n, _rng(seed))
    boot = pk[idx].sum(axis=1) / pk.size - fn[idx].sum(axis=1) / fn.size
    lo, hi = _percentiles(boot, level)
    return CI(float(pk.sum() / pk.size - fn.sum() / fn.size), lo, hi)


def peak_checkpoint(steps: Sequence[int], acc: Sequence[float], checkpoint_steps: Sequence[int]) -> int:
    """Table-12 peak: earliest argmax of the logged accuracy, snapped to the nearest
    checkpoint step (the earlier one on ties)."""
    if not steps or len(steps) != len(acc):
        raise UngrokError("peak: steps and accuracies must be non-empty and aligned")
    if not checkpoint_steps:
        raise UngrokError("peak: no checkpoint steps to snap to")
    best = max(acc)
    peak = min(int(s) for s, a in zip(steps, acc, strict=True) if a == best)
    return min((int(c) for c in checkpoint_steps), key=lambda c: (abs(c - peak), c))
