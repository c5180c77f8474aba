"""A SYNTHETIC run directory for the report tests. Its numbers are made up to exercise the
report (every fate, a transient, a failed agree gate, a kill and a rescue ladder); they are
not results of any training run and must never be shown as such.

Checkpoints are steps 0..1500 every 100: 15 kept by the classifier (step >= 100), so the
final window is 3 checkpoints and each shape's verdict can be worked out by hand:
  RISE      conflict 0, 0, .5, 1, ... -> RECOVERED, no transient, onset 1500
  RISE_FALL solved at 100..700, 0 from 800 -> DISPLACED, transient, onset 700
  NEVER     all 0 -> NEVER
CM shapes (final window 3 of 16, smoothed): CM_UP ends +2 (zero crossing 1500),
CM_UPDOWN ends -1 (zero crossing 800), CM_DOWN ends -2 (never >= 0: no crossing).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ungrok.fate.config import DEFAULT_CONFIG
from ungrok.fate.summary import summarize

NAME = "SYNTHETIC TEST FIXTURE (made-up numbers, not results)"
STEPS = list(range(0, 1600, 100))
SEEDS = [1, 2]
FOCAL = "pronoun_gender_ref"
OTHER = "det_an_choice"

RISE = [0.0, 0.0, 0.5] + [1.0] * 13
RISE_FALL = [0.0] + [1.0] * 7 + [0.0] * 8
NEVER = [0.0] * 16
ONES = [1.0] * 16
AGREE_FAIL = [1.0] * 8 + [0.5] * 8

CM_UP = [0.0, 0.5, 1.0, 1.5] + [2.0] * 12
CM_UPDOWN = [0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0, 0.0] + [-1.0] * 7
CM_DOWN = [0.0, -0.5, -1.0, -1.5] + [-2.0] * 12

CELLS = {
    "high": {"kind": "storyworld"},
    "high_k50": {"kind": "kill", "rate": 0.5, "parent": "high", "rule": FOCAL},
    "high_k100": {"kind": "kill", "rate": 1.0, "parent": "high", "rule": FOCAL},
    "low": {"kind": "storyworld"},
    "low_r1": {"kind": "rescue", "dose": 1.0, "parent": "low", "rule": FOCAL},
}
# (cell, seed) -> focal (conflict, agree, cm)
FOCAL_RUNS = {
    ("high", 1): (RISE, ONES, CM_UP),
    ("high", 2): (RISE, ONES, CM_UP),
    ("high_k50", 1): (RISE, ONES, CM_UP),
    ("high_k50", 2): (RISE_FALL, ONES, CM_UPDOWN),
    ("high_k100", 1): (NEVER, ONES, CM_DOWN),
    ("high_k100", 2): (NEVER, ONES, CM_DOWN),
    ("low", 1): (RISE_FALL, ONES, CM_UPDOWN),
    ("low", 2): (RISE_FALL, AGREE_FAIL, CM_UP),  # gate fails; CM ends > 0 although accuracy is 0
    ("low_r1", 1): (RISE, ONES, CM_UP),
    ("low_r1", 2): (NEVER, ONES, CM_DOWN),
}
# the support law's forecast labels, as `ungrok support` writes them
SUPPORT = {
    "high": (8.0, "likely survives"),
    "high_k50": (1.04, "at risk"),
    "high_k100": (0.02, "likely lost"),
    "low": (0.4, "likely lost"),
    "low_r1": (3.0, "likely survives"),
}


def _traj_rows(run: str, family: str, conflict: list[float], agree: list[float]) -> list[dict]:
    rows = []
    for s, c, a in zip(STEPS, conflict, agree, strict=True):
        for cond, acc in (("conflict", c), ("agree", a)):
            rows.append(dict(run=run, step=s, family=family, condition=cond, split="heldout", accuracy=acc,
                             n_items=12, mean_margin=0.0))
        # train-split rows contradict the held-out ones: the report must ignore them
        rows.append(dict(run=run, step=s, family=family, condition="conflict", split="train", accuracy=1 - c,
                         n_items=12, mean_margin=0.0))
    return rows


def _support_doc(cell: str) -> dict:
    ratio, forecast = SUPPORT[cell]
    prior = 100
    rule_events = round(ratio * (prior + 1) - 1)
    return {
        "tokens": 200_000,
        "mode": "corpus",
        "forecast_thresholds": {"survive_ratio": 2.5, "lost_ratio": 1.0},
        "skipped": {},
        "rules": {
            FOCAL: {"event": "window", "rule_events": rule_events, "prior_events": prior, "neither": 0,
                    "ratio": ratio, "frequency": rule_events / 200_000, "mode": "corpus", "forecast": forecast},
            OTHER: {"event": "lookahead", "rule_events": 892, "prior_events": 45, "neither": None,
                    "ratio": 19.41, "frequency": 892 / 200_000, "mode": "corpus", "forecast": "likely survives"},
        },
    }


SCOREBOARD = {
    "format": "ungrok-scoreboard/1",
    "registry_sha256": "ab" * 32,
    "classifier_sha256": DEFAULT_CONFIG.sha256(),
    "outcomes": [
        {"name": "high_recovers", "status": "PASS", "reason": "2/2 seeds RECOVERED+valid", "value": 1.0,
         "falsifier": False, "triggered": None, "group": "base"},
        {"name": "kill_monotone", "status": "FAIL", "reason": "rho = -0.5 > -0.8", "value": -0.5,
         "falsifier": False, "triggered": None, "group": "kill"},
        {"name": "rescue_restores", "status": "UNSCOREABLE", "reason": "agree gate failed in 1/2 seeds",
         "value": None, "falsifier": False, "triggered": None, "group": "rescue"},
        {"name": "high_dies", "status": "FAIL", "reason": "0/2 seeds died", "value": 0.0,
         "falsifier": True, "triggered": False, "group": "base"},
        {"name": "never_emerges_high", "status": "PASS", "reason": "<script>alert(1)</script> & co", "value": 1.0,
         "falsifier": True, "triggered": True, "group": "base"},
    ],
    "summary": {"PASS": 2, "FAIL": 2, "UNSCOREABLE": 1},
}


def make_run_dir(root: Path) -> Path:
    """Write the synthetic run directory under root/run and return its path."""
    run_dir = root / "run"
    (run_dir / "cells").mkdir(parents=True)
    (run_dir / "experiment.json").write_text(json.dumps({"name": NAME, "cells": CELLS, "seeds": SEEDS}))
    records = []
    for (cell, seed), (conflict, agree, cm) in FOCAL_RUNS.items():
        run = f"{cell}-s{seed}"
        sdir = run_dir / "cells" / cell / f"seed{seed}"
        sdir.mkdir(parents=True)
        traj = _traj_rows(run, FOCAL, conflict, agree) + _traj_rows(run, OTHER, ONES, ONES)
        pq.write_table(pa.Table.from_pylist(traj), sdir / "traj.parquet")
        margins = [dict(run=run, step=s, rule=FOCAL, cm=c, pm=-c / 2) for s, c in zip(STEPS, cm, strict=True)]
        pq.write_table(pa.Table.from_pylist(margins), sdir / "traj.margins.parquet")
        records += [dict(r, cell=cell, seed=seed) for r in summarize(traj, margins)]
        if cell == "high_k50":
            lines = [{"step": 500, "rules": {}, "warnings": []}]
            if seed == 2:
                lines.append({"step": 900, "warnings": [f"{FOCAL}: displacing (smoothed conflict fell 0.33)"]})
            (sdir / "monitor.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    for cell in CELLS:
        (run_dir / "cells" / cell / "support.json").write_text(json.dumps(_support_doc(cell)))
    (run_dir / "fates.json").write_text(json.dumps({
        "classifier_sha256": DEFAULT_CONFIG.sha256(),
        "classifier": DEFAULT_CONFIG.model_dump(mode="json"),
        "records": records,
    }))  # fmt: skip
    (run_dir / "scoreboard.json").write_text(json.dumps(SCOREBOARD))
    return run_dir
