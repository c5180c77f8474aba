"""The page's lead: the focal rule's headline, then its accuracy and CM side by side.

An experiment asks about one rule (focal.py picks it), so the page opens with that rule alone;
every other rule is folded further down (others.py). The counting is in report/lead.py.
"""

from __future__ import annotations

from markupsafe import Markup

from ungrok.report.common import code, figure, items, join, legend, letters, markup, note, table
from ungrok.report.data import ReportData
from ungrok.report.facts import cell_label, fmt, seeds_text
from ungrok.report.focal import focal_rule
from ungrok.report.lead import focal_cells, headline_sentences


def section_focal(data: ReportData) -> Markup:
    """The headline: which rule, why, how its runs ended, and one row per cell."""
    rule, why = focal_rule(data)
    if rule is None:
        return note("No rule has a verdict or a trajectory, so there is no focal rule to lead with.")
    out = [markup('<p class="lead">Focal rule: <code>{}</code> <span class="meta">({})</span></p>', rule, why),
           items(headline_sentences(data, rule), cls="summary")]
    if data.records is None:
        return join(out)
    rows = [[c.cell, cell_label(data, c.cell), letters(data, c.cell, rule), fmt(c.mean_cm_final, signed=True),
             seeds_text(c.transient) if c.transient else ("no" if c.transient_known else "–")]
            for c in focal_cells(data, rule)]
    out += [table(["cell", "kind", "seeds", "mean CM_final", "emerged, then collapsed"], rows, num_cols=(3,)),
            legend()]
    return join(out)


def section_focal_trajectories(data: ReportData) -> Markup:
    """The focal rule's accuracy and CM, side by side per cell, with the monitor's first warnings."""
    from ungrok.report.focal_figures import focal_figure, warning_steps  # matplotlib only when drawn

    rule, _ = focal_rule(data)
    if rule is None:
        return note("No focal rule, so there are no focal trajectories.")
    fig = focal_figure(data, rule)
    if fig is None:
        return note(f"Neither a trajectory table (traj.parquet) nor a margin table (traj.margins.parquet) has "
                    f"{rule}, so its trajectories are not drawn.")
    cfg = data.classifier
    warned = warning_steps(data, rule)
    if warned:
        marks = markup("Dotted line with ▼ = the live monitor's first displacement warning (<em>displacing</em> or "
                       "<em>displaced</em> after <em>emerged</em>), in {} run{}.", len(warned),
                       "s" if len(warned) != 1 else "")
    elif data.watch is not None and rule in data.watch.rules():
        marks = Markup("The live monitor gave no displacement warning for this rule.")
    else:
        marks = Markup("The monitor logged no per-rule states for this rule, so no warning is marked.")
    cap = markup("{rule}, one row per cell. Left: held-out conflict accuracy per seed (coloured), the seed range "
                 "(shaded) and the agree control (dashed grey, seed mean); steps ≥ {min_step}, centred k = {k} "
                 "mean, as the classifier sees them; dotted at {rec:g} and {dis:g}. Right: contrast margin CM = "
                 "mean log p(rule) − log p(prior) at the rule's prompts, smoothed over every checkpoint; dashed "
                 "vertical = behavioural onset, dot = CM zero crossing. {marks} Titles show the seeds' verdict "
                 "letters.", rule=code(rule), min_step=cfg.min_step, k=cfg.smooth_k, rec=cfg.recovered_thr,
                 dis=cfg.displaced_thr, marks=marks)
    return figure(fig, f"trajectories and contrast margins of {rule}", cap)
