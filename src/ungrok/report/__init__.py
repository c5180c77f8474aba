"""report: one self-contained report.html from a run directory (figures embedded, no scripts)."""

from __future__ import annotations

from pathlib import Path

from ungrok.report.data import CellInfo, Curve, MarginCurve, ReportData, load_run
from ungrok.report.html import build_report, render_html


def report_run(run_dir: str | Path, out: str | Path | None = None, force: bool = False) -> Path:
    """Read RUN_DIR and write its report (default RUN_DIR/report.html); returns the path written."""
    run_dir = Path(run_dir)
    data = load_run(run_dir)
    return build_report(data, Path(out) if out is not None else run_dir / "report.html", force=force)


__all__ = [
    "CellInfo",
    "Curve",
    "MarginCurve",
    "ReportData",
    "build_report",
    "load_run",
    "render_html",
    "report_run",
]
