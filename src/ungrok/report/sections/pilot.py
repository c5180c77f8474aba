"""The pilot section: the pilot seeds' verdicts in a table of their own, exploratory and never
scored (the rows are read by report/pilot.py)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from ungrok.report.common import code, fate_badge, join, markup, note, table
from ungrok.report.facts import fmt
from ungrok.report.pilot import LABEL, PilotData, PilotRow


def section_pilot(pilot: PilotData) -> Markup:
    """One small table, one row per (source, cell, rule), the pilot seeds' letters side by side."""
    groups: dict[tuple[str, str, str], list[PilotRow]] = {}
    for r in pilot.rows:
        groups.setdefault((r.source, r.cell, r.family), []).append(r)
    rows = []
    for (src, cell, fam), rs in groups.items():
        rs = sorted(rs, key=lambda r: r.seed)
        recs: list[dict[str, Any]] = [{"fate": r.fate, "agree_gate": r.agree_gate, "conflict_final": r.final,
                                       "conflict_max": r.peak, "cm_final": r.cm_final} for r in rs]
        rows.append([src, cell, code(fam), ", ".join(str(r.seed) for r in rs),
                     join(fate_badge(rec, r.seed) for rec, r in zip(recs, rs, strict=True)),
                     " ".join(fmt(r.final) for r in rs), " ".join(fmt(r.peak) for r in rs),
                     " ".join(fmt(r.cm_final, signed=True) for r in rs)])
    out = [markup('<p class="meta"><strong>{}</strong>: verdicts of the pilot seeds, read before the predictions '
                  "were frozen. They are never scored and appear in no other section; the scoreboard and the "
                  "phase grid read the governed seeds only.</p>", LABEL)]
    out += [note(n) for n in pilot.notes]
    if rows:
        out.append(table(["source", "cell", "rule", "pilot seeds", "verdicts", "final conflict", "peak conflict",
                          "CM_final"], rows, cls="grid pilot"))
    return join(out)
