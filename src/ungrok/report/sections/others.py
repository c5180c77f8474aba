"""The other-rules section: every rule but the focal one, folded in a closed <details>. All of
them are still there, but no longer of equal weight with the rule the experiment is about."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from ungrok.report import figures
from ungrok.report.common import code, figure, join, markup, note, render
from ungrok.report.data import ReportData
from ungrok.report.facts import families
from ungrok.report.focal import focal_rule


def margin_rules(data: ReportData) -> list[str]:
    """The rules with a CM series, the anchor first."""
    return sorted({k[2] for k in data.margins}, key=lambda r: (r != data.classifier.anchor_family, r))


def trajectories(data: ReportData, rules: Sequence[str]) -> Markup:
    """One figure per rule."""
    if not data.conflict:
        return note("No trajectory tables (traj.parquet) were found, so there are no trajectory plots.")
    cfg = data.classifier
    out = []
    for fam in rules:
        fig = figures.trajectory_figure(data, fam)
        if fig is None:
            out.append(note(f"{fam}: no held-out trajectory in any cell."))
            continue
        cap = markup("{}: coloured lines = held-out conflict accuracy per seed; shaded = the range across seeds; "
                     "dashed grey = the agree control (mean over seeds). Steps ≥ {}, smoothed with the "
                     "classifier's centred k = {} mean; dotted lines at {:g} (recovered) and {:g} (displaced). "
                     "Panel titles show the seeds' verdict letters.", code(fam), cfg.min_step, cfg.smooth_k,
                     cfg.recovered_thr, cfg.displaced_thr)
        out.append(figure(fig, f"trajectories of {fam}", cap))
    return join(out)


def contrast_margins(data: ReportData, rules: Sequence[str]) -> Markup:
    """One CM strip per rule."""
    if not data.margins:
        return note("No margin tables (traj.margins.parquet) were found, so there are no CM strips.")
    out = []
    if data.records is None:
        out.append(note("Without fates.json the onset and zero-crossing markers are omitted."))
    for rule in rules:
        fig = figures.cm_strip_figure(data, rule)
        if fig is None:
            continue
        cap = markup("{}: CM = mean log p(rule) − log p(prior) at the rule's prompts, smoothed over every "
                     "checkpoint. Dashed vertical = behavioural onset (last step with smoothed conflict accuracy "
                     "≥ 0.5); dot = CM zero crossing (last step with smoothed CM ≥ 0). A rule that never collapses "
                     "has both at its last step.", code(rule))
        out.append(figure(fig, f"CM strips of {rule}", cap))
    return join(out)


def section_others(data: ReportData) -> Markup:
    """The other rules' trajectories and contrast margins, in a closed <details>."""
    focal, _ = focal_rule(data)
    fams = [f for f in families(data) if f != focal]
    cm_rules = [r for r in margin_rules(data) if r != focal]
    n = len(fams)
    head = f"{n} other rule{'s' if n != 1 else ''}" + (f" ({', '.join(fams)})" if fams else "")
    traj = (trajectories(data, fams) if fams or not data.conflict
            else note(f"No rule besides {focal} has a held-out trajectory."))
    cm = (contrast_margins(data, cm_rules) if cm_rules or not data.margins
          else note(f"No rule besides {focal} has a contrast margin."))
    return render("others.html", head=head, traj=traj, cm=cm)
