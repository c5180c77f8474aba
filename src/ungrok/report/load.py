"""A whole run directory read for the report: the core (data.read_run), then each optional part.

The parts' modules (hub, mech, phase, pilot, monitor, focal) build on data.py, so the step that
calls them lives here, above them all, and data.py imports none of them.
"""

from __future__ import annotations

from pathlib import Path

from ungrok.report.data import ReportData, read_run
from ungrok.report.focal import load_focal
from ungrok.report.hub import load_hub
from ungrok.report.mech import load_mech
from ungrok.report.monitor import load_watch
from ungrok.report.phase import load_phase
from ungrok.report.pilot import load_pilot


def load_run(run_dir: str | Path) -> ReportData:
    """Read a run directory into ReportData; missing optional parts become notes.

    The hub suite (RUN_DIR/hub/), the mechanism store, the sweeps and the pilot are read only
    when the run has them, so a run without them gets exactly the report it got before those
    sections existed."""
    run_dir = Path(run_dir)
    data = read_run(run_dir)
    data.focal = load_focal(data, run_dir)
    if (run_dir / "hub").is_dir():
        data.hub = load_hub(run_dir / "hub", strict=False)
        data.notes += [f"hub/{n}" for n in data.hub.notes]
    data.mech = load_mech(data, run_dir)
    data.phase = load_phase(data)
    data.pilot = load_pilot(run_dir)
    data.watch = load_watch(data)
    return data
