"""The frozen trajectory classifier (docs/method.md §4): a smoothed held-out conflict
trajectory becomes RECOVERED / DISPLACED / PARTIAL / NEVER / UNSTABLE, and the
verdict counts only when the family's agree control stays solved.

Conventions, each fixed by the paper's classifier code:
- rows below `min_step` are dropped BEFORE smoothing (so step 0/50 never leak into
  the first kept smoothed value);
- smoothing is a centred rolling mean of width k, truncated (not padded) at the ends,
  so the first and last smoothed values are means of 2 for k = 3;
- the final window is max(final_min_ckpts, round(final_frac · n)) with Python's
  `round` applied to the float product n · final_frac, as the paper's code does —
  round-half-to-even on an exact .5 (n = 25 → 2.5 → 2, n = 45 → 4.5 → 4, n = 55 → 6),
  and the float product decides near-ties (n = 35 gives 3.5000000000000004 → 4).
  For 113 kept checkpoints both this and floor(n/10) give 11.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ungrok.errors import UngrokError
from ungrok.fate._series import checked_series, ge, le, window_mean
from ungrok.fate.config import DEFAULT_CONFIG, ClassifierConfig

Fate = Literal["RECOVERED", "DISPLACED", "PARTIAL", "NEVER", "UNSTABLE"]
FATES: tuple[Fate, ...] = ("RECOVERED", "DISPLACED", "PARTIAL", "NEVER", "UNSTABLE")
LETTERS: dict[str, str] = {f: f[0] for f in FATES}  # Table 4's letter is the fate's initial
TABLE_COLUMNS = ("run", "step", "family", "condition", "split", "accuracy")


class Verdict(BaseModel):
    """One family's fate in one run. `valid` is the agree-control gate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cls: Fate
    valid: bool
    conflict_final: float
    conflict_max: float
    agree_final: float
    agree_max: float
    n_checkpoints: int
    # Last kept step with smoothed conflict accuracy >= onset_thr; None if it never was.
    onset: int | None = None


def smooth(values: Sequence[float], k: int = 3) -> list[float]:
    """Centred rolling mean of odd width k, truncated (not padded) at both ends."""
    if k < 1 or k % 2 != 1:
        raise UngrokError(f"smoothing width must be a positive odd number, got {k}")
    xs = [float(v) for v in values]
    n, h = len(xs), k // 2
    out = []
    for i in range(n):
        lo, hi = max(0, i - h), min(n, i + h + 1)
        out.append(math.fsum(xs[lo:hi]) / (hi - lo))
    return out


def final_window(n: int, cfg: ClassifierConfig = DEFAULT_CONFIG) -> int:
    """Checkpoints in the classifier's final window: max(3, round(0.1 · n)) by default."""
    return max(cfg.final_min_ckpts, int(round(n * cfg.final_frac)))


def _kept(
    steps: Sequence[int], acc: Sequence[float], what: str, cfg: ClassifierConfig
) -> tuple[list[int], list[float]]:
    st, vals = checked_series(steps, acc, what, unit_interval=True)
    kept = [(s, v) for s, v in zip(st, vals, strict=True) if s >= cfg.min_step]
    if not kept:
        raise UngrokError(f"{what}: no checkpoint at step >= {cfg.min_step}")
    return [s for s, _ in kept], [v for _, v in kept]


def _onset(steps: Sequence[int], smoothed: Sequence[float], cfg: ClassifierConfig) -> int | None:
    hits = [s for s, a in zip(steps, smoothed, strict=True) if ge(a, cfg.onset_thr)]
    return hits[-1] if hits else None


def collapse_onset(
    steps: Sequence[int], acc: Sequence[float], cfg: ClassifierConfig = DEFAULT_CONFIG
) -> int | None:
    """Behavioural collapse onset: the last step whose smoothed accuracy is >= 0.5.

    Uses the classifier's conventions (min_step filter before smoothing), as the
    registered M2/M4b onset does. None if the smoothed accuracy never reaches 0.5;
    a rule that never collapses gets its last step.
    """
    st, vals = _kept(steps, acc, "collapse onset", cfg)
    return _onset(st, smooth(vals, cfg.smooth_k), cfg)


def classify_family(
    steps: Sequence[int],
    conflict_acc: Sequence[float],
    agree_acc: Sequence[float],
    cfg: ClassifierConfig = DEFAULT_CONFIG,
) -> Verdict:
    """Classify one family's held-out trajectories (conflict and agree, same steps)."""
    if len(conflict_acc) != len(agree_acc):
        raise UngrokError(
            f"conflict has {len(conflict_acc)} values but agree has {len(agree_acc)}; "
            "both must be scored at the same steps"
        )
    st, conflict = _kept(steps, conflict_acc, "conflict", cfg)
    _, agree = _kept(steps, agree_acc, "agree", cfg)
    n = len(st)
    if n < cfg.final_min_ckpts:
        raise UngrokError(
            f"only {n} checkpoint(s) at step >= {cfg.min_step}; the classifier needs "
            f"at least {cfg.final_min_ckpts}"
        )
    m = final_window(n, cfg)
    sc, sa = smooth(conflict, cfg.smooth_k), smooth(agree, cfg.smooth_k)
    c_final, c_max = window_mean(sc, m), max(sc)
    a_final, a_max = window_mean(sa, m), max(sa)

    emerged = ge(c_max, cfg.emerged_thr)
    # Agree gate: solved at the end and not sagging from its best (drop < 0.15).
    valid = ge(a_final, cfg.agree_valid_thr) and not ge(a_max - a_final, cfg.agree_drop_thr)
    tail = sc[-m:]
    cls: Fate
    if ge(max(tail) - min(tail), cfg.unstable_range):
        cls = "UNSTABLE"  # still moving at the stop point
    elif ge(c_final, cfg.recovered_thr):
        cls = "RECOVERED"
    elif emerged and le(c_final, cfg.displaced_thr):
        cls = "DISPLACED"
    elif emerged:
        cls = "PARTIAL"
    else:
        cls = "NEVER"
    return Verdict(
        cls=cls,
        valid=valid,
        conflict_final=c_final,
        conflict_max=c_max,
        agree_final=a_final,
        agree_max=a_max,
        n_checkpoints=n,
        onset=_onset(st, sc, cfg),
    )


def _rows(table: Any) -> list[Mapping[str, Any]]:
    if hasattr(table, "to_pylist") and hasattr(table, "column_names"):  # pyarrow.Table
        missing = [c for c in TABLE_COLUMNS if c not in table.column_names]
        if missing:
            raise UngrokError(f"trajectory table lacks column(s): {', '.join(missing)}")
        return table.select(list(TABLE_COLUMNS)).to_pylist()
    if isinstance(table, (str, bytes, Mapping)) or not isinstance(table, Iterable):
        raise UngrokError("trajectory table must be a pyarrow Table or a list of row dicts")
    rows = list(table)
    for r in rows:
        if not isinstance(r, Mapping):
            raise UngrokError("trajectory table must be a pyarrow Table or a list of row dicts")
        missing = [c for c in TABLE_COLUMNS if c not in r]
        if missing:
            raise UngrokError(f"trajectory row lacks column(s): {', '.join(missing)}")
    return rows


def classify_table(table: Any, cfg: ClassifierConfig = DEFAULT_CONFIG) -> dict[tuple[str, str], Verdict]:
    """Classify every (run, family) of a trajectory table; keys sorted by run then family.

    The table (pyarrow Table or list of row dicts) has columns run, step, family,
    condition, split, accuracy; only split == "heldout" rows are used. Every family
    is classified, exploratory ones included (`cfg.is_confirmatory` tells them apart).
    """
    series: dict[tuple[Any, str], dict[str, dict[int, float]]] = {}
    for r in _rows(table):
        if r["split"] != "heldout":
            continue
        cond = r["condition"]
        if cond not in ("conflict", "agree"):
            raise UngrokError(f"family {r['family']}: unknown condition {cond!r}")
        by_step = series.setdefault((r["run"], r["family"]), {}).setdefault(cond, {})
        step = r["step"]
        if step in by_step:
            raise UngrokError(f"run {r['run']} family {r['family']} {cond}: step {step} appears twice")
        by_step[step] = r["accuracy"]
    if not series:
        raise UngrokError("trajectory table has no heldout rows")

    out: dict[tuple[str, str], Verdict] = {}
    for (run, fam), conds in sorted(series.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        for cond in ("conflict", "agree"):
            if cond not in conds:
                raise UngrokError(f"run {run} family {fam}: no heldout {cond} rows")
        conflict, agree = conds["conflict"], conds["agree"]
        if set(conflict) != set(agree):
            raise UngrokError(f"run {run} family {fam}: conflict and agree were scored at different steps")
        steps = sorted(conflict)
        try:
            v = classify_family(steps, [conflict[s] for s in steps], [agree[s] for s in steps], cfg)
        except UngrokError as e:
            raise UngrokError(f"run {run} family {fam}: {e}") from None
        out[(run, fam)] = v
    return out


def transient_signature(v: Verdict, cfg: ClassifierConfig = DEFAULT_CONFIG) -> bool:
    """Emerged then lost: smoothed max >= 0.8 and final <= 0.6 (RV5-P3)."""
    return ge(v.conflict_max, cfg.emerged_thr) and le(v.conflict_final, cfg.displaced_thr)


def died(v: Verdict, cfg: ClassifierConfig = DEFAULT_CONFIG) -> bool:
    """The Step-6 tables' "died": conflict_final <= 0.6."""
    return le(v.conflict_final, cfg.displaced_thr)


def letter(v: Verdict) -> str:
    """Table-4 letter: R/D/P/N/U, lower-case when the agree control failed."""
    ch = LETTERS[v.cls]
    return ch if v.valid else ch.lower()
