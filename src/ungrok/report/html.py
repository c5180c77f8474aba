"""The self-contained report.html: figures as base64 data URIs, inline CSS, no scripts, no fetches.

One file a person can mail or open offline. An experiment asks about one rule, so the page
leads with it (lead.py, the rule from focal.py): its headline, its accuracy and CM side by
side, the live monitor's warnings, the phase diagram over the sweeps, the scoreboard and the
pilot. Every other rule's panels follow, folded in a closed <details>; then the summary over
every rule, the phase grid, ladders and support, and the fine print. `PAGE` below is that
order, the one place a new section is registered. Four sections appear only when a run has
their inputs (phase diagram, pilot, public checkpoints, mechanism). A bare hub suite folder
gets a page of its own (hub.render_hub_html) built by the same `render_page`.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ungrok.atomic import write_text
from ungrok.errors import UngrokError
from ungrok.fate.classify import FATES, LETTERS
from ungrok.fate.config import ClassifierConfig
from ungrok.report import figures
from ungrok.report.data import ReportData
from ungrok.report.facts import (
    families,
    fmt,
    fmt_num,
    ladder_rules,
    ladder_series,
    ladders,
    record_index,
    record_letter,
    scoreboard_counts,
    summary_sentences,
    support_row,
)
from ungrok.report.focal import focal_rule

if TYPE_CHECKING:
    from ungrok.report.hub import HubData

FATE_COLORS = {
    "RECOVERED": "#009E73",
    "DISPLACED": "#D55E00",
    "UNSTABLE": "#E69F00",
    "PARTIAL": "#CC79A7",
    "NEVER": "#0072B2",
}
STATUS_COLORS = {"PASS": "#009E73", "FAIL": "#D55E00", "UNSCOREABLE": "#777777"}

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1d1d1f; background: #fff; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 40px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
h3 { font-size: 16px; margin: 22px 0 8px; }
.meta { color: #555; font-size: 13px; margin: 0 0 12px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
nav { font-size: 13.5px; margin: 10px 0 0; }
nav a { margin-right: 14px; color: #0b5cad; text-decoration: none; }
.note { color: #6b4e00; background: #fff8e1; border-left: 3px solid #e0b000; padding: 6px 10px; margin: 8px 0;
        font-size: 14px; }
.summary li { margin: 4px 0; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13.5px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid td { text-align: center; white-space: nowrap; }
.grid td:first-child { text-align: left; }
.grid th .sub { display: block; font-weight: 400; color: #666; font-size: 12px; }
.fate { --c: #999; display: inline-block; min-width: 1.45em; margin: 1px; padding: 1px 3px; border-radius: 3px;
        font: 700 13px ui-monospace, Menlo, Consolas, monospace; text-align: center;
        background: var(--c); color: #fff; border: 1.5px solid var(--c); }
.fate.gate-fail { background: #fff; color: var(--c); }
.fate.missing { background: #fff; color: #999; border: 1.5px dotted #bbb; }
%FATE_CSS%
.status { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; font-weight: 600;
          font-size: 12.5px; }
%STATUS_CSS%
figure { margin: 12px 0 22px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; margin-top: 4px; }
.legend span.fate { margin-right: 4px; }
.lead { font-size: 17px; margin: 4px 0 6px; }
details.others > summary { cursor: pointer; font-weight: 600; padding: 6px 0; }
footer { margin-top: 40px; color: #777; font-size: 12.5px; }
"""


def _css() -> str:
    fate_css = "\n".join(f".fate-{f.lower()} {{ --c: {c}; }}" for f, c in FATE_COLORS.items())
    status_css = "\n".join(f".status-{s.lower()} {{ background: {c}; }}" for s, c in STATUS_COLORS.items())
    return CSS.replace("%FATE_CSS%", fate_css).replace("%STATUS_CSS%", status_css)


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def _img(png: bytes, alt: str, caption: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{b64}" alt="{esc(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")  # fmt: skip


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "", num_cols: Sequence[int] = ()) -> str:
    """Rows are already-escaped HTML strings (cells may hold markup)."""
    h = "".join(f"<th>{c}</th>" for c in head)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in num_cols else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def fate_badge(rec: dict[str, Any] | None, seed: int, who: str | None = None) -> str:
    """One seed's verdict letter: coloured by fate; lower-case and outlined when the agree gate failed.
    `who` replaces "seed N" in the hover text (a model, an n-gram order)."""
    who = who if who is not None else f"seed {seed}"
    if rec is None:
        return f'<span class="fate missing" title="{esc(who)}: no verdict">·</span>'
    fate, gate = rec["fate"], rec["agree_gate"]
    letter = record_letter(rec)
    title = (f"{who}: {fate}, agree gate {'passed' if gate == 'pass' else 'failed'}, conflict final "
             f"{fmt(rec['conflict_final'])} (max {fmt(rec['conflict_max'])})")  # fmt: skip
    if rec.get("cm_final") is not None:
        title += f", CM_final {fmt(rec['cm_final'], signed=True)}"
    gate_cls = " gate-fail" if gate == "fail" else ""
    return f'<span class="fate fate-{fate.lower()}{gate_cls}" title="{esc(title)}">{esc(letter)}</span>'


def _letters(data: ReportData, cell: str, family: str, idx: dict | None = None) -> str:
    idx = record_index(data) if idx is None else idx
    return "".join(fate_badge(idx.get((cell, s, family)), s) for s in data.seeds)


def _legend() -> str:
    parts = [f'<span class="fate fate-{f.lower()}">{LETTERS[f]}</span>{f}' for f in FATES]
    parts.append('<span class="fate fate-recovered gate-fail">r</span>lower-case, outlined: agree gate failed '
                 "(no classifiable verdict)")  # fmt: skip
    parts.append('<span class="fate missing">·</span>no verdict')
    return '<p class="legend">' + " &nbsp; ".join(parts) + "</p>"


# --------------------------------------------------------------------------- sections
def section_summary(data: ReportData) -> str:
    return '<ul class="summary">' + "".join(f"<li>{esc(s)}</li>" for s in summary_sentences(data)) + "</ul>"


def section_scoreboard(data: ReportData) -> str:
    sb = data.scoreboard
    if sb is None:
        return _note("No scoreboard.json in this run directory: no pre-registered prediction was scored.")
    c = scoreboard_counts(sb)
    out = [f'<p class="meta">registry sha256 <code>{esc(sb.get("registry_sha256", "–"))}</code>']
    if sb.get("classifier_sha256"):
        out.append(f' · classifier sha256 <code>{esc(sb["classifier_sha256"])}</code>')
    out.append("</p>")
    if sb.get("classifier_sha256") and data.classifier_sha256 and sb["classifier_sha256"] != data.classifier_sha256:
        out.append(_note("The scoreboard was scored with different classifier constants than fates.json holds."))
    line = (f'<span class="status status-pass">{c["PASS"]} PASS</span> '
            f'<span class="status status-fail">{c["FAIL"]} FAIL</span> '
            f'<span class="status status-unscoreable">{c["UNSCOREABLE"]} UNSCOREABLE</span>')  # fmt: skip
    if c["falsifiers"]:
        line += (f" &nbsp; falsifiers: {c['triggered']} of {c['triggered'] + c['silent']} applicable triggered"
                 + (f" ({c['falsifiers_unscoreable']} unscoreable)" if c["falsifiers_unscoreable"] else ""))
    out.append(f"<p>{line}</p>")
    groups = any(o.get("group") for o in sb["outcomes"])
    rows = []
    for o in sb["outcomes"]:
        st = o["status"]
        fal = "–"
        if o.get("falsifier"):
            fal = {"PASS": "triggered", "FAIL": "silent"}.get(st, "not applicable")
        value = o.get("value")
        value_s = fmt(value, 3) if isinstance(value, float) else ("–" if value is None else esc(value))
        row = [f"<code>{esc(o['name'])}</code>", f'<span class="status status-{st.lower()}">{st}</span>',
               value_s, fal, esc(o.get("reason", ""))]  # fmt: skip
        if groups:
            row.insert(1, esc(o.get("group") or ""))
        rows.append(row)
    head = ["prediction", "status", "value", "falsifier", "reason"]
    if groups:
        head.insert(1, "group")
    out.append(_table(head, rows))
    out.append('<p class="meta">A falsifier <em>triggers</em> when its condition holds (it evaluates PASS). '
               "UNSCOREABLE means a validity gate failed or the data were read before the prediction was "
               "registered; it is neither a pass nor a fail.</p>")  # fmt: skip
    return "".join(out)


def section_grid(data: ReportData) -> str:
    if data.records is None:
        return _note("No verdicts (fates.json is missing), so there is no phase grid.")
    fams = families(data)
    if not fams:
        return _note("fates.json holds no records.")
    head = ["rule"] + [f"{esc(c)}<span class=\"sub\">{esc(_cell_label(data, c))}</span>" for c in data.cells]
    idx = record_index(data)
    rows = [[f"<code>{esc(f)}</code>" + ("" if data.classifier.is_confirmatory(f) else " (exploratory)")]
            + [_letters(data, c, f, idx) for c in data.cells] for f in fams]  # fmt: skip
    return (f'<p class="meta">One letter per seed, in seed order {esc(", ".join(map(str, data.seeds)))}. '
            "Hover a letter for its numbers.</p>" + _legend() + _table(head, rows, cls="grid"))  # fmt: skip


def _cell_label(data: ReportData, cell: str) -> str:
    c = data.cells[cell]
    if c.kind == "kill" and c.rate is not None:
        return f"kill {fmt_num(c.rate)} of {c.parent}"
    if c.kind == "rescue" and c.dose is not None:
        return f"rescue {fmt_num(c.dose)} on {c.parent}"
    return c.kind


def section_trajectories(data: ReportData, rules: Sequence[str] | None = None) -> str:
    """One figure per rule (`rules`, default every family)."""
    if not data.conflict:
        return _note("No trajectory tables (traj.parquet) were found, so there are no trajectory plots.")
    cfg = data.classifier
    out = []
    for fam in families(data) if rules is None else rules:
        png = figures.trajectory_png(data, fam)
        if png is None:
            out.append(_note(f"{fam}: no held-out trajectory in any cell."))
            continue
        cap = (f"<code>{esc(fam)}</code>: coloured lines = held-out conflict accuracy per seed; shaded = the "
               f"range across seeds; dashed grey = the agree control (mean over seeds). Steps ≥ {cfg.min_step}, "
               f"smoothed with the classifier's centred k = {cfg.smooth_k} mean; dotted lines at "
               f"{cfg.recovered_thr:g} (recovered) and {cfg.displaced_thr:g} (displaced). Panel titles show "
               "the seeds' verdict letters.")  # fmt: skip
        out.append(_img(png, f"trajectories of {fam}", cap))
    return "".join(out)


def margin_rules(data: ReportData) -> list[str]:
    """The rules with a CM series, the anchor first."""
    return sorted({k[2] for k in data.margins}, key=lambda r: (r != data.classifier.anchor_family, r))


def section_margins(data: ReportData, rules: Sequence[str] | None = None) -> str:
    """One CM strip per rule (`rules`, default every rule with margins)."""
    if not data.margins:
        return _note("No margin tables (traj.margins.parquet) were found, so there are no CM strips.")
    rules = margin_rules(data) if rules is None else rules
    out = []
    if data.records is None:
        out.append(_note("Without fates.json the onset and zero-crossing markers are omitted."))
    for rule in rules:
        png = figures.cm_strip_png(data, rule)
        if png is None:
            continue
        cap = (f"<code>{esc(rule)}</code>: CM = mean log p(rule) − log p(prior) at the rule's prompts, smoothed "
               "over every checkpoint. Dashed vertical = behavioural onset (last step with smoothed conflict "
               "accuracy ≥ 0.5); dot = CM zero crossing (last step with smoothed CM ≥ 0). A rule that never "
               "collapses has both at its last step.")  # fmt: skip
        out.append(_img(png, f"CM strips of {rule}", cap))
    return "".join(out)


def section_ladders(data: ReportData) -> str:
    lads = ladders(data)
    if not lads:
        return _note("No ladders: experiment.json has no kill cell with a rate or rescue cell with a dose "
                     "whose parent is a cell.")  # fmt: skip
    if data.records is None:
        return _note("No verdicts (fates.json is missing), so there are no dose-response plots.")
    out = []
    for lad in lads:
        rules, why = ladder_rules(data, lad)
        for rule in rules:
            out.append(f"<h3>{esc(lad.kind)} ladder on '{esc(lad.parent)}': <code>{esc(rule)}</code></h3>")
            png = figures.dose_response_png(data, lad, rule)
            if png is None:
                out.append(_note(f"No verdicts for {rule} on this ladder."))
                continue
            cap = (f"Per seed (filled: agree gate passed; hollow: failed) and the mean over seeds, against the "
                   f"{esc(lad.axis)} ({esc(lad.parent)} at 0). Rule shown: {esc(why)}.")  # fmt: skip
            out.append(_img(png, f"dose-response of {rule} on the {lad.kind} ladder of {lad.parent}", cap))
            rows = []
            for x, cell, t in ladder_series(data, lad, rule):
                srow = support_row(data, cell, rule)
                rows.append([fmt_num(x), esc(cell), fmt(srow["ratio"], 3) if srow else "–",
                             f"{t.recovered_valid}/{t.seeds}", f"{t.died}/{t.seeds}",
                             f"{t.cm_valid}/{t.cm_seeds}" if t.cm_seeds else "–",
                             fmt(t.mean_conflict_final), fmt(t.mean_cm_final, signed=True)])  # fmt: skip
            out.append(_table([esc(lad.axis), "cell", "rule:prior", "recovered+valid", "died (≤ "
                               f"{data.classifier.displaced_thr:g})", "CM instrument-valid", "mean conflict final",
                               "mean CM_final"], rows, num_cols=(0, 2, 6, 7)))  # fmt: skip
    return "".join(out)


def section_support(data: ReportData) -> str:
    if not data.support:
        return _note("No support.json in any cell, so there is no support table.")
    out = []
    missing = [c for c in data.cells if c not in data.support]
    if missing:
        out.append(_note(f"No support.json for cell(s): {', '.join(missing)}."))
    for cell, doc in data.support.items():
        thr = doc.get("forecast_thresholds") or {}
        tokens = doc.get("tokens")
        meta = f"{tokens:,} tokens" if isinstance(tokens, int) else "tokens unknown"
        meta += f", counted over the {doc['mode']}" if doc.get("mode") else ""
        if thr:
            meta += (f"; forecast: likely survives at ratio ≥ {thr.get('survive_ratio')}, likely lost at ≤ "
                     f"{thr.get('lost_ratio')}")  # fmt: skip
        out.append(f"<h3>{esc(cell)} <span class=\"meta\">({esc(_cell_label(data, cell))}; {esc(meta)})</span></h3>")
        rows = []
        idx = record_index(data)
        for rule, r in doc["rules"].items():
            if not isinstance(r, dict):
                continue
            seen = any((cell, s, rule) in idx for s in data.seeds)
            observed = _letters(data, cell, rule, idx) if seen else "–"
            rows.append([f"<code>{esc(rule)}</code>", esc(r.get("event", "")), _int(r.get("rule_events")),
                         _int(r.get("prior_events")), _int(r.get("neither")), _num(r.get("ratio"), "{:.3g}"),
                         _num(r.get("frequency"), "{:.2e}"), esc(r.get("forecast", "–")), observed])  # fmt: skip
        out.append(_table(["rule", "event", "rule events", "prior events", "neither", "ratio (r+1)/(p+1)",
                           "per token", "forecast", "observed"], rows, num_cols=(2, 3, 4, 5, 6)))  # fmt: skip
        skipped = doc.get("skipped") or {}
        if skipped:
            out.append(_note("Not counted: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())))
    from ungrok.support.forecast import CAVEAT

    out.append('<p class="meta">The forecast reads the support law off the ratio before training; it is not a '
               f"verdict. {esc(CAVEAT)} <em>observed</em> shows the seeds' verdict letters in that cell.</p>")  # fmt: skip
    return "".join(out)


def _int(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else "–"


def _num(v: Any, spec: str) -> str:
    return spec.format(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


def section_monitor(data: ReportData) -> str:
    if not data.monitor:
        return _note("No live-monitor logs (monitor.jsonl) were found.")
    rows = [[esc(cell), str(seed), esc(line.get("step", "–")), esc(w)]
            for (cell, seed), lines in data.monitor.items() for line in lines for w in line["warnings"]]  # fmt: skip
    if not rows:
        return f"<p>The live monitor raised no warning in any of the {len(data.monitor)} monitored runs.</p>"
    return _table(["cell", "seed", "step", "warning"], rows, num_cols=(1, 2))


def section_watch(data: ReportData) -> str:
    """The monitor section: warnings against the final verdicts, then the warning lines above."""
    from ungrok.report.monitor import section_watch as watch  # monitor.py builds on this module

    return watch(data)


def notes_html(notes: Sequence[str]) -> str:
    if not notes:
        return "<p>Every input was present and readable.</p>"
    return "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"


def section_notes(data: ReportData) -> str:
    return notes_html(data.notes)


def constants_html(classifier: ClassifierConfig) -> str:
    cfg = classifier.model_dump(mode="json")
    rows = [[f"<code>{esc(k)}</code>", esc(v)] for k, v in cfg.items()]
    return ('<p class="meta">Constants of the trajectory classifier and margin instruments used for the '
            f"figures (sha256 <code>{esc(classifier.sha256())}</code>).</p>"
            + _table(["constant", "value"], rows))  # fmt: skip


def section_constants(data: ReportData) -> str:
    return constants_html(data.classifier)


def section_focal(data: ReportData) -> str:
    from ungrok.report.lead import section_focal as focal  # lead.py builds on this module

    return focal(data)


def section_focal_trajectories(data: ReportData) -> str:
    from ungrok.report.lead import section_focal_trajectories as trajectories  # lead.py builds on this module

    return trajectories(data)


def section_others(data: ReportData) -> str:
    """Every rule but the focal one, folded in a closed <details>: all still there, but no longer
    of equal weight with the rule the experiment is about."""
    focal, _ = focal_rule(data)
    fams = [f for f in families(data) if f != focal]
    cm_rules = [r for r in margin_rules(data) if r != focal]
    n = len(fams)
    head = f"{n} other rule{'s' if n != 1 else ''}" + (f" ({', '.join(fams)})" if fams else "")
    traj = section_trajectories(data, fams) if fams or not data.conflict else _note(
        f"No rule besides {focal} has a held-out trajectory.")  # fmt: skip
    cm = section_margins(data, cm_rules) if cm_rules or not data.margins else _note(
        f"No rule besides {focal} has a contrast margin.")  # fmt: skip
    return (f'<details class="others"><summary>{esc(head)}: trajectories and contrast margins</summary>'
            f"<h3>Trajectories</h3>{traj}<h3>Contrast margins</h3>{cm}</details>")  # fmt: skip


def _phase(data: ReportData) -> str | None:
    if data.phase is None:
        return None
    from ungrok.report.phase import section_phase  # phase.py builds on this module

    return section_phase(data)


def _pilot(data: ReportData) -> str | None:
    if data.pilot is None:
        return None
    from ungrok.report.pilot import section_pilot  # pilot.py builds on this module

    return section_pilot(data.pilot)


def _hub(data: ReportData) -> str | None:
    if data.hub is None:
        return None
    from ungrok.report.hub import section_hub  # hub.py builds on this module

    return section_hub(data.hub)


def _mech(data: ReportData) -> str | None:
    if data.mech is None:
        return None
    from ungrok.report.mech import section_mech  # mech.py builds on this module

    return section_mech(data)


# The page, top to bottom: (id, title, builder). A builder that returns None leaves its section
# out (an optional section whose inputs the run lacks). A new section is registered here, at
# its place in the reading order: the focal rule and the phenomenon first (headline,
# trajectories, the monitor's warnings, phase diagram, scoreboard, pilot), every other rule
# folded, then the rest.
PAGE: tuple[tuple[str, str, Callable[[ReportData], str | None]], ...] = (
    ("focal", "Focal rule", section_focal),
    ("focal_trajectories", "Focal rule: accuracy and contrast margin", section_focal_trajectories),
    ("monitor", "Live monitor: warnings before the collapse", section_watch),
    ("phase", "Phase diagram", _phase),
    ("scoreboard", "Scoreboard", section_scoreboard),
    ("pilot", "Pilot (exploratory, not scored)", _pilot),  # pilot.LABEL, capitalised
    ("others", "Other rules (details)", section_others),
    ("summary", "What the runs show", section_summary),
    ("grid", "Phase grid", section_grid),
    ("ladders", "Dose-response", section_ladders),
    ("support", "Support and forecasts", section_support),
    ("hub", "Public checkpoints", _hub),
    ("mechanism", "Mechanism (descriptive)", _mech),
    ("notes", "Notes on the inputs", section_notes),
    ("constants", "Constants", section_constants),
)
OPTIONAL = ("phase", "pilot", "hub", "mechanism")  # sections only a run with their inputs has
SECTIONS = tuple(s for s in PAGE if s[0] not in OPTIONAL)  # every run report has these, in this order


def optional_sections(data: ReportData) -> list[tuple[str, str, str]]:
    """(id, title, html) of the optional sections this run has, in page order."""
    return [(sid, t, h) for sid, t, fn in PAGE if sid in OPTIONAL and (h := fn(data)) is not None]


def render_page(title: str, meta: str, sections: Sequence[tuple[str, str, str]], what: str = "run directory") -> str:
    """The page around the sections: (id, title, html) each, in order, with a link bar."""
    nav = "".join(f'<a href="#{sid}">{esc(t)}</a>' for sid, t, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{esc(t)}</h2>{h}</section>' for sid, t, h in sections)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_css()}</style></head>"
        f"<body><main><h1>{esc(title)}</h1><p class=\"meta\">{esc(meta)}</p><nav>{nav}</nav>{body}"
        "<footer>Written by <code>ungrok report</code>. Every sentence above is computed from the files of the "
        f"{what}.</footer></main></body></html>\n"
    )


def render_html(data: ReportData | HubData) -> str:
    """The whole report as one HTML string (deterministic for equal data); a HubData (a bare
    hub suite folder) gives the hub-only report."""
    if not isinstance(data, ReportData):
        from ungrok.report.hub import render_hub_html

        return render_hub_html(data)
    title = f"ungrok report: {data.name}"
    meta = f"{len(data.cells)} cells × {len(data.seeds)} seeds ({', '.join(map(str, data.seeds))})"
    if data.classifier_sha256:
        meta += f" · classified with constants sha256 {data.classifier_sha256[:16]}…"
    if data.source:
        meta += f" · from {data.source}"
    sections = [(sid, t, h) for sid, t, fn in PAGE if (h := fn(data)) is not None]
    return render_page(title, meta, sections)


def build_report(data: ReportData | HubData, out: str | Path, force: bool = False) -> Path:
    """Render and write the report atomically; an existing file is replaced only with force."""
    out = Path(out)
    if out.is_dir():
        raise UngrokError(f"{out}: is a directory; give a file name for the report")
    if out.exists() and not force:
        raise UngrokError(f"{out}: exists; use --force to overwrite it")
    write_text(out, render_html(data))
    return out
