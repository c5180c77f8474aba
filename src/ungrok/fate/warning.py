"""The live monitor's displacement warning measured against the final verdicts (pure, torch-free).

The monitor (`ungrok.train.watch`) writes one line per probe step to monitor.jsonl,
``{"step": S, "rules": {RULE: {"state": ..., "warning": bool, "raw": {...}, ...}, ...},
"warnings": [...], "watch_sha256": ...}``, where a rule's state is one of ``not yet``,
``emerged``, ``displacing``, ``displaced`` and ``control-failing`` and ``warning`` says whether
the early warning (the hashed `WatchConfig` rule) was up at that probe (see watch.py). The
frozen classifier writes one record per (run, family) with its final fate and ``onset``.
This module puts the two side by side.

Definitions (one run = one (cell, seed, rule); steps are training steps):

- **First warning step**: the first probe step at which the early warning was up (the rule's
  ``warning`` flag). ``displaced`` is not the early warning: it is the classifier's own verdict
  on the readings so far, so a run that only ever reached ``displaced`` was not warned early.
  Older logs without the flag are read with the rule of their day: the first ``displacing``
  or ``displaced`` probe after at least one ``emerged`` probe (``control-failing`` is no
  warning). None when the rule never warned.
- **Collapse step**: the record's ``onset``, the last kept step (>= ``min_step``) whose
  smoothed held-out conflict accuracy is >= ``onset_thr`` (0.5), *when that is a collapse*:
  the onset lies before the run's final step, so the smoothed accuracy fell below 0.5 after
  it and stayed there. A rule that never reached 0.5 (onset None) or still holds it at the
  end (onset = final step) has no collapse step.
- **Total steps**: the run's final step: the last of the record's ``steps`` (which `ungrok
  run` adds to every record), else the last probe step of the monitor rows.
- **Lead** = collapse step - first warning step (negative: the warning came after the
  collapse), and **lead share** = lead / total steps. Both None unless both steps exist.

The warning as a classifier, over a set of runs: a run is *scored* when its record's agree
gate passed (a failed gate means no classifiable verdict, so no label) and the monitor
watched its rule; it is *positive* when the final fate is DISPLACED. Then true positives
(warned, DISPLACED), false positives or false alarms (warned, not DISPLACED), false
negatives (DISPLACED, never warned) and true negatives; precision = TP / (TP + FP) (None
without a warning), recall = TP / (TP + FN) (None without a positive), and the median lead
share over the true positives that have a lead. Runs with a failed gate are counted apart.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

EMERGED = "emerged"
WARNING_STATES = ("displacing", "displaced")
POSITIVE = "DISPLACED"

State = tuple[int, str]  # (probe step, the rule's monitor state)


def _step(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
        return None
    return int(v)


def _rule_field(rows: Iterable[Mapping[str, Any]], rule: str, key: str, kind: type) -> dict[int, Any]:
    """step -> the rule's `key` where it is a `kind`, over the well-formed monitor.jsonl rows that
    hold the rule; a later row for the same step wins."""
    out: dict[int, Any] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        step = _step(row.get("step"))
        rules = row.get("rules")
        entry = rules.get(rule) if isinstance(rules, Mapping) else None
        if step is not None and isinstance(entry, Mapping) and isinstance(entry.get(key), kind):
            out[step] = entry[key]
    return out


def rule_states(rows: Iterable[Mapping[str, Any]], rule: str) -> list[State]:
    """The rule's (step, state) per probe step from monitor.jsonl rows, sorted by step.

    Rows without a step or without a state for the rule are left out (the monitor lists a
    rule only once it has observed it); a later row for the same step wins."""
    return sorted(_rule_field(rows, rule, "state", str).items())


def monitored_rules(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every rule that has a state in at least one row, in order of first appearance."""
    out: dict[str, None] = {}
    for row in rows:
        rules = row.get("rules") if isinstance(row, Mapping) else None
        if isinstance(rules, Mapping):
            for r, entry in rules.items():
                if isinstance(entry, Mapping) and isinstance(entry.get("state"), str):
                    out.setdefault(str(r), None)
    return list(out)


def first_warning(states: Sequence[State]) -> int | None:
    """The legacy first warning (logs without the ``warning`` flag): displacing/displaced after an
    ``emerged`` probe."""
    seen_emerged = False
    for step, state in sorted(states):
        if state == EMERGED:
            seen_emerged = True
        elif seen_emerged and state in WARNING_STATES:
            return step
    return None


def rule_warning(rows: Iterable[Mapping[str, Any]], rule: str) -> int | None:
    """The rule's first warning step from monitor.jsonl rows (module docstring): the first probe
    with its ``warning`` flag up, or the legacy state rule when no line carries the flag."""
    rows = list(rows)
    flags: dict[int, bool] = _rule_field(rows, rule, "warning", bool)
    if not flags:
        return first_warning(rule_states(rows, rule))
    return next((s for s, up in sorted(flags.items()) if up), None)


def final_step(record: Mapping[str, Any], states: Sequence[State] = ()) -> int | None:
    """The run's final step: the last of the record's `steps`, else the last probe step."""
    steps = record.get("steps")
    if isinstance(steps, Sequence) and not isinstance(steps, str):
        got = [s for s in (_step(x) for x in steps) if s is not None]
        if got:
            return max(got)
    return max(s for s, _ in states) if states else None


def collapse_step(record: Mapping[str, Any], last: int | None) -> int | None:
    """The record's onset when it is a collapse (before the final step `last`), else None."""
    onset = _step(record.get("onset"))
    if onset is None or last is None or onset >= last:
        return None
    return onset


@dataclass(frozen=True)
class WarningRun:
    """One run's warning and verdict side by side (see the module docstring)."""

    fate: str
    gate_passed: bool
    warning: int | None  # first warning step
    collapse: int | None  # collapse step (the record's onset when it is one)
    total_steps: int | None
    monitored: bool = True  # the monitor has states for the rule in this run

    @property
    def warned(self) -> bool:
        return self.warning is not None

    @property
    def positive(self) -> bool:
        return self.fate == POSITIVE

    @property
    def scored(self) -> bool:
        return self.gate_passed and self.monitored

    @property
    def lead(self) -> int | None:
        if self.warning is None or self.collapse is None:
            return None
        return self.collapse - self.warning

    @property
    def lead_share(self) -> float | None:
        lead = self.lead
        if lead is None or not self.total_steps:
            return None
        return lead / self.total_steps

    @property
    def outcome(self) -> str | None:
        """TP / FP / FN / TN for a scored run, None otherwise."""
        if not self.scored:
            return None
        if self.warned:
            return "TP" if self.positive else "FP"
        return "FN" if self.positive else "TN"


_FROM_STATES: Any = object()


def assess(
    states: Sequence[State],
    record: Mapping[str, Any],
    total_steps: int | None = None,
    warning: int | None = _FROM_STATES,
) -> WarningRun:
    """One run: its rule's monitor states (`rule_states`) and its fate record (fate, agree_gate,
    onset, steps). `total_steps` overrides the final step read from the record; `warning` is the
    first warning step (`rule_warning`), else the legacy rule is applied to `states`."""
    last = final_step(record, states)
    total = total_steps if total_steps is not None else last
    return WarningRun(
        fate=str(record.get("fate")),
        gate_passed=record.get("agree_gate") == "pass",
        warning=first_warning(states) if warning is _FROM_STATES else warning,
        collapse=collapse_step(record, last),
        total_steps=total,
        monitored=bool(states),
    )


@dataclass(frozen=True)
class WarningScore:
    """The warning as a classifier of DISPLACED over a set of runs (see the module docstring)."""

    tp: int
    fp: int
    fn: int
    tn: int
    gate_failed: int  # monitored runs left out: the agree gate failed (no label)
    unmonitored: int  # runs left out first: the monitor has no state for the rule
    median_lead_share: float | None
    leads: int  # true positives with a lead (the median's sample size)

    @property
    def scored(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def warned(self) -> int:
        return self.tp + self.fp

    @property
    def positives(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float | None:
        return self.tp / self.warned if self.warned else None

    @property
    def recall(self) -> float | None:
        return self.tp / self.positives if self.positives else None


def score(runs: Iterable[WarningRun]) -> WarningScore:
    """Counts, precision, recall and the median lead share of the true positives."""
    counts = {"TP": 0, "FP": 0, "FN": 0, "TN": 0}
    gate_failed = unmonitored = 0
    shares = []
    for r in runs:
        if not r.monitored:
            unmonitored += 1
            continue
        if not r.gate_passed:
            gate_failed += 1
            continue
        out = r.outcome
        assert out is not None
        counts[out] += 1
        if out == "TP" and r.lead_share is not None:
            shares.append(r.lead_share)
    return WarningScore(
        tp=counts["TP"], fp=counts["FP"], fn=counts["FN"], tn=counts["TN"], gate_failed=gate_failed,
        unmonitored=unmonitored, median_lead_share=statistics.median(shares) if shares else None,
        leads=len(shares),
    )
