"""The live monitor's judgement: from probe readings so far, each rule's state and early warning.

A rule is watched through three raw readings at each probe step: held-out conflict accuracy,
held-out agree accuracy (the control) and, when the rule has margin prompts, its contrast
margin CM. Two things are derived from them, and kept apart:

- **The state** says what the frozen classifier (`ClassifierConfig`, docs/method.md §4)
  would say if training stopped at this probe. ``displaced`` is exactly its DISPLACED
  verdict on the readings so far; it is a verdict, not a forecast.
- **The early warning** (the forecast, measured in `ungrok.fate.warning` and
  bench/monitor.py) is defined by one hashed `WatchConfig` (ungrok/fate/watch.json):
  after the rule has emerged the way the classifier counts emergence (probes before
  `min_step` ignored, centred mean of width `smooth_k`, best >= `emerged_thr`), the mean of
  the last `level_window` raw conflict readings has been <= `level_thr` (and `drop_thr`
  below the best) at `sustain` consecutive probes; optionally or'ed with a falling-CM
  trigger. ``warned_at`` latches the first probe at which it fired.

States, checked in this order at each probe step:
- ``control-failing``: the rule emerged, the classifier's agree gate passed at an earlier
  probe and fails now. A conflict drop is then general damage, not displacement.
- ``displaced``: the classifier's verdict on the readings so far is DISPLACED.
- ``displacing``: the early warning's trigger holds now (sustained as configured).
- ``emerged`` once the rule has emerged, ``not yet`` before.

A warning line is emitted once per entry into ``displacing``, ``displaced`` or
``control-failing``, so the log shows transitions rather than a line per probe.

`replay` recomputes all of this from a monitor.jsonl's recorded raw readings under any
config, so a warning rule can be evaluated on finished runs without training again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ungrok.fate._series import ge, le
from ungrok.fate.classify import Verdict, classify_family, smooth
from ungrok.fate.config import DEFAULT_CONFIG, ClassifierConfig
from ungrok.fate.watch_config import DEFAULT_WATCH, WatchConfig

WARN_STATES = ("displacing", "displaced", "control-failing")

Reading = tuple[int, float, float, "float | None"]  # (step, conflict, agree, cm) as the probe measured them


def _tail(k: int) -> int:
    """Points in a centred width-k mean at a series' newest point (the window is truncated)."""
    return k // 2 + 1


def _smoothed_last(values: list[float], k: int) -> float:
    tail = values[-_tail(k) :]
    return math.fsum(tail) / len(tail)


def least_squares_slope(ys: list[float]) -> float:
    n = len(ys)
    mx = (n - 1) / 2
    my = math.fsum(ys) / n
    den = math.fsum((i - mx) ** 2 for i in range(n))
    return math.fsum((i - mx) * (y - my) for i, y in enumerate(ys)) / den if den else 0.0


@dataclass
class RuleWatch:
    """Readings, state and early warning for one rule during one run."""

    rule: str
    cfg: WatchConfig = DEFAULT_WATCH
    classifier: ClassifierConfig = DEFAULT_CONFIG
    steps: list[int] = field(default_factory=list)
    conflict: list[float] = field(default_factory=list)
    agree: list[float] = field(default_factory=list)
    cm: list[float] = field(default_factory=list)  # only the probes that measured a CM ...
    cm_steps: list[int] = field(default_factory=list)  # ... at these steps
    # display values: the classifier's smoothing at the newest point (a trailing mean)
    smoothed_conflict: list[float] = field(default_factory=list)
    smoothed_agree: list[float] = field(default_factory=list)
    smoothed_cm: list[float] = field(default_factory=list)
    state: str = "not yet"
    gate_passed: bool = False
    trigger_run: int = 0  # consecutive probes at which the warning's trigger held
    warned_at: int | None = None  # first probe step of the early warning
    best: float | None = None  # best emergence-smoothed conflict over probes >= min_step
    # The smoothed values whose centred window is complete no longer change as probes arrive:
    # their max is kept, so each probe smooths only the last smooth_k // 2 kept points.
    _settled: int = 0
    _settled_best: float | None = None
    # False: skip the classifier's verdict at every probe (states never reach "displaced" or
    # "control-failing"); the early warning does not read it, and a grid search over warning
    # rules replays about four times faster without it.
    verdicts: bool = True

    def observe(self, step: int, conflict: float, agree: float, cm: float | None = None) -> str | None:
        """Record one probe step; return a warning line when the rule enters a warning state."""
        k = self.classifier.smooth_k
        self.steps.append(step)
        self.conflict.append(conflict)
        self.agree.append(agree)
        self.smoothed_conflict.append(_smoothed_last(self.conflict, k))
        self.smoothed_agree.append(_smoothed_last(self.agree, k))
        if cm is not None:
            self.cm.append(cm)
            self.cm_steps.append(step)
            self.smoothed_cm.append(_smoothed_last(self.cm, k))
        new = self._judge(step, cm is not None)
        changed = new != self.state
        self.state = new
        if changed and new in WARN_STATES:
            return self.warning(step)
        return None

    @property
    def warning_up(self) -> bool:
        """The early warning's trigger has held at `sustain` consecutive probes, up to now."""
        return self.trigger_run >= self.cfg.sustain

    def _kept(self) -> tuple[list[float], list[float]]:
        c = self.cfg
        idx = [i for i, s in enumerate(self.steps) if s >= c.min_step]
        return [self.conflict[i] for i in idx], [self.agree[i] for i in idx]

    def _verdict(self) -> Verdict | None:
        """The classifier's verdict if training stopped now; None until it has enough probes."""
        c = self.classifier
        if sum(1 for s in self.steps if s >= c.min_step) < c.final_min_ckpts:
            return None
        return classify_family(self.steps, self.conflict, self.agree, c)

    def _judge(self, step: int, has_cm: bool) -> str:
        c = self.cfg
        kc, ka = self._kept()
        if kc:
            self.best = self._best_smoothed(kc)
        emerged = self.best is not None and ge(self.best, c.emerged_thr)
        trigger = emerged and (
            self._level_falling(kc, ka) or (c.cm_trigger and has_cm and self._cm_falling())
        )
        self.trigger_run = self.trigger_run + 1 if trigger else 0
        if self.warning_up and self.warned_at is None:
            self.warned_at = step
        v = self._verdict() if self.verdicts else None
        if v is not None and (emerged or ge(v.conflict_max, self.classifier.emerged_thr)):
            # Before the rule emerges the agree control swings with whatever the model
            # guesses (always " he" solves it by accident); its gate means nothing yet.
            if v.valid:
                self.gate_passed = True
            elif self.gate_passed:
                return "control-failing"
        if v is not None and v.cls == "DISPLACED":
            return "displaced"
        if self.warning_up:
            return "displacing"
        return "emerged" if emerged else "not yet"

    def _best_smoothed(self, kc: list[float]) -> float:
        """max(smooth(kc, smooth_k)), the same value, without re-smoothing the whole series at
        every probe (kc only grows): a replayed dense run would otherwise cost O(probes²)."""
        k = self.cfg.smooth_k
        h, n = k // 2, len(kc)
        settled = max(0, n - h)  # points with h kept points after them: their window is complete
        if settled > self._settled:
            lo = max(0, self._settled - h)
            new = smooth(kc[lo : min(n, settled + h)], k)[self._settled - lo : settled - lo]
            self._settled_best = max(new if self._settled_best is None else [self._settled_best, *new])
            self._settled = settled
        tail = smooth(kc[max(0, self._settled - h) :], k)[self._settled - max(0, self._settled - h) :]
        return max(tail if self._settled_best is None else [self._settled_best, *tail])

    def _level_falling(self, kc: list[float], ka: list[float]) -> bool:
        c = self.cfg
        tail = kc[-c.level_window :]
        level = math.fsum(tail) / len(tail)
        agree = _smoothed_last(ka, c.smooth_k)
        assert self.best is not None
        return le(level, c.level_thr) and ge(self.best - level, c.drop_thr) and ge(agree, c.agree_min)

    def _cm_falling(self) -> bool:
        c = self.cfg
        kept = [m for s, m in zip(self.cm_steps, self.cm, strict=True) if s >= c.min_step]
        if len(kept) < c.cm_slope_window:
            return False
        sm = smooth(kept, c.smooth_k)
        peak, now = max(sm), sm[-1]
        return (
            peak > 0
            and ge(peak - now, max(c.cm_lost_nats, c.cm_lost_share * peak))
            and least_squares_slope(sm[-c.cm_slope_window :]) < 0
        )

    def warning(self, step: int) -> str:
        sc = self.smoothed_conflict[-1]
        cm = (
            f", CM {self.smoothed_cm[-1]:+.2f} (peak {max(self.smoothed_cm):+.2f})"
            if self.smoothed_cm
            else ""
        )
        if self.state == "control-failing":
            return (
                f"step {step}: {self.rule}: agree control failing "
                f"(smoothed {self.smoothed_agree[-1]:.2f}); conflict drops are not displacement"
            )
        verb = "displaced" if self.state == "displaced" else "displacement warning"
        best = f"{self.best:.2f}" if self.best is not None else "–"
        return f"step {step}: {self.rule}: {verb}: conflict {sc:.2f} (best {best}){cm}, agree {self.smoothed_agree[-1]:.2f}"

    def summary(self) -> dict[str, Any]:
        """The state so far, for logs and the progress display; ``raw`` is what `replay` reads."""
        last = bool(self.steps)
        cm_now = self.cm[-1] if last and self.cm_steps and self.cm_steps[-1] == self.steps[-1] else None
        return {
            "rule": self.rule,
            "state": self.state,
            "conflict": self.smoothed_conflict[-1] if last else None,
            "conflict_best": self.best,
            "agree": self.smoothed_agree[-1] if last else None,
            "cm": self.smoothed_cm[-1] if self.smoothed_cm else None,
            "warning": self.warning_up,
            "warned_at": self.warned_at,
            "raw": {
                "conflict": self.conflict[-1] if last else None,
                "agree": self.agree[-1] if last else None,
                "cm": cm_now,
            },
        }


# --------------------------------------------------------------------------- replay
def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _unsmooth(values: list[float], k: int) -> list[float]:
    """Raw readings back from trailing means of `_tail(k)` points (what older logs recorded)."""
    m, raw = _tail(k), []
    for i, s in enumerate(values):
        w = min(i + 1, m)
        raw.append(w * s - math.fsum(raw[len(raw) - (w - 1) :]) if w > 1 else s)
    return raw


def readings(
    rows: Iterable[Mapping[str, Any]], rule: str, smooth_k: int = DEFAULT_CONFIG.smooth_k
) -> list[Reading]:
    """The rule's raw (step, conflict, agree, cm) per probe from monitor.jsonl rows, by step.

    Lines written by this monitor carry the raw readings (``raw``). Older lines carry only the
    display values, trailing means of ``smooth_k // 2 + 1`` readings; those are inverted, which
    is exact up to float rounding (about 1e-15). A later line for the same step wins."""
    by_step: dict[int, Mapping[str, Any]] = {}
    for row in rows:
        if not isinstance(row, Mapping) or not isinstance(row.get("rules"), Mapping):
            continue
        step, entry = row.get("step"), row["rules"].get(rule)
        if isinstance(step, int) and not isinstance(step, bool) and isinstance(entry, Mapping):
            by_step[step] = entry
    steps = sorted(by_step)
    entries = [by_step[s] for s in steps]
    if entries and all(isinstance(e.get("raw"), Mapping) for e in entries):
        out: list[Reading] = []
        for s, e in zip(steps, entries, strict=True):
            c, a = _num(e["raw"].get("conflict")), _num(e["raw"].get("agree"))
            if c is not None and a is not None:
                out.append((s, c, a, _num(e["raw"].get("cm"))))
        return out
    kept_steps, cs, ags, cms = [], [], [], []
    for s, e in zip(steps, entries, strict=True):
        c, a = _num(e.get("conflict")), _num(e.get("agree"))
        if c is not None and a is not None:
            kept_steps.append(s)
            cs.append(c)
            ags.append(a)
            cms.append(_num(e.get("cm")))
    # accuracies are shares: clamp the inversion's rounding (1 + 2e-16) back into [0, 1]
    raw_c, raw_a = ([min(1.0, max(0.0, x)) for x in _unsmooth(v, smooth_k)] for v in (cs, ags))
    cm_vals = [x for x in cms if x is not None]
    raw_cm: list[float | None] = (
        list(_unsmooth(cm_vals, smooth_k)) if len(cm_vals) == len(cms) else [None] * len(cms)
    )
    return list(zip(kept_steps, raw_c, raw_a, raw_cm, strict=True))


def replay_rule(
    rule: str,
    reads: Iterable[Reading],
    cfg: WatchConfig = DEFAULT_WATCH,
    classifier: ClassifierConfig = DEFAULT_CONFIG,
    verdicts: bool = True,
) -> list[dict[str, Any]]:
    """A fresh `RuleWatch` fed the readings: per probe its summary plus ``step`` and ``line``
    (the warning line the live monitor would have printed, or None)."""
    w = RuleWatch(rule, cfg, classifier, verdicts=verdicts)
    out = []
    for step, c, a, cm in reads:
        line = w.observe(step, c, a, cm)
        out.append({"step": step, **w.summary(), "line": line})
    return out


def recorded_rules(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every rule with an entry in at least one row, in order of first appearance."""
    out: dict[str, None] = {}
    for row in rows:
        rules = row.get("rules") if isinstance(row, Mapping) else None
        if isinstance(rules, Mapping):
            out.update(dict.fromkeys(str(r) for r, e in rules.items() if isinstance(e, Mapping)))
    return list(out)


def replay(
    rows: Iterable[Mapping[str, Any]],
    cfg: WatchConfig = DEFAULT_WATCH,
    classifier: ClassifierConfig = DEFAULT_CONFIG,
    verdicts: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Every rule of a monitor.jsonl, re-judged under `cfg`: rule -> `replay_rule`'s probes."""
    rows = list(rows)
    return {
        r: replay_rule(r, readings(rows, r, classifier.smooth_k), cfg, classifier, verdicts)
        for r in recorded_rules(rows)
    }
