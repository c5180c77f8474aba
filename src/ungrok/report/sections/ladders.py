"""The dose-response section: one plot and one Table-5 style table per ladder and rule."""

from __future__ import annotations

from markupsafe import Markup

from ungrok.report import figures
from ungrok.report.common import figure, join, markup, note, table
from ungrok.report.data import ReportData
from ungrok.report.facts import fmt, fmt_num, ladder_rules, ladder_series, ladders, support_row


def section_ladders(data: ReportData) -> Markup:
    """Each kill or rescue ladder against its rate or dose, the parent cell at 0."""
    lads = ladders(data)
    if not lads:
        return note("No ladders: experiment.json has no kill cell with a rate or rescue cell with a dose "
                    "whose parent is a cell.")
    if data.records is None:
        return note("No verdicts (fates.json is missing), so there are no dose-response plots.")
    out = []
    for lad in lads:
        rules, why = ladder_rules(data, lad)
        for rule in rules:
            out.append(markup("<h3>{} ladder on '{}': <code>{}</code></h3>", lad.kind, lad.parent, rule))
            fig = figures.dose_response_figure(data, lad, rule)
            if fig is None:
                out.append(note(f"No verdicts for {rule} on this ladder."))
                continue
            cap = (f"Per seed (filled: agree gate passed; hollow: failed) and the mean over seeds, against the "
                   f"{lad.axis} ({lad.parent} at 0). Rule shown: {why}.")
            out.append(figure(fig, f"dose-response of {rule} on the {lad.kind} ladder of {lad.parent}", cap))
            rows = []
            for x, cell, t in ladder_series(data, lad, rule):
                srow = support_row(data, cell, rule)
                rows.append([fmt_num(x), cell, fmt(srow["ratio"], 3) if srow else "–",
                             f"{t.recovered_valid}/{t.seeds}", f"{t.died}/{t.seeds}",
                             f"{t.cm_valid}/{t.cm_seeds}" if t.cm_seeds else "–",
                             fmt(t.mean_conflict_final), fmt(t.mean_cm_final, signed=True)])
            head = [lad.axis, "cell", "rule:prior", "recovered+valid", f"died (≤ {data.classifier.displaced_thr:g})",
                    "CM instrument-valid", "mean conflict final", "mean CM_final"]
            out.append(table(head, rows, num_cols=(0, 2, 6, 7)))
    return join(out)
