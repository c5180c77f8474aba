"""The support section: each cell's support table, the forecast from the support law, and the
verdict letters observed in that cell (the forecast is not a verdict, and the section says so)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from ungrok.report.common import code, join, letters, markup, note, table
from ungrok.report.data import ReportData
from ungrok.report.facts import cell_label, record_index


def _int(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else "–"


def _num(v: Any, spec: str) -> str:
    return spec.format(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


def section_support(data: ReportData) -> Markup:
    """One heading and table per cell with support.json, then the forecast's caveat."""
    from ungrok.support.forecast import CAVEAT  # the support package only when the section is drawn

    if not data.support:
        return note("No support.json in any cell, so there is no support table.")
    out = []
    missing = [c for c in data.cells if c not in data.support]
    if missing:
        out.append(note(f"No support.json for cell(s): {', '.join(missing)}."))
    idx = record_index(data)
    for cell, doc in data.support.items():
        thr = doc.get("forecast_thresholds") or {}
        tokens = doc.get("tokens")
        meta = f"{tokens:,} tokens" if isinstance(tokens, int) else "tokens unknown"
        meta += f", counted over the {doc['mode']}" if doc.get("mode") else ""
        if thr:
            meta += (f"; forecast: likely survives at ratio ≥ {thr.get('survive_ratio')}, likely lost at ≤ "
                     f"{thr.get('lost_ratio')}")
        out.append(markup('<h3>{} <span class="meta">({}; {})</span></h3>', cell, cell_label(data, cell), meta))
        rows = []
        for rule, r in doc["rules"].items():
            if not isinstance(r, dict):
                continue
            seen = any((cell, s, rule) in idx for s in data.seeds)
            rows.append([code(rule), r.get("event", ""), _int(r.get("rule_events")), _int(r.get("prior_events")),
                         _int(r.get("neither")), _num(r.get("ratio"), "{:.3g}"), _num(r.get("frequency"), "{:.2e}"),
                         r.get("forecast", "–"), letters(data, cell, rule, idx) if seen else "–"])
        out.append(table(["rule", "event", "rule events", "prior events", "neither", "ratio (r+1)/(p+1)",
                          "per token", "forecast", "observed"], rows, num_cols=(2, 3, 4, 5, 6)))
        skipped = doc.get("skipped") or {}
        if skipped:
            out.append(note("Not counted: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())))
    out.append(markup('<p class="meta">The forecast reads the support law off the ratio before training; it is not '
                      "a verdict. {} <em>observed</em> shows the seeds' verdict letters in that cell.</p>", CAVEAT))
    return join(out)
