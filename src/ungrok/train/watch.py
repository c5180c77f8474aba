"""The live monitor's judgement: from probe readings so far, each rule's state and warnings.

A rule is watched through three readings at each probe step: held-out conflict accuracy,
held-out agree accuracy (the control) and, when the rule has margin prompts, its
contrast margin CM. The readings are smoothed with the classifier's centred k = 3 mean,
which at the newest point is a trailing mean of 2 — the same truncation the frozen
classifier applies at a series' end.

States, checked in this order at each probe step:
- ``not yet``: the rule has not emerged (smoothed conflict never reached 0.8).
- ``control-failing``: after the rule emerged, the agree control's smoothed accuracy
  is below the gate (0.8) after having passed it. Any conflict drop is then general
  damage, not displacement, so no displacement warning is raised.
- ``displaced``: the rule emerged (smoothed conflict ≥ 0.8 at some probe) and its
  smoothed conflict is now ≤ 0.6 — what the classifier would call DISPLACED if
  training stopped here.
- ``displacing`` (the early warning): the rule emerged, its smoothed conflict is
  still above 0.6, and it is falling: either the smoothed conflict is ≥ 0.2 below its
  best, or the smoothed CM has lost at least half its peak (and at least 0.5 nats)
  and its least-squares slope over the last `trend_points` probes is negative. CM
  usually moves before argmax accuracy does, so this fires while the rule can
  still be counted as solved.
- ``emerged``: otherwise.

A warning is emitted once per entry into ``displacing``, ``displaced`` or
``control-failing``, so the log shows transitions rather than a line per probe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ungrok.fate._series import ge, le
from ungrok.fate.config import DEFAULT_CONFIG, ClassifierConfig

WARN_STATES = ("displacing", "displaced", "control-failing")


def _smoothed_last(values: list[float], k: int) -> float:
    tail = values[-(k // 2 + 1) :]  # centred window truncated at the series' end
    return math.fsum(tail) / len(tail)


def _slope(ys: list[float]) -> float:
    n = len(ys)
    mx = (n - 1) / 2
    my = math.fsum(ys) / n
    den = math.fsum((i - mx) ** 2 for i in range(n))
    return math.fsum((i - mx) * (y - my) for i, y in enumerate(ys)) / den if den else 0.0


@dataclass
class RuleWatch:
    """Readings and judgement for one rule during one run."""

    rule: str
    cfg: ClassifierConfig = DEFAULT_CONFIG
    trend_points: int = 3
    steps: list[int] = field(default_factory=list)
    conflict: list[float] = field(default_factory=list)
    agree: list[float] = field(default_factory=list)
    cm: list[float] = field(default_factory=list)
    smoothed_conflict: list[float] = field(default_factory=list)
    smoothed_agree: list[float] = field(default_factory=list)
    smoothed_cm: list[float] = field(default_factory=list)
    state: str = "not yet"
    gate_passed: bool = False

    def observe(self, step: int, conflict: float, agree: float, cm: float | None = None) -> str | None:
        """Record one probe step; return a warning line when the rule enters a warning state."""
        k = self.cfg.smooth_k
        self.steps.append(step)
        self.conflict.append(conflict)
        self.agree.append(agree)
        self.smoothed_conflict.append(_smoothed_last(self.conflict, k))
        self.smoothed_agree.append(_smoothed_last(self.agree, k))
        if cm is not None:
            self.cm.append(cm)
            self.smoothed_cm.append(_smoothed_last(self.cm, k))
        new = self._judge()
        changed = new != self.state
        self.state = new
        if changed and new in WARN_STATES:
            return self.warning(step)
        return None

    def _judge(self) -> str:
        c = self.cfg
        sc, sa = self.smoothed_conflict[-1], self.smoothed_agree[-1]
        best = max(self.smoothed_conflict)
        if not ge(best, c.emerged_thr):
            # Before the rule emerges the agree control swings with whatever the model
            # guesses (always " he" solves it by accident); its gate means nothing yet.
            return "not yet"
        if ge(sa, c.agree_valid_thr):
            self.gate_passed = True
        elif self.gate_passed:
            return "control-failing"
        if le(sc, c.displaced_thr):
            return "displaced"
        if ge(best - sc, c.unstable_range) or self._cm_falling():
            return "displacing"
        return "emerged"

    def _cm_falling(self) -> bool:
        if len(self.smoothed_cm) < self.trend_points:
            return False
        peak, now = max(self.smoothed_cm), self.smoothed_cm[-1]
        lost = peak - now
        return (
            peak > 0
            and ge(lost, max(self.cfg.cm_guard_nats, 0.5 * peak))
            and _slope(self.smoothed_cm[-self.trend_points :]) < 0
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
        return (
            f"step {step}: {self.rule}: {verb}: conflict {sc:.2f} "
            f"(best {max(self.smoothed_conflict):.2f}){cm}, agree {self.smoothed_agree[-1]:.2f}"
        )

    def summary(self) -> dict:
        """The state so far, for logs and the progress display."""
        return {
            "rule": self.rule,
            "state": self.state,
            "conflict": self.smoothed_conflict[-1] if self.steps else None,
            "conflict_best": max(self.smoothed_conflict) if self.steps else None,
            "agree": self.smoothed_agree[-1] if self.steps else None,
            "cm": self.smoothed_cm[-1] if self.smoothed_cm else None,
        }
