"""The phase-grid section: rules × cells, one verdict letter per seed, coloured by fate."""

from __future__ import annotations

from markupsafe import Markup

from ungrok.report.common import code, join, legend, letters, markup, note, table
from ungrok.report.data import ReportData
from ungrok.report.facts import cell_label, families, record_index


def section_grid(data: ReportData) -> Markup:
    """One row per rule (exploratory ones marked), one column per cell, the legend above."""
    if data.records is None:
        return note("No verdicts (fates.json is missing), so there is no phase grid.")
    fams = families(data)
    if not fams:
        return note("fates.json holds no records.")
    head = ["rule", *(markup('{}<span class="sub">{}</span>', c, cell_label(data, c)) for c in data.cells)]
    idx = record_index(data)
    rows = [[code(f) + ("" if data.classifier.is_confirmatory(f) else " (exploratory)"),
             *(letters(data, c, f, idx) for c in data.cells)] for f in fams]
    return join([markup('<p class="meta">One letter per seed, in seed order {}. Hover a letter for its numbers.</p>',
                        ", ".join(map(str, data.seeds))), legend(), table(head, rows, cls="grid")])
