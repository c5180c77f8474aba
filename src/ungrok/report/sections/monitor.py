"""The live-monitor section: the displacement warning against the final verdicts (the counts
are in report/monitor.py), then the warning lines themselves."""

from __future__ import annotations

from markupsafe import Markup

from ungrok.fate.warning import score
from ungrok.report.common import code, fate_badge, join, markup, note, table
from ungrok.report.data import ReportData
from ungrok.report.facts import families, fmt, record_index
from ungrok.report.monitor import (
    by_family,
    fmt_pct,
    fmt_step,
    rule_sentence,
    score_sentence,
    warning_runs,
)

INTRO = Markup('<p class="meta">The warning is the first probe step at which the monitor\'s early warning '
               "was up: after the rule emerged (as the classifier counts it), its held-out conflict accuracy "
               "stayed at or below the rule's level for the rule's number of consecutive probes. "
               "<em>Displaced</em> is the classifier's own verdict on the readings so far, not the warning. The "
               "collapse step is the classifier's onset (last step with smoothed held-out conflict accuracy "
               "≥ 0.5) when the accuracy fell below 0.5 after it and stayed there. Lead = collapse − warning "
               "(negative: the warning came late), as steps and as a share of the run's steps. Scored runs "
               "are those whose agree gate passed; a warned run that did not end DISPLACED is a false "
               "alarm.</p>")
LINES = Markup("<h3>Warning lines</h3>")


def warning_lines(data: ReportData) -> Markup:
    """Every warning line the monitor logged, one row each."""
    if not data.monitor:
        return note("No live-monitor logs (monitor.jsonl) were found.")
    rows = [[cell, seed, line.get("step", "–"), w]
            for (cell, seed), lines in data.monitor.items() for line in lines for w in line["warnings"]]
    if not rows:
        return markup("<p>The live monitor raised no warning in any of the {} monitored runs.</p>",
                      len(data.monitor))
    return table(["cell", "seed", "step", "warning"], rows, num_cols=(1, 2))


def section_watch(data: ReportData) -> Markup:
    """The focal rule's runs, the precision/recall lines, the per-rule table, and the warning lines."""
    log = warning_lines(data)
    if not data.monitor:
        return log
    watch = data.watch
    if data.records is None:
        return join([INTRO, note("No verdicts (fates.json is missing), so the warnings cannot be measured "
                                 "against them."), LINES, log])
    if watch is None or not watch.rules():
        return join([INTRO, note("The monitor logs hold no per-rule states (an older monitor.jsonl?), so "
                                 "the warnings cannot be measured."), LINES, log])
    runs = warning_runs(data)
    idx = record_index(data)
    focal = watch.focal
    out = [INTRO, markup('<p class="meta">{}</p>', rule_sentence(data)),
           markup("<h3>Focal rule: <code>{}</code></h3>", focal),
           markup('<p class="meta">The focal rule is {}.</p>', watch.focal_why)]
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
                rows.append([cell, seed, fate_badge(rec, seed), "–", "–", "–", "–", why])
                continue
            outcome = r.outcome or "agree gate failed: not scored"
            rows.append([cell, seed, fate_badge(rec, seed), fmt_step(r.warning), fmt_step(r.collapse),
                         fmt_step(r.lead), fmt_pct(r.lead_share), outcome])
    out.append(table(["cell", "seed", "fate", "first warning", "collapse", "lead (steps)", "lead (% of run)",
                      "outcome"], rows, num_cols=(1, 3, 4, 5, 6)))
    scores = by_family(runs)
    if focal in scores:
        out.append(markup("<p>{}</p>", score_sentence(scores[focal], f"the focal rule {focal}")))
    every = score_sentence(score(runs.values()), "the experiment (every rule, cell and seed)")
    out.append(markup("<p>{}</p>", every))
    out.append(Markup("<h3>Every rule</h3>"))
    fam_rows = [[code(fam), s.scored, s.positives, s.warned, s.tp, s.fp, s.fn, fmt(s.precision), fmt(s.recall),
                 fmt_pct(s.median_lead_share), s.gate_failed + s.unmonitored]
                for fam in families(data) if (s := scores.get(fam)) is not None]
    out.append(table(["rule", "scored runs", "DISPLACED", "warned", "true positives", "false alarms", "missed",
                      "precision", "recall", "median lead", "not scored"], fam_rows,
                     num_cols=tuple(range(1, 11))))
    out.append(Markup('<p class="meta">Not scored: runs whose agree gate failed or whose rule the monitor did not '
                      "watch. The median lead is over the true positives with a collapse step.</p>"))
    out += [LINES, log]
    return join(out)
