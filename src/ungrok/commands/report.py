"""`ungrok report RUN_DIR`: the run directory's self-contained report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ungrok.errors import UngrokError


def report(
    run_dir: Annotated[
        Path, typer.Argument(help="run directory written by `ungrok run`, or a hub suite folder (`ungrok hub score`)")
    ],
    out: Annotated[
        Optional[Path], typer.Option("--out", help="report file to write (default: RUN_DIR/report.html)")
    ] = None,
    force: Annotated[bool, typer.Option(help="replace an existing report")] = False,
) -> None:
    """Write a self-contained report.html: verdicts, trajectories, margins, ladders, support, scoreboard
    (and the public-checkpoint suite and mechanism analyses when the run has them)."""
    from ungrok.outputs import guard_output
    from ungrok.report import build_report, load_report

    target = out if out is not None else run_dir / "report.html"
    if target.is_dir():
        raise UngrokError(f"{target}: is a directory; give a file name for the report")
    guard_output(target, force=force, suffixes=(".html", ".htm"))  # before any work
    data = load_report(run_dir)
    path = build_report(data, target, force=force)
    console = Console(stderr=False)
    for note in data.notes[:10]:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False, soft_wrap=True)
    if len(data.notes) > 10:
        console.print(f"[yellow]note:[/yellow] … and {len(data.notes) - 10} more (see the report's notes)")
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `report` to the top-level app."""
    app.command("report")(report)
