"""The phase-diagram section: where the focal rule ends up over each sweep's knobs (only when
experiment.json records sweeps; the layout is explained in report/phase.py)."""

from __future__ import annotations

from markupsafe import Markup

from ungrok.report.common import figure, join, legend, letters, markup, note, table
from ungrok.report.data import ReportData
from ungrok.report.facts import fmt
from ungrok.report.focal import focal_rule
from ungrok.report.phase import phase_point, value_label


def section_phase(data: ReportData) -> Markup | None:
    """One figure and one table per sweep, for the lead's rule, so the map and the lead agree; None
    (no section) when experiment.json records no sweeps."""
    from ungrok.report.phase_figures import phase_figure  # matplotlib only when drawn

    if data.phase is None:
        return None
    rule, why = focal_rule(data)
    if rule is None:
        return note("No verdicts (fates.json is missing or empty), so there is no phase diagram.")
    ratio = data.phase.ratio
    out = [markup('<p class="meta">Rule shown: <code>{}</code> ({}). One point per cell; its letters are the '
                  "seeds' verdicts in seed order {}.</p>", rule, why, ", ".join(map(str, data.seeds))), legend()]
    for sweep in data.phase.sweeps:
        out.append(markup("<h3>sweep <code>{}</code>: {}</h3>", sweep.name, " × ".join(sweep.knobs)))
        cap = markup("Each point is a cell of sweep <code>{}</code>, placed by its knob values (evenly spaced, "
                     "ascending); above it the seeds' verdict letters for <code>{}</code>, below it the counted "
                     "support ratio {} of the corpus (when support.json has it). Colour: mean CM_final over seeds "
                     "in nats, blue above 0 (the rule wins at its prompts), red below; hollow grey: no CM.",
                     sweep.name, rule, ratio)
        if len(sweep.knobs) > 2:
            cap += markup(" One panel per combination of {}.", ", ".join(sweep.knobs[2:]))
        out.append(figure(phase_figure(data, sweep, rule), f"phase diagram of sweep {sweep.name}", cap))
        rows = []
        for cell, point in sweep.points.items():
            pt = phase_point(data, cell, rule)
            rows.append([cell, *(value_label(point[k]) for k in sweep.knobs), letters(data, cell, rule),
                         fmt(pt.mean_cm, signed=True), fmt(pt.ratio, 3)])
        n = len(sweep.knobs)
        out.append(table(["cell", *sweep.knobs, "seeds", "mean CM_final", ratio], rows,
                         num_cols=(*range(1, n + 1), n + 2, n + 3)))
    return join(out)
