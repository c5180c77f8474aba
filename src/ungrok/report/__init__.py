"""report: one self-contained report.html from a run directory (figures embedded, no scripts).

A run directory of `ungrok run` gives the full report (with a public-checkpoint section when
it holds hub/, and a mechanism section when its seed folders hold traj.mech.parquet or
traj.ngram.parquet); a bare hub suite folder of `ungrok hub score` gives a hub-only report.
"""

from __future__ import annotations

from pathlib import Path

from ungrok.report.data import CellInfo, Curve, MarginCurve, ReportData, read_json
from ungrok.report.html import build_report, render_html
from ungrok.report.hub import HubData, is_hub_folder, load_hub
from ungrok.report.load import load_run
from ungrok.report.mech import MechData


def load_report(folder: str | Path) -> ReportData | HubData:
    """A run directory (experiment.json) or, failing that, a bare hub suite folder (suite.json).

    A run of an experiment with a hub section and no cells reports its hub/ folder alone."""
    folder = Path(folder)
    if is_hub_folder(folder):
        return load_hub(folder)
    if _hub_only_run(folder):
        return load_hub(folder / "hub")
    return load_run(folder)


def _hub_only_run(folder: Path) -> bool:
    try:
        exp = read_json(folder / "experiment.json")
    except (OSError, ValueError):
        return False  # load_run names the problem
    return isinstance(exp, dict) and not exp.get("cells") and is_hub_folder(folder / "hub")


def report_run(run_dir: str | Path, out: str | Path | None = None, force: bool = False) -> Path:
    """Read RUN_DIR (or a hub suite folder) and write its report (default DIR/report.html); returns the path."""
    run_dir = Path(run_dir)
    data = load_report(run_dir)
    return build_report(data, Path(out) if out is not None else run_dir / "report.html", force=force)


__all__ = [
    "CellInfo",
    "Curve",
    "HubData",
    "MarginCurve",
    "MechData",
    "ReportData",
    "build_report",
    "load_hub",
    "load_report",
    "load_run",
    "render_html",
    "report_run",
]
