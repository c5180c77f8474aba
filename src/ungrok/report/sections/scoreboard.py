"""The scoreboard section: each registered prediction's status, value and reason, and the
hashes it was scored under (counted by facts.scoreboard_counts)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from ungrok.report.common import code, join, markup, note, table
from ungrok.report.data import ReportData
from ungrok.report.facts import fmt, scoreboard_counts

FOOT = Markup('<p class="meta">A falsifier <em>triggers</em> when its condition holds (it evaluates PASS). '
              "UNSCOREABLE means a validity gate failed or the data were read before the prediction was "
              "registered; it is neither a pass nor a fail.</p>")


def status(st: str, text: str | None = None) -> Markup:
    """A PASS / FAIL / UNSCOREABLE badge reading `text` (default: the status itself)."""
    return markup('<span class="status status-{}">{}</span>', st.lower(), st if text is None else text)


def section_scoreboard(data: ReportData) -> Markup:
    """The totals line, then one row per outcome (with its group when any outcome has one)."""
    sb = data.scoreboard
    if sb is None:
        return note("No scoreboard.json in this run directory: no pre-registered prediction was scored.")
    c = scoreboard_counts(sb)
    meta = markup("registry sha256 <code>{}</code>", sb.get("registry_sha256", "–"))
    sha = sb.get("classifier_sha256")
    if sha:
        meta += markup(" · classifier sha256 <code>{}</code>", sha)
    out = [markup('<p class="meta">{}</p>', meta)]
    if sha and data.classifier_sha256 and sha != data.classifier_sha256:
        out.append(note("The scoreboard was scored with different classifier constants than fates.json holds."))
    line = join((status(st, f"{c[st]} {st}") for st in ("PASS", "FAIL", "UNSCOREABLE")), " ")
    if c["falsifiers"]:
        line += markup(" &nbsp; falsifiers: {} of {} applicable triggered", c["triggered"],
                       c["triggered"] + c["silent"])
        if c["falsifiers_unscoreable"]:
            line += markup(" ({} unscoreable)", c["falsifiers_unscoreable"])
    out.append(markup("<p>{}</p>", line))
    groups = any(o.get("group") for o in sb["outcomes"])
    rows = []
    for o in sb["outcomes"]:
        st = o["status"]
        fal = "–"
        if o.get("falsifier"):
            fal = {"PASS": "triggered", "FAIL": "silent"}.get(st, "not applicable")
        value = o.get("value")
        value_s = fmt(value, 3) if isinstance(value, float) else ("–" if value is None else value)
        row: list[Any] = [code(o["name"]), status(st), value_s, fal, o.get("reason", "")]
        if groups:
            row.insert(1, o.get("group") or "")
        rows.append(row)
    head = ["prediction", "status", "value", "falsifier", "reason"]
    if groups:
        head.insert(1, "group")
    out += [table(head, rows), FOOT]
    return join(out)
