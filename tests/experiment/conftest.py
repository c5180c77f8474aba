"""A tiny experiment (2 storyworld cells + 1 kill cell, 2 governed seeds + 1 quarantined) run once
per session; the run, rerun, quarantine, prereg and resume tests read its run folder."""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from rich.console import Console

FAMILIES = ["pronoun_gender_ref", "det_an_choice", "a_an_adjective", "irregular_past", "negation_bare_verb"]

TINY = {
    "name": "tiny",
    "seeds": [1, 2],
    "quarantined_seeds": [3],
    "rules": ["pronoun_gender_ref"],
    "batteries": {"main": "battery.jsonl"},
    "train": {
        "model": {"preset": "tiny"},
        "sampler": {"context": 32, "batch_size": 8, "steps": 24},
        "checkpoints": {"rules": [{"start": 0, "every": 8}]},
        "probe_every": 8,
        "probe_dense_until": 0,
    },
    "classifier": {"min_step": 0},  # 24-step runs: keep every checkpoint
    "cells": {
        "high": {"storyworld": {"tokens": 100_000, "seed": 0, "global_ratio": 8, "frame_ratio": 8}},
        "low": {
            "storyworld": {
                "tokens": 100_000,
                "seed": 1,
                "global_ratio": 0.5,
                "frame_ratio": 0.4,
                "frame_rate": 0.01,
            }
        },
        "kill": {"kill": {"parent": "high", "rule": "pronoun_gender_ref", "rate": 1.0}},
    },
    "predictions": [
        {"name": "P1", "expr": "pronoun_gender_ref has conflict_final >= 0 in all seeds of cell high"},
        {
            "name": "K1",
            "expr": "pronoun_gender_ref has conflict_final >= 0 in all seeds of cell kill",
            "gates": {"intervention": "ks"},
        },
    ],
}


def tiny_doc() -> dict:
    return copy.deepcopy(TINY)


def write_experiment(folder: Path, battery: Path, doc: dict | None = None, name: str = "exp.yaml") -> Path:
    """The experiment file with its battery beside it (a relative path, as users write it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "battery.jsonl").write_bytes(battery.read_bytes())
    path = folder / name
    path.write_text(yaml.safe_dump(doc if doc is not None else tiny_doc(), sort_keys=False))
    return path


def capture() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200), buf


@dataclass
class Finished:
    experiment: Path
    run: Path
    output: str


@pytest.fixture(scope="session")
def one_thread():
    """One torch thread, as each worker of a 2-worker run on 2 cores gets (and fast on a busy machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def battery(tmp_path_factory) -> Path:
    from ungrok.probes.battery import build_battery, save_battery

    path = tmp_path_factory.mktemp("battery") / "battery.jsonl"
    save_battery(build_battery(FAMILIES), path)
    return path


@pytest.fixture(scope="session")
def finished(tmp_path_factory, battery, one_thread) -> Finished:
    from ungrok.experiment.run import run_experiment

    folder = tmp_path_factory.mktemp("tiny")
    exp = write_experiment(folder, battery)
    console, buf = capture()
    run_experiment(exp, folder / "run", console=console)
    return Finished(exp, folder / "run", buf.getvalue())
