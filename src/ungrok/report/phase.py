"""The phase diagram's data: each sweep's knobs and cells, and what each point shows
(the section is sections/phase.py, the figure phase_figures.py).

A sweep (experiment/sweep.py) is a question about a region of corpus or edit space, so its
answer is a map, not a row of columns in the phase grid. The section reads two keys that
`ungrok run` writes into experiment.json only when the experiment has sweeps:

    sweeps   sweep -> {knobs: [knob, ...], cells: {cell: {knob: value}}}   each swept cell's point
    focal    {rule, ratio}              the focal rule (read by report/focal.py, which picks the rule
                                        shown) and what its support ratio counts

A run without `sweeps` gets no section at all. The layout is fixed so a reader need not
learn it per report: the sweep's first knob (in grid order) is the x axis, its second (if
any) the y axis, and each combination of any further knobs gets a panel of its own. Values
sit evenly spaced in ascending order (numbers by value, then other values by text); the
file's keys are sorted, so the grid's own order of values is not kept.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from ungrok.report import figures
from ungrok.report.data import ReportData
from ungrok.report.facts import fmt_num, support_row, tally


@dataclass(frozen=True)
class Sweep:
    """One sweep of the experiment: its knobs (grid order) and each cell's point."""

    name: str
    knobs: tuple[str, ...]
    points: dict[str, dict[str, Any]]  # cell -> {knob: value}, in ascending order of the knobs' values

    def values(self, knob: str) -> list[Any]:
        """The knob's distinct values, ascending (see value_order)."""
        return sorted({value_order(p[knob]): p[knob] for p in self.points.values()}.values(), key=value_order)


def value_order(v: Any) -> tuple[int, float, str]:
    """Numbers by value, then booleans and strings by text."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, float(v), "")
    return (1, 0.0, str(v))


@dataclass(frozen=True)
class PhaseData:
    sweeps: tuple[Sweep, ...]
    ratio: str  # what the focal rule's support ratio counts, e.g. "she:he"


@dataclass(frozen=True)
class Panel:
    """One panel: cells that share the values of every knob past the first two."""

    title: str  # "" when the sweep has at most two knobs
    x: str
    y: str | None  # None: a one-knob sweep (one row of points)
    cells: tuple[str, ...]


@dataclass(frozen=True)
class PhasePoint:
    """What a point shows: the seeds' letters, the seed mean of CM_final and the counted ratio."""

    cell: str
    letters: str
    mean_cm: float | None
    ratio: float | None


# --------------------------------------------------------------------------- loading
def _scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, float, str))


def load_phase(data: ReportData) -> PhaseData | None:
    """The sweeps experiment.json records (None when it records none); malformed entries become notes."""
    doc = data.experiment
    raw = doc.get("sweeps")
    if not isinstance(raw, dict) or not raw:
        return None
    sweeps = []
    for name, sw in raw.items():
        knobs = sw.get("knobs") if isinstance(sw, dict) else None
        pts = sw.get("cells") if isinstance(sw, dict) else None
        ok = (isinstance(knobs, list) and knobs and all(isinstance(k, str) for k in knobs)
              and isinstance(pts, dict) and pts and all(
                  isinstance(p, dict) and set(p) == set(knobs) and all(_scalar(v) for v in p.values())
                  for p in pts.values()))
        if not ok:
            data.notes.append(f"experiment.json: sweep {name!r} lacks its knobs or a cell -> {{knob: value}} mapping "
                              "over them; it is left out of the phase diagram")
            continue
        stray = [c for c in pts if c not in data.cells]
        if stray:
            data.notes.append(f"experiment.json: sweep {name!r} names cell(s) {', '.join(stray)} that are not "
                              "cells; they are left out of the phase diagram")
        order = sorted((c for c in pts if c in data.cells), key=lambda c: [value_order(pts[c][k]) for k in knobs])
        if order:
            sweeps.append(Sweep(str(name), tuple(knobs), {c: dict(pts[c]) for c in order}))
    focal = doc.get("focal") if isinstance(doc.get("focal"), dict) else {}
    ratio = focal.get("ratio") if isinstance(focal.get("ratio"), str) else "rule:prior"
    return PhaseData(tuple(sweeps), ratio) if sweeps else None


# --------------------------------------------------------------------------- facts
def panels(sweep: Sweep) -> list[Panel]:
    """First knob across, second up, one panel per combination of the others (see the module docstring)."""
    x, y, rest = sweep.knobs[0], (sweep.knobs[1] if len(sweep.knobs) > 1 else None), sweep.knobs[2:]
    out = []
    for combo in itertools.product(*(sweep.values(k) for k in rest)):
        fixed = dict(zip(rest, combo, strict=True))
        cells = tuple(c for c, p in sweep.points.items() if all(p[k] == v for k, v in fixed.items()))
        if cells:
            out.append(Panel(", ".join(f"{k} = {value_label(v)}" for k, v in fixed.items()), x, y, cells))
    return out


def value_label(v: Any) -> str:
    """A knob value as the experiment file writes it (0.005, 1, true, a string as it is)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return fmt_num(v) if isinstance(v, (int, float)) else str(v)


def phase_point(data: ReportData, cell: str, rule: str) -> PhasePoint:
    t = tally(data, cell, rule)
    row = support_row(data, cell, rule)
    ratio = row.get("ratio") if row is not None else None
    ratio = float(ratio) if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) else None
    return PhasePoint(cell, figures._letters(data, cell, rule), t.mean_cm_final, ratio)
