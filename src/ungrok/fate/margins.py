"""Contrast margin CM and prior pull PM processing (docs/method.md §5.2).

Differences from the behavioural classifier, each as the paper's M4 evaluator has it:
- CM is smoothed over EVERY checkpoint, step 0 (CM = 0 exactly) included — no
  min_step filter before smoothing; min_step only bounds the peak search;
- the final window is max(3, floor(n/10)) (classifier: round(0.1·n)); equal for n = 113/114;
- PM_final uses the same window on the UNsmoothed PM;
- peak = argmax of smoothed CM over steps >= min_step, ties to the later step;
  instrument-valid iff that peak >= +0.5 nats;
- zero crossing = the last step with smoothed CM >= 0 (None if it never is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ungrok.errors import UngrokError
from ungrok.fate._series import checked_series, ge, window_mean
from ungrok.fate.classify import smooth
from ungrok.fate.config import DEFAULT_CONFIG, ClassifierConfig

TimingOutcome = Literal["PASS", "FAIL"]


class CMSummary(BaseModel):
    """One run's CM (and optionally PM) series, processed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: tuple[int, ...]
    smoothed: tuple[float, ...]
    cm_final: float
    peak_step: int | None  # None when no checkpoint is at step >= min_step
    peak_value: float | None
    instrument_valid: bool
    zero_crossing: int | None
    pm_final: float | None = None
    pm_at_peak: float | None = None  # raw PM at the CM peak step (M4c)


def cm_final_window(n: int, cfg: ClassifierConfig = DEFAULT_CONFIG) -> int:
    """Checkpoints in the CM/PM final window: max(3, floor(n/10)) by default.

    The floor is taken exactly (final_frac read as its decimal value), so 0.1·n's binary
    error can never move it.
    """
    return max(cfg.final_min_ckpts, math.floor(n * Fraction(repr(cfg.final_frac))))


def _check_len(n: int, what: str, cfg: ClassifierConfig) -> None:
    if n < cfg.final_min_ckpts:
        raise UngrokError(f"{what}: {n} checkpoint(s); at least {cfg.final_min_ckpts} are needed")


def pm_final(steps: Sequence[int], pm: Sequence[float], cfg: ClassifierConfig = DEFAULT_CONFIG) -> float:
    """Mean of the last max(3, floor(n/10)) UNsmoothed PM values."""
    st, vals = checked_series(steps, pm, "PM")
    _check_len(len(st), "PM", cfg)
    return window_mean(vals, cm_final_window(len(vals), cfg))


def cm_summary(
    steps: Sequence[int],
    cm: Sequence[float],
    cfg: ClassifierConfig = DEFAULT_CONFIG,
    pm: Sequence[float] | None = None,
) -> CMSummary:
    """Smooth CM over all checkpoints and derive CM_final, peak, guard and zero crossing.

    `pm`, if given, is aligned with `steps` and yields pm_final and pm_at_peak.
    """
    st, vals = checked_series(steps, cm, "CM")
    _check_len(len(st), "CM", cfg)
    s = smooth(vals, cfg.smooth_k)
    cm_fin = window_mean(s, cm_final_window(len(s), cfg))

    # max over (value, step) pairs: ties in value go to the later step.
    cand = [(v, t) for t, v in zip(st, s, strict=True) if t >= cfg.min_step]
    peak_value, peak_step = max(cand) if cand else (None, None)
    valid = peak_value is not None and ge(peak_value, cfg.cm_guard_nats)

    crossings = [t for t, v in zip(st, s, strict=True) if ge(v, 0.0)]
    zero = crossings[-1] if crossings else None

    pm_fin = pm_peak = None
    if pm is not None:
        if len(pm) != len(steps):
            raise UngrokError(f"PM has {len(pm)} values but CM has {len(steps)}")
        pst, pvals = checked_series(steps, pm, "PM")
        pm_fin = window_mean(pvals, cm_final_window(len(pvals), cfg))
        if peak_step is not None:
            pm_peak = pvals[pst.index(peak_step)]
    return CMSummary(
        steps=tuple(st),
        smoothed=tuple(s),
        cm_final=cm_fin,
        peak_step=peak_step,
        peak_value=peak_value,
        instrument_valid=valid,
        zero_crossing=zero,
        pm_final=pm_fin,
        pm_at_peak=pm_peak,
    )


def timing_test(
    crossing: int | None, onset: int | None, lo: float = 0.5, hi: float = 2.0
) -> TimingOutcome | None:
    """Registered M4b: PASS iff lo·onset <= crossing <= hi·onset (both ends inclusive).

    None (unscoreable) when either the crossing or the onset does not exist.
    """
    if crossing is None or onset is None:
        return None
    return "PASS" if lo * onset <= crossing <= hi * onset else "FAIL"


def within_checkpoints(
    crossing: int | None, onset: int | None, steps: Sequence[int], k: int = 1
) -> bool | None:
    """Descriptive: are crossing and onset at most k checkpoints apart in `steps`?"""
    if crossing is None or onset is None:
        return None
    order = sorted(set(int(s) for s in steps))
    pos = {s: i for i, s in enumerate(order)}
    for name, s in (("crossing", crossing), ("onset", onset)):
        if s not in pos:
            raise UngrokError(f"{name} step {s} is not one of the checkpoint steps")
    return abs(pos[crossing] - pos[onset]) <= k
