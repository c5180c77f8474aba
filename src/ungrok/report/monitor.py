"""The live monitor's warnings measured against the final verdicts: the data and the counts.

The monitor's lines (RUN_DIR/cells/<CELL>/seed<S>/monitor.jsonl) carry each watched rule's
state and early-warning flag at every probe step, and the sha256 of the warning rule
(`ungrok.fate.watch_config.WatchConfig`) that raised them; fates.json carries each run's final
fate and onset. For every (cell, seed, rule) `ungrok.fate.warning` derives the first warning
step (the first probe with the early warning up; older logs: ``displacing`` or ``displaced``
after the rule was seen ``emerged``), the classifier's collapse step (the onset, when the
smoothed conflict accuracy fell below 0.5 after it for good) and the lead between them.
The section (sections/monitor.py) shows, for the focal rule, one row per run, then the
warning as a classifier of DISPLACED (agree gate passed) over every run of the experiment
and per rule, and last the warning lines themselves.

The focal rule is the one every section leads with (``ungrok.report.focal.focal_rule``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ungrok.fate.warning import (
    WarningRun,
    WarningScore,
    assess,
    monitored_rules,
    rule_states,
    rule_warning,
    score,
)
from ungrok.fate.watch_config import DEFAULT_WATCH
from ungrok.report.data import ReportData
from ungrok.report.facts import fmt
from ungrok.report.focal import focal_rule


@dataclass
class WatchData:
    """Per-rule monitor states of every listed seed that has a monitor.jsonl, and the focal rule."""

    rows: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)  # (cell, seed)
    focal: str = "pronoun_gender_ref"
    focal_why: str = "the anchor rule"

    def rules(self) -> list[str]:
        return list(dict.fromkeys(rule for rows in self.rows.values() for rule in monitored_rules(rows)))


# --------------------------------------------------------------------------- loading
def load_watch(data: ReportData) -> WatchData | None:
    """The monitor states of the listed seeds (parsed by data.py with the warning lines), or None
    when no seed has a monitor.jsonl."""
    if not data.monitor_states:
        return None
    watch = WatchData(dict(data.monitor_states))
    rule, why = focal_rule(data)
    watch.focal, watch.focal_why = (rule, why) if rule else (data.classifier.anchor_family, "the anchor rule")
    return watch


# --------------------------------------------------------------------------- facts
def warning_runs(data: ReportData) -> dict[tuple[str, int, str], WarningRun]:
    """(cell, seed, family) -> the warning against the verdict, for every record of the run."""
    watch = data.watch
    out = {}
    for r in data.records or []:
        rows = watch.rows.get((r["cell"], r["seed"]), []) if watch is not None else []
        fam = r["family"]
        out[(r["cell"], r["seed"], fam)] = assess(rule_states(rows, fam), r, warning=rule_warning(rows, fam))
    return out


def rule_sentence(data: ReportData) -> str:
    """Which warning rule (by sha256) raised the warnings measured here, and the package's own.
    The monitor logs name the rule's sha256, in order; "legacy" stands for logs written before
    the rule was hashed."""
    logs = data.watch.rows.values() if data.watch is not None else ()
    shas = list(dict.fromkeys(row.get("watch_sha256") or "legacy" for rows in logs for row in rows))
    own = DEFAULT_WATCH.sha256()
    named = [s for s in shas if s != "legacy"]
    parts = []
    if named:
        parts.append("Warning rule (WatchConfig sha256) recorded in the monitor logs: " + ", ".join(named) + ".")
    if "legacy" in shas:
        who = "Some logs predate" if named else "These monitor logs predate"
        parts.append(f"{who} the hashed warning rule; their warnings are read with the rule "
                     "of their day (displacing or displaced after emerged).")
    if named != [own]:
        parts.append(f"This package's warning rule is {own}; bench/monitor.py replays logs under it.")
    return " ".join(parts)


def by_family(runs: dict[tuple[str, int, str], WarningRun]) -> dict[str, WarningScore]:
    fams: dict[str, list[WarningRun]] = {}
    for (_, _, fam), r in runs.items():
        fams.setdefault(fam, []).append(r)
    return {f: score(rs) for f, rs in fams.items()}


def fmt_pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def fmt_step(x: int | None) -> str:
    return "–" if x is None else str(x)


def score_sentence(s: WarningScore, what: str) -> str:
    """One line: precision, recall, false alarms and the median lead share over `what`."""
    if not s.scored:
        return f"No run of {what} could be scored (agree gate passed and monitored)."
    text = (f"Over {s.scored} scored run{'s' if s.scored != 1 else ''} of {what}: precision "
            f"{fmt(s.precision)} ({s.tp} of {s.warned} warned runs ended DISPLACED), recall "
            f"{fmt(s.recall)} ({s.tp} of {s.positives} DISPLACED runs warned), {s.fp} false "
            f"alarm{'s' if s.fp != 1 else ''}")
    if s.median_lead_share is not None:
        text += f"; median lead {fmt_pct(s.median_lead_share)} of the run over {s.leads} true positive{'s' if s.leads != 1 else ''}"
    text += "."
    left = [f"{n} {why}" for n, why in ((s.gate_failed, "with a failed agree gate"),
                                        (s.unmonitored, "the monitor did not watch")) if n]
    if left:
        text += " Left out: " + ", ".join(left) + "."
    return text
