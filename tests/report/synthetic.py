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

make_hub_dir() writes a synthetic hub suite folder (three made-up models) and add_mech() a
synthetic mechanism store and n-gram baseline into a run directory; their planted values
are documented beside them below.
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
    }))
    (run_dir / "scoreboard.json").write_text(json.dumps(SCOREBOARD))
    return run_dir


# --------------------------------------------------------------------------- hub suite (issue 8)
# Three made-up models scored at log-spaced revisions. Kept steps (>= 100) are 128..5000: 8
# checkpoints, final window 3, so each verdict works out by hand:
#   tiny-s  FOCAL 1 from step 8, 0.25 from 1000 -> smoothed tail .25      -> DISPLACED
#           OTHER conflict 1, agree 1 then 0.5 from 1000 -> gate fails   -> r
#   tiny-m  FOCAL 1 from step 8, 0.7 from 1000                           -> PARTIAL
#   tiny-l  FOCAL 1 from step 2 (its step-4 revision was skipped)        -> RECOVERED
HUB_STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 3000, 4000, 5000]
HUB_MODELS = {  # model -> (n_params, size_rank)
    "org/tiny-s": (1_000_000, 1),
    "org/tiny-m": (5_200_000, 2),
    "org/tiny-l": (25_000_000, 3),
}
HUB_SKIPPED_REVISION = ("org/tiny-l", "step4", "revision not found on the hub")
HUB_GATED = {"model": "org/gated-model", "revision": None, "why": "gated repository: no access token"}
HUB_NOTE = "target ' she' splits into 2 tokens: scored as multi-token"
HUB_RHO, HUB_CI, HUB_NBOOT = 0.87, [0.5, 1.0], 1000  # planted: NOT what three points give
HUB_SCALE_NOTE = "only 3 models: the interval is wide"


def _hub_focal(model: str, step: int) -> float:
    if model == "org/tiny-l":
        return 1.0 if step >= 2 else 0.0
    if step < 8:
        return 0.0
    if step < 1000:
        return 1.0
    return 0.25 if model == "org/tiny-s" else 0.7


def _hub_steps(model: str) -> list[int]:
    return [s for s in HUB_STEPS if not (model == HUB_SKIPPED_REVISION[0] and s == 4)]


def make_hub_dir(folder: Path, scale: bool = True) -> Path:
    """A synthetic hub suite folder (suite.json, traj.parquet, traj.margins.parquet, hub_fates.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    traj, margins = [], []
    for model in HUB_MODELS:
        for s in _hub_steps(model):
            c = _hub_focal(model, s)
            other_agree = 0.5 if (model == "org/tiny-s" and s >= 1000) else 1.0
            for fam, cond, acc in ((FOCAL, "conflict", c), (FOCAL, "agree", 1.0), (OTHER, "conflict", 1.0),
                                   (OTHER, "agree", other_agree)):
                traj.append(dict(run=model, step=s, revision=f"step{s}", family=fam, condition=cond, split="heldout",
                                 accuracy=acc, n_items=12, n_skipped=0, mean_margin=0.0, mean_margin_norm=0.0,
                                 battery_sha256="cd" * 32))
            margins.append(dict(run=model, step=s, revision=f"step{s}", rule=FOCAL, cm=4 * c - 2, pm=1 - c, n_cm=12,
                                n_pm=12, prompts_sha256="ef" * 32))
    pq.write_table(pa.Table.from_pylist(traj), folder / "traj.parquet")
    pq.write_table(pa.Table.from_pylist(margins), folder / "traj.margins.parquet")
    models = {}
    for model, (n, rank) in HUB_MODELS.items():
        revs = [dict(revision=f"step{s}", step=s, status="scored", why=None, seconds=2.0, peak_rss_mib=500.0)
                for s in _hub_steps(model)]
        if model == HUB_SKIPPED_REVISION[0]:
            revs.insert(3, dict(revision="step4", step=4, status="skipped", why=HUB_SKIPPED_REVISION[2],
                                seconds=None, peak_rss_mib=None))
        models[model] = dict(n_params=n, size_rank=rank, revisions=revs,
                             notes=[HUB_NOTE] if model == "org/tiny-s" else [])
    suite = {"battery": "batteries/rvp31.jsonl", "battery_sha256": "cd" * 32, "models": models,
             "skipped": [dict(model=HUB_SKIPPED_REVISION[0], revision="step4", why=HUB_SKIPPED_REVISION[2]),
                         HUB_GATED]}
    (folder / "suite.json").write_text(json.dumps(suite))
    records = summarize(traj, margins)
    doc: dict = {"records": records}
    if scale:
        finals = {r["run"]: r["conflict_final"] for r in records if r["family"] == FOCAL}
        doc["scale"] = {"family": FOCAL, "condition": "conflict", "split": "heldout",
                        "models": [dict(model=m, n_params=n, size_rank=k, final_accuracy=finals[m])
                                   for m, (n, k) in HUB_MODELS.items()],
                        "rho": HUB_RHO, "ci": HUB_CI, "n_boot": HUB_NBOOT, "seed": 0, "note": HUB_SCALE_NOTE}
    (folder / "hub_fates.json").write_text(json.dumps(doc))
    return folder


# --------------------------------------------------------------------------- mechanism store (issue 9)
# traj.mech.parquet for high/seed1, high/seed2 and low/seed1 (every other listed seed has none);
# 2 layers x 2 heads, every instrument at every checkpoint except patch/direction (low/seed1
# only, at its CM peak and final, as `ungrok mech` does). CM peaks = argmax of the raw CM, the
# later step on a tie: high = CM_UP, 2.0 from step 400 to the end -> 1500 (= the final
# checkpoint); low seed 1 = CM_UPDOWN, 2.0 at steps 200..600 -> 600. Planted dominant heads,
# step -> (head, share, ablation dCM, OV cos); None = every other step:
MECH_TOP = {
    ("high", 1): {1500: ("L1H0", 0.75, -1.7, 0.54), None: ("L1H0", 0.5, -1.0, 0.3)},
    ("high", 2): {1500: ("L0H0", 0.6, -0.4, 0.12), None: ("L1H1", 0.5, -1.0, 0.3)},
    ("low", 1): {600: ("L1H0", 0.85, -1.9, 0.49), 1500: ("L0H1", 0.4, -0.3, 0.05), None: ("L0H1", 0.4, -0.5, 0.1)},
}
MECH_PEAK = {("high", 1): 1500, ("high", 2): 1500, ("low", 1): 600}
HEADS = ("L0H0", "L0H1", "L1H0", "L1H1")
# patching, low/seed1: destination final (1500) and destination peak (600)
PATCH_P2F = {"embed": 0.05, "L0H0": 0.1, "L1H0": 0.3, "mlp:L0": 0.2, "mlp:L1": 0.63, "all": 1.0}
PATCH_F2P = {"embed": 0.0, "L1H0": -0.2, "mlp:L0": 0.4, "mlp:L1": 1.12, "all": 0.95}
# direction removal, low/seed1: step -> block -> (dcm, other_abs_delta, dbpb)
DIRECTION = {600: {"block1": (-2.0, 0.5, 0.02), "block2": (-9.4, 0.76, 0.07)},
             1500: {"block1": (-0.3, 0.1, 0.0), "block2": (-1.5, 0.2, 0.01)}}
DECOMP_ERROR = 2.5e-5


def _mech_rows(run: str, top: dict) -> list[dict]:
    rows = []

    def add(step, instrument, component, metric, value):
        rows.append(dict(run=run, step=step, rule=FOCAL, instrument=instrument, component=component, metric=metric,
                         value=float(value), prompts_sha256="ab" * 32))

    for i, s in enumerate(STEPS):
        parts = {"attn:L0": 0.1 * i, "attn:L1": 0.3 * i, "mlp:L0": -0.05 * i, "mlp:L1": 0.02 * i}
        embed = 0.01
        ctx = sum(parts.values())
        for comp, v in {"embed": embed, **parts, "ctx": ctx, "gap": embed + ctx, "error": DECOMP_ERROR}.items():
            add(s, "decomp", comp, "nats", v)
        head, share, dcm, cos = top.get(s, top[None])
        for h in HEADS:
            sh = share if h == head else (1 - share) / 3
            add(s, "heads", h, "share", sh)
            add(s, "heads", h, "attribution", 2.0 * sh)
            add(s, "heads", h, "ablation_dcm", dcm if h == head else 0.1 * dcm)
            add(s, "heads", h, "ov_cos", cos if h == head else 0.0)
        add(s, "decode", "block1", "accuracy", 0.5 + 0.1 * i / 15)
        add(s, "decode", "block2", "accuracy", 0.5 + 0.45 * i / 15)
    return rows


def _ngram_rows(run: str, order: int, steps: list[int], focal: tuple[float, float]) -> list[dict]:
    rows = []
    for s in steps:
        for fam, (c, a) in ((FOCAL, focal), (OTHER, (1.0, 1.0))):
            for cond, acc in (("conflict", c), ("agree", a)):
                rows.append(dict(run=f"{run}#ngram{order}", step=s, family=fam, condition=cond, split="heldout",
                                 accuracy=acc, n_items=12, mean_margin=0.0))
    return rows


NGRAM_FOCAL = {2: (0.5, 0.5), 5: (1.0, 1.0 / 3)}  # (conflict, agree): 2-gram -> n, 5-gram -> r


def add_mech(run_dir: Path) -> Path:
    """Write the synthetic traj.mech.parquet and traj.ngram.parquet files into a make_run_dir() folder."""
    for (cell, seed), top in MECH_TOP.items():
        sdir = run_dir / "cells" / cell / f"seed{seed}"
        rows = _mech_rows(f"{cell}/seed{seed}", top)
        if (cell, seed) == ("low", 1):
            for metric, dst, vals in (("recovery_peak_to_final", 1500, PATCH_P2F),
                                      ("recovery_final_to_peak", 600, PATCH_F2P)):
                rows += [dict(run="low/seed1", step=dst, rule=FOCAL, instrument="patch", component=c, metric=metric,
                              value=v, prompts_sha256="ab" * 32) for c, v in vals.items()]
            for step, blocks in DIRECTION.items():
                for block, values in blocks.items():
                    for metric, v in zip(("dcm", "other_abs_delta", "dbpb"), values, strict=True):
                        rows.append(dict(run="low/seed1", step=step, rule=FOCAL, instrument="direction",
                                         component=block, metric=metric, value=v, prompts_sha256="ab" * 32))
        pq.write_table(pa.Table.from_pylist(rows), sdir / "traj.mech.parquet")
    for seed in SEEDS:  # n-gram baseline of cell high, every checkpoint
        rows = [r for n, f in NGRAM_FOCAL.items() for r in _ngram_rows(f"high/seed{seed}", n, STEPS, f)]
        pq.write_table(pa.Table.from_pylist(rows), run_dir / "cells" / "high" / f"seed{seed}" / "traj.ngram.parquet")
    # low/seed1: one evaluation only, which the classifier cannot judge (needs 3 checkpoints >= 100)
    rows = _ngram_rows("low/seed1", 5, [1500], (0.25, 0.75))
    pq.write_table(pa.Table.from_pylist(rows), run_dir / "cells" / "low" / "seed1" / "traj.ngram.parquet")
    return run_dir


def need_chromium() -> str:
    """The browser for render checks; under CI=true a missing one fails, locally the test skips."""
    import os

    import pytest

    from ungrok.report.browser import find_chromium

    exe = find_chromium()
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but chromium is not installed; .ci/ensure-chromium should have installed it")
        pytest.skip("chromium is not installed; run .ci/ensure-chromium to enable the real-browser test")
    return exe


# --------------------------------------------------------------------------- sweeps (phase diagram)
# Made-up sweep coordinates over the cells above, as `ungrok run` writes them into experiment.json
# (cells in sorted-key order, as the file has them): a one-knob kill sweep (one row of 2 points)
# and a three-knob sweep whose third knob splits its 4 cells into 2 panels. Expected letters per cell follow FOCAL_RUNS: high R R, high_k50 R D,
# high_k100 N N, low D d (seed 2's agree gate fails), low_r1 R N.
SWEEPS = {
    "kill": {"knobs": ["kill.rate"], "cells": {"high_k100": {"kill.rate": 1.0}, "high_k50": {"kill.rate": 0.5}}},
    "web": {
        "knobs": ["storyworld.frame_rate", "storyworld.frame_ratio", "storyworld.seed"],
        "cells": {
            "high": {"storyworld.frame_rate": 0.005, "storyworld.frame_ratio": 8.0, "storyworld.seed": 0},
            "high_k100": {"storyworld.frame_rate": 0.005, "storyworld.frame_ratio": 0.4, "storyworld.seed": 1},
            "low": {"storyworld.frame_rate": 0.01, "storyworld.frame_ratio": 0.4, "storyworld.seed": 0},
            "low_r1": {"storyworld.frame_rate": 0.01, "storyworld.frame_ratio": 0.4, "storyworld.seed": 1},
        },
    },
}
PHASE_LETTERS = {"high": "R R", "high_k50": "R D", "high_k100": "N N", "low": "D d", "low_r1": "R N"}


def add_sweeps(run_dir: Path) -> Path:
    """Record SWEEPS and the focal rule in a make_run_dir() folder's experiment.json."""
    path = run_dir / "experiment.json"
    doc = json.loads(path.read_text())
    doc.update(sweeps=SWEEPS, focal={"rule": FOCAL, "ratio": "she:he"})
    path.write_text(json.dumps(doc))
    return run_dir


# --------------------------------------------------------------------------- monitor states (warning lead)
# Planted per-rule monitor states, as monitor.jsonl carries them at every step of STEPS, for the
# lead section (report/monitor.py). FOCAL: R runs "not yet" below 400 and "emerged" after, D runs
# emerge at 200; planted: high/2 (R) "displacing" at 900-1000 then "emerged" again (a false
# alarm); high_k50/2 (D, onset 700) "displacing" 500-700, "displaced" from 800 (lead +200 = 13.3%
# of the 1500 steps); low/1 (D, onset 700) "displaced" from 800 (lead -100 = -6.7%: late); low/2
# (D, agree gate failed) "control-failing" from 800 (not scored); N runs "not yet" throughout.
# OTHER: "emerged" from step 0; low_r1/2 "displacing" at 1000 (a false alarm). high_k100/1 has no
# monitor.jsonl at all. Expected: focal 8 scored, TP 2, FP 1, FN 0 (precision 0.67, recall 1,
# median lead 3.3%); other 9 scored, FP 1; overall 17 scored, TP 2, FP 2, 1 gate failed, 2 unwatched.
MONITOR_FOCAL = {  # (cell, seed) -> {first step of a state: state}
    ("high", 2): {0: "not yet", 400: "emerged", 900: "displacing", 1100: "emerged"},
    ("high_k50", 2): {0: "not yet", 200: "emerged", 500: "displacing", 800: "displaced"},
    ("low", 1): {0: "not yet", 200: "emerged", 800: "displaced"},
    ("low", 2): {0: "not yet", 200: "emerged", 800: "control-failing"},
}
MONITOR_OTHER = {("low_r1", 2): {0: "emerged", 1000: "displacing", 1100: "emerged"}}
MONITOR_ABSENT = ("high_k100", 1)
MONITOR_WARN = ("displacing", "displaced", "control-failing")


def _states(plan: dict[int, str]) -> list[str]:
    out, state = [], plan[0]
    for s in STEPS:
        state = plan.get(s, state)
        out.append(state)
    return out


def add_monitor(run_dir: Path) -> Path:
    """Write (replace) monitor.jsonl with the planted per-rule states in a make_run_dir() folder."""
    for (cell, seed), (conflict, _, _) in FOCAL_RUNS.items():
        path = run_dir / "cells" / cell / f"seed{seed}" / "monitor.jsonl"
        if (cell, seed) == MONITOR_ABSENT:
            path.unlink(missing_ok=True)
            continue
        default = {0: "not yet", 400: "emerged"} if conflict is RISE else {0: "not yet"}
        focal = _states(MONITOR_FOCAL.get((cell, seed), default))
        other = _states(MONITOR_OTHER.get((cell, seed), {0: "emerged"}))
        lines, prev = [], {FOCAL: "not yet", OTHER: "not yet"}
        for i, s in enumerate(STEPS):
            now = {FOCAL: focal[i], OTHER: other[i]}
            warnings = [f"step {s}: {r}: {st}" for r, st in now.items() if st != prev[r] and st in MONITOR_WARN]
            lines.append({"step": s, "rules": {r: {"rule": r, "state": st} for r, st in now.items()},
                          "warnings": warnings, "display": ""})
            prev = now
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run_dir
