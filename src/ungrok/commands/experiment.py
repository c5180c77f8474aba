"""`ungrok run EXP.yaml --out RUN_DIR`: every step of an experiment, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def run_cmd(
    experiment: Annotated[
        Path, typer.Argument(help="Experiment YAML (cells, seeds, batteries, train, predictions).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder; an interrupted run here is resumed.")],
    workers: Annotated[
        int,
        typer.Option(
            help="(cell, seed) runs at once (>1: a spawn process pool, cores/N torch threads each)."
        ),
    ] = 1,
    executor: Annotated[str, typer.Option(help="local (process pool) or ray.")] = "local",
    address: Annotated[
        Optional[str], typer.Option(help="Ray cluster address (with --executor ray; default: a local Ray).")  # noqa: UP045
    ] = None,
    set_: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--set", help="Override a key of the file, KEY.PATH=YAML (repeatable; null deletes)."),
    ] = None,
    phase: Annotated[
        str,
        typer.Option(
            help="pilot: only the pilot_seeds (exploratory, before any freeze); confirm: freeze the registry "
            "(binding the pilot reads so far), then the governed and quarantined seeds; all: pilot, then confirm."
        ),
    ] = "confirm",
) -> None:
    """Build corpora, count support, train and score every (cell, seed), classify, gate, score the
    pre-registered predictions and write report.html. Rerun the same command to resume.
    With pilot_seeds: `--phase pilot` first, look, write the predictions, then `ungrok run`."""
    from ungrok.errors import UngrokError
    from ungrok.experiment.run import parse_sets, run_experiment
    from ungrok.limits import check_at_least
    from ungrok.outputs import guard_output

    check_at_least(workers, 1, "--workers")
    if executor not in ("local", "ray"):
        raise UngrokError(f"--executor {executor!r}: use local or ray")
    guard_output(out, inputs=[experiment], exists_ok=True, folder=True)
    run_experiment(
        experiment, out, workers=workers, executor=executor, address=address,
        overrides=parse_sets(set_ or []) or None, phase=phase,
    )


def register(app: typer.Typer) -> None:
    """Add `run` to the top-level app."""
    app.command("run")(run_cmd)
