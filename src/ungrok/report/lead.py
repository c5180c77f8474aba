"""The page's lead: the focal rule's headline, then its trajectories.

An experiment asks one question about one rule (focal.py picks it); fifteen rules' panels of
equal weight hide the answer. So the report opens with that rule alone: per cell, the seeds'
verdict letters, the mean CM_final and which seeds showed the emerge-then-collapse transient
(the records' `transient` flag, the classifier's thresholds), and then the rule's accuracy
and CM side by side (focal_figures.py). Every other rule is still in the report, folded
further down (html.section_others).
"""

from __future__ import annotations

from dataclasses import dataclass

from ungrok.fate.classify import FATES
from ungrok.report.data import ReportData
from ungrok.report.facts import fmt, seed_records, seeds_text, tally, transient_definition
from ungrok.report.focal import focal_rule
from ungrok.report.html import _cell_label, _img, _legend, _letters, _note, _table, esc


@dataclass(frozen=True)
class FocalCell:
    """The focal rule in one cell over the experiment's seeds."""

    cell: str
    seeds: int  # seeds with a verdict
    mean_cm_final: float | None
    transient: tuple[int, ...]  # seeds that emerged and then collapsed
    transient_known: int  # seeds whose record says whether they did


def focal_cells(data: ReportData, rule: str) -> list[FocalCell]:
    """One row per cell in experiment order (cells without a verdict for the rule included)."""
    out = []
    for cell in data.cells:
        recs = seed_records(data, cell, rule)
        out.append(FocalCell(cell, len(recs), tally(data, cell, rule).mean_cm_final,
                             tuple(r["seed"] for r in recs if r.get("transient")),
                             sum(r.get("transient") is not None for r in recs)))  # fmt: skip
    return out


def headline_sentences(data: ReportData, rule: str) -> list[str]:
    """Two facts over every run of the focal rule: how the runs ended, and where it emerged and
    then collapsed. Counts only, as the summary below them."""
    recs = [r for r in data.records or [] if r["family"] == rule]
    runs = len(data.cells) * len(data.seeds)
    if not recs:
        return [f"None of the {runs} runs has a verdict for {rule}."]
    counts = {f: sum(r["fate"] == f for r in recs) for f in FATES}
    ended = ", ".join(f"{f} in {n}" for f, n in counts.items() if n)
    failed = sum(r["agree_gate"] == "fail" for r in recs)
    grid = f"{len(data.cells)} cells × {len(data.seeds)} seeds"
    first = (f"In all {runs} runs ({grid}), {rule} ended {ended}" if len(recs) == runs else
             f"Of the {runs} runs ({grid}), {len(recs)} have a verdict for {rule}: it ended {ended}")  # fmt: skip
    first += f"; the agree gate failed in {failed}." if failed else "; the agree gate passed in all."
    cells = [c for c in focal_cells(data, rule) if c.transient]
    known = sum(c.transient_known for c in focal_cells(data, rule))
    n = sum(len(c.transient) for c in cells)
    sig = transient_definition(data.classifier)
    if not n:
        second = f"It did not emerge and then collapse ({sig}) in any of the {known} runs."
    else:
        where = "; ".join(f"'{c.cell}' {seeds_text(c.transient)}" for c in cells)
        second = f"It emerged and then collapsed ({sig}) in {n} of {known} runs: {where}."
    return [first, second]


def section_focal(data: ReportData) -> str:
    """The headline: which rule, why, how its runs ended, and one row per cell."""
    rule, why = focal_rule(data)
    if rule is None:
        return _note("No rule has a verdict or a trajectory, so there is no focal rule to lead with.")
    out = [f'<p class="lead">Focal rule: <code>{esc(rule)}</code> <span class="meta">({esc(why)})</span></p>',
           '<ul class="summary">' + "".join(f"<li>{esc(s)}</li>" for s in headline_sentences(data, rule))
           + "</ul>"]  # fmt: skip
    if data.records is None:
        return "".join(out)
    rows = [[esc(c.cell), esc(_cell_label(data, c.cell)), _letters(data, c.cell, rule),
             fmt(c.mean_cm_final, signed=True),
             esc(seeds_text(c.transient)) if c.transient else ("no" if c.transient_known else "–")]
            for c in focal_cells(data, rule)]  # fmt: skip
    out.append(
        _table(["cell", "kind", "seeds", "mean CM_final", "emerged, then collapsed"], rows, num_cols=(3,))
    )
    out.append(_legend())
    return "".join(out)


def section_focal_trajectories(data: ReportData) -> str:
    """The focal rule's accuracy and CM, side by side per cell, with the monitor's first warnings."""
    from ungrok.report.focal_figures import focal_png, warning_steps

    rule, _ = focal_rule(data)
    if rule is None:
        return _note("No focal rule, so there are no focal trajectories.")
    png = focal_png(data, rule)
    if png is None:
        return _note(f"Neither a trajectory table (traj.parquet) nor a margin table (traj.margins.parquet) has "
                     f"{rule}, so its trajectories are not drawn.")  # fmt: skip
    cfg = data.classifier
    warned = warning_steps(data, rule)
    if warned:
        marks = (
            f"Dotted line with ▼ = the live monitor's first displacement warning (<em>displacing</em> or "
            f"<em>displaced</em> after <em>emerged</em>), in {len(warned)} run{'s' if len(warned) != 1 else ''}."
        )
    elif data.watch is not None and rule in data.watch.rules():
        marks = "The live monitor gave no displacement warning for this rule."
    else:
        marks = "The monitor logged no per-rule states for this rule, so no warning is marked."
    cap = (f"<code>{esc(rule)}</code>, one row per cell. Left: held-out conflict accuracy per seed (coloured), "
           f"the seed range (shaded) and the agree control (dashed grey, seed mean); steps ≥ {cfg.min_step}, "
           f"centred k = {cfg.smooth_k} mean, as the classifier sees them; dotted at {cfg.recovered_thr:g} "
           f"and {cfg.displaced_thr:g}. Right: contrast margin CM = mean log p(rule) − log p(prior) at the "
           "rule's prompts, smoothed over every checkpoint; dashed vertical = behavioural onset, dot = CM zero "
           f"crossing. {marks} Titles show the seeds' verdict letters.")  # fmt: skip
    return _img(png, f"trajectories and contrast margins of {rule}", cap)
