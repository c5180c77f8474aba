"""The facts of the page's lead (sections/lead.py): the focal rule's headline and its cells.

An experiment asks one question about one rule (focal.py picks it); fifteen rules' panels of
equal weight hide the answer. So the report opens with that rule alone: per cell, the seeds'
verdict letters, the mean CM_final and which seeds showed the emerge-then-collapse transient
(the records' `transient` flag, the classifier's thresholds), and then the rule's accuracy
and CM side by side (focal_figures.py). Every other rule is still in the report, folded
further down (sections/others.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ungrok.fate.classify import FATES
from ungrok.report.data import ReportData
from ungrok.report.facts import seed_records, seeds_text, tally, transient_definition


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
                             sum(r.get("transient") is not None for r in recs)))
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
             f"Of the {runs} runs ({grid}), {len(recs)} have a verdict for {rule}: it ended {ended}")
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
