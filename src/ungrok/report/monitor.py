"""The live-monitor section: the displacement warning measured against the final verdicts.

The monitor's lines (RUN_DIR/cells/<CELL>/seed<S>/monitor.jsonl) carry each watched rule's
state and early-warning flag at every probe step, and the sha256 of the warning rule
(`ungrok.fate.watch_config.WatchConfig`) that raised them; fates.json carries each run's final
fate and onset. For every (cell, seed, rule) `ungrok.fate.warning` derives the first warning
step (the first probe with the early warning up; older logs: ``displacing`` or ``displaced``
after the rule was seen ``emerged``), the classifier's collapse step (the onset, when the
smoothed conflict accuracy fell below 0.5 after it for good) and the lead between them. The section shows, for the focal rule, one row per run, then the warning as
a classifier of DISPLACED (agree gate passed) over every run of the experiment and per
rule, and last the warning lines themselves.

The focal rule is the one every section leads with (``ungrok.report.focal.focal_rule``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
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
from ungrok.report.facts import families, record_index
from ungrok.report.focal import focal_rule


@dataclass
class WatchData:
    """Per-rule monitor states of every listed seed that has a monitor.jsonl, and the focal rule."""

    rows: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)  # (cell, seed)
    focal: str = "pronoun_gender_ref"
    focal_why: str = "the anchor rule"

    def rules(self) -> list[str]:
        out: dict[str, None] = {}
        for rows in self.rows.values():
            out.update(dict.fromkeys(monitored_rules(rows)))
        return list(out)


# --------------------------------------------------------------------------- loading
def state_row(rec: Any) -> dict[str, Any] | None:
    """A monitor line's step, per-rule states and early-warning flags, and the warning rule's
    sha256 (None on older lines), or None for a line without per-rule states."""
    if not isinstance(rec, dict) or not isinstance(rec.get("rules"), dict):
        return None
    states: dict[str, dict[str, Any]] = {}
    for r, e in rec["rules"].items():
        if isinstance(e, dict) and isinstance(e.get("state"), str):
            states[str(r)] = {"state": e["state"]}
            if isinstance(e.get("warning"), bool):
                states[str(r)]["warning"] = e["warning"]
    sha = rec.get("watch_sha256")
    return {"step": rec.get("step"), "rules": states, "watch_sha256": sha if isinstance(sha, str) else None}


def read_monitor_rows(path: Path) -> list[dict[str, Any]]:
    """`state_row` of every JSON line of a monitor.jsonl outside a report (bench/monitor.py)."""
    rows = []
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = state_row(json.loads(text)) if text.strip() else None
        except json.JSONDecodeError:
            continue
        if row is not None:
            rows.append(row)
    return rows


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


def warning_rules(data: ReportData) -> list[str]:
    """The sha256 of every warning rule the listed seeds' monitor logs name, in order; "legacy"
    for logs written before the rule was hashed."""
    watch = data.watch
    out: dict[str, None] = {}
    for rows in watch.rows.values() if watch is not None else ():
        for row in rows:
            out.setdefault(row.get("watch_sha256") or "legacy", None)
    return list(out)


def rule_sentence(data: ReportData) -> str:
    """Which warning rule (by sha256) raised the warnings measured here, and the package's own."""
    shas = warning_rules(data)
    own = DEFAULT_WATCH.sha256()
    named = [s for s in shas if s != "legacy"]
    parts = []
    if named:
        parts.append(
            "Warning rule (WatchConfig sha256) recorded in the monitor logs: " + ", ".join(named) + "."
        )
    if "legacy" in shas:
        who = "Some logs predate" if named else "These monitor logs predate"
        parts.append(f"{who} the hashed warning rule; their warnings are read with the rule "
                     "of their day (displacing or displaced after emerged).")  # fmt: skip
    if named != [own]:
        parts.append(f"This package's warning rule is {own}; bench/monitor.py replays logs under it.")
    return " ".join(parts)


def by_family(runs: dict[tuple[str, int, str], WarningRun]) -> dict[str, WarningScore]:
    fams: dict[str, list[WarningRun]] = {}
    for (_, _, fam), r in runs.items():
        fams.setdefault(fam, []).append(r)
    return {f: score(rs) for f, rs in fams.items()}


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _step(x: int | None) -> str:
    return "–" if x is None else str(x)


def score_sentence(s: WarningScore, what: str) -> str:
    """One line: precision, recall, false alarms and the median lead share over `what`."""
    if not s.scored:
        return f"No run of {what} could be scored (agree gate passed and monitored)."
    text = (f"Over {s.scored} scored run{'s' if s.scored != 1 else ''} of {what}: precision "
            f"{_ratio(s.precision)} ({s.tp} of {s.warned} warned runs ended DISPLACED), recall "
            f"{_ratio(s.recall)} ({s.tp} of {s.positives} DISPLACED runs warned), {s.fp} false "
            f"alarm{'s' if s.fp != 1 else ''}")  # fmt: skip
    if s.median_lead_share is not None:
        text += f"; median lead {_pct(s.median_lead_share)} of the run over {s.leads} true positive{'s' if s.leads != 1 else ''}"
    text += "."
    left = [f"{n} {why}" for n, why in ((s.gate_failed, "with a failed agree gate"),
                                        (s.unmonitored, "the monitor did not watch")) if n]  # fmt: skip
    if left:
        text += " Left out: " + ", ".join(left) + "."
    return text


# --------------------------------------------------------------------------- section
def section_watch(data: ReportData) -> str:
    """The section's HTML: the focal rule's runs, the precision/recall lines, the per-rule table,
    and the warning lines (html.section_monitor)."""
    # html.py imports this module lazily, so this import is lazy too
    from ungrok.report.html import _note, _table, esc, fate_badge, section_monitor

    log = section_monitor(data)
    if not data.monitor:
        return log
    watch = data.watch
    intro = ('<p class="meta">The warning is the first probe step at which the monitor\'s early warning '
             "was up: after the rule emerged (as the classifier counts it), its held-out conflict accuracy "
             "stayed at or below the rule's level for the rule's number of consecutive probes. "
             "<em>Displaced</em> is the classifier's own verdict on the readings so far, not the warning. The "
             "collapse step is the classifier's onset (last step with smoothed held-out conflict accuracy "
             "≥ 0.5) when the accuracy fell below 0.5 after it and stayed there. Lead = collapse − warning "
             "(negative: the warning came late), as steps and as a share of the run's steps. Scored runs "
             "are those whose agree gate passed; a warned run that did not end DISPLACED is a false "
             "alarm.</p>")  # fmt: skip
    if data.records is None:
        return intro + _note("No verdicts (fates.json is missing), so the warnings cannot be measured "
                             "against them.") + "<h3>Warning lines</h3>" + log  # fmt: skip
    if watch is None or not watch.rules():
        return intro + _note("The monitor logs hold no per-rule states (an older monitor.jsonl?), so "
                             "the warnings cannot be measured.") + "<h3>Warning lines</h3>" + log  # fmt: skip
    runs = warning_runs(data)
    idx = record_index(data)
    focal = watch.focal
    out = [intro, f'<p class="meta">{esc(rule_sentence(data))}</p>', f"<h3>Focal rule: <code>{esc(focal)}</code></h3>",
           f'<p class="meta">The focal rule is {esc(watch.focal_why)}.</p>']  # fmt: skip
    rows = []
    for cell in data.cells:
        for seed in data.seeds:
            rec, monitored = idx.get((cell, seed, focal)), (cell, seed) in watch.rows
            if rec is None and not monitored:
                continue
            r = runs.get((cell, seed, focal))
            if r is None or not r.monitored:
                why = "no monitor log" if not monitored else "the monitor did not watch this rule"
                why = why if rec is not None else why + "; no verdict"
                rows.append([esc(cell), str(seed), fate_badge(rec, seed), "–", "–", "–", "–", esc(why)])
                continue
            outcome = r.outcome or "agree gate failed: not scored"
            rows.append([esc(cell), str(seed), fate_badge(rec, seed), _step(r.warning), _step(r.collapse),
                         _step(r.lead), _pct(r.lead_share), esc(outcome)])  # fmt: skip
    out.append(_table(["cell", "seed", "fate", "first warning", "collapse", "lead (steps)", "lead (% of run)",
                       "outcome"], rows, num_cols=(1, 3, 4, 5, 6)))  # fmt: skip
    scores = by_family(runs)
    if focal in scores:
        out.append(f"<p>{esc(score_sentence(scores[focal], f'the focal rule {focal}'))}</p>")
    out.append(
        f"<p>{esc(score_sentence(score(runs.values()), 'the experiment (every rule, cell and seed)'))}</p>"
    )
    out.append("<h3>Every rule</h3>")
    fam_rows = []
    for fam in families(data):
        s = scores.get(fam)
        if s is None:
            continue
        fam_rows.append([f"<code>{esc(fam)}</code>", str(s.scored), str(s.positives), str(s.warned), str(s.tp),
                         str(s.fp), str(s.fn), _ratio(s.precision), _ratio(s.recall),
                         _pct(s.median_lead_share), str(s.gate_failed + s.unmonitored)])  # fmt: skip
    out.append(_table(["rule", "scored runs", "DISPLACED", "warned", "true positives", "false alarms", "missed",
                       "precision", "recall", "median lead", "not scored"], fam_rows,
                      num_cols=tuple(range(1, 11))))  # fmt: skip
    out.append('<p class="meta">Not scored: runs whose agree gate failed or whose rule the monitor did not '
               "watch. The median lead is over the true positives with a collapse step.</p>")  # fmt: skip
    out.append("<h3>Warning lines</h3>" + log)
    return "".join(out)
