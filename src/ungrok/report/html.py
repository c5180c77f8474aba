"""The self-contained report.html: figures as base64 data URIs, inline CSS, no scripts, no fetches.

One file a person can mail or open offline. An experiment asks about one rule, so the page
leads with it (the rule from focal.py): its headline, its accuracy and CM side by side, the
live monitor's warnings, the phase diagram over the sweeps, the scoreboard and the pilot.
Every other rule's panels follow, folded in a closed <details>; then the summary over every
rule, the phase grid, ladders and support, and the fine print. `PAGE` below is that order,
the one place a section is registered; each section is one module under sections/. Four
sections appear only when a run has their inputs (phase diagram, pilot, public checkpoints,
mechanism). A bare hub suite folder gets a page of its own, `HUB_PAGE`, in the same skeleton
(templates/page.html).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from markupsafe import Markup

from ungrok.atomic import write_text
from ungrok.errors import UngrokError
from ungrok.report.common import FATE_COLORS, STATUS_COLORS, env
from ungrok.report.data import ReportData
from ungrok.report.hub import HubData
from ungrok.report.sections.fineprint import section_constants, section_notes
from ungrok.report.sections.grid import section_grid
from ungrok.report.sections.hub import section_hub
from ungrok.report.sections.hub_mech import section_hub_mech
from ungrok.report.sections.ladders import section_ladders
from ungrok.report.sections.lead import section_focal, section_focal_trajectories
from ungrok.report.sections.mech import section_mech
from ungrok.report.sections.monitor import section_watch
from ungrok.report.sections.others import section_others
from ungrok.report.sections.phase import section_phase
from ungrok.report.sections.pilot import section_pilot
from ungrok.report.sections.scoreboard import section_scoreboard
from ungrok.report.sections.summary import section_summary
from ungrok.report.sections.support import section_support

Builder = Callable[[ReportData], Markup | None]


def _pilot(data: ReportData) -> Markup | None:
    return None if data.pilot is None else section_pilot(data.pilot)


def _hub(data: ReportData) -> Markup | None:
    return None if data.hub is None else section_hub(data.hub)


# The page, top to bottom: (id, title, builder). A builder that returns None leaves its section
# out (an optional section whose inputs the run lacks). A new section is one module under
# sections/ and one line here, at its place in the reading order: the focal rule and the
# phenomenon first (headline, trajectories, the monitor's warnings, phase diagram, scoreboard,
# pilot), every other rule folded, then the rest.
PAGE: tuple[tuple[str, str, Builder], ...] = (
    ("focal", "Focal rule", section_focal),
    ("focal_trajectories", "Focal rule: accuracy and contrast margin", section_focal_trajectories),
    ("monitor", "Live monitor: warnings before the collapse", section_watch),
    ("phase", "Phase diagram", section_phase),
    ("scoreboard", "Scoreboard", section_scoreboard),
    ("pilot", "Pilot (exploratory, not scored)", _pilot),  # pilot.LABEL, capitalised
    ("others", "Other rules (details)", section_others),
    ("summary", "What the runs show", section_summary),
    ("grid", "Phase grid", section_grid),
    ("ladders", "Dose-response", section_ladders),
    ("support", "Support and forecasts", section_support),
    ("hub", "Public checkpoints", _hub),
    ("mechanism", "Mechanism (descriptive)", section_mech),
    ("notes", "Notes on the inputs", section_notes),
    ("constants", "Constants", section_constants),
)
OPTIONAL = ("phase", "pilot", "hub", "mechanism")  # sections only a run with their inputs has
SECTIONS = tuple(s for s in PAGE if s[0] not in OPTIONAL)  # every run report has these, in this order

# A bare hub suite folder's page: the hub section, its mechanism rows if any, and the same fine print.
HUB_PAGE: tuple[tuple[str, str, Callable[[HubData], Markup | None]], ...] = (
    ("hub", "Public checkpoints", section_hub),
    ("hub_mech", "Mechanism on public checkpoints (descriptive)", section_hub_mech),  # None: no traj.mech.parquet
    ("notes", "Notes on the inputs", section_notes),
    ("constants", "Constants", section_constants),
)


def optional_sections(data: ReportData) -> list[tuple[str, str, Markup]]:
    """(id, title, html) of the optional sections this run has, in page order."""
    return [(sid, t, h) for sid, t, fn in PAGE if sid in OPTIONAL and (h := fn(data)) is not None]


def render_page(title: str, meta: str, sections: Sequence[tuple[str, str, Markup]],
                what: str = "run directory") -> str:
    """The page around the sections: (id, title, html) each, in order, with a link bar."""
    page = env().get_template("page.html").render(title=title, meta=meta, sections=sections, what=what,
                                                  fate_colors=FATE_COLORS, status_colors=STATUS_COLORS)
    return page + "\n"


def render_html(data: ReportData | HubData) -> str:
    """The whole report as one HTML string (deterministic for equal data); a HubData (a bare
    hub suite folder) gives the hub-only report."""
    if isinstance(data, HubData):
        meta = f"{len(data.models)} models · public-checkpoint suite · from {data.folder}"
        hub_sections = [(sid, t, h) for sid, t, fn in HUB_PAGE if (h := fn(data)) is not None]
        return render_page(f"ungrok report: hub suite {data.name}", meta, hub_sections, what="suite folder")
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
