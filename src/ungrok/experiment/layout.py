"""Where a run folder keeps each cell's corpus and each (cell, seed)'s run: the layout the
experiment's tasks write and the readers of a finished run (e.g. a pilot record) open."""

from __future__ import annotations

from pathlib import Path

TRAJ = "traj.parquet"  # a run's probe trajectories, in its seed folder


def cell_dir(run_dir: Path, cell: str) -> Path:
    return Path(run_dir) / "cells" / cell


def corpus_dir(run_dir: Path, cell: str) -> Path:
    return cell_dir(run_dir, cell) / "corpus"


def seed_dir(run_dir: Path, cell: str, seed: int) -> Path:
    return cell_dir(run_dir, cell) / f"seed{seed}"
