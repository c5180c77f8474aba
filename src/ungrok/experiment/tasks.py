"""The steps of an experiment, one function each: build a cell's corpus, count its support,
train and score one (cell, seed), classify the governed runs, gate the edited cells.

Every function reads and writes only its own part of the run folder, so the (cell, seed)
task can run in any process (a spawn pool, a Ray worker) and in any order without
changing a byte of what it writes. `run_cell_seed` is that task: a module-level function
of one picklable `RunJob`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ungrok.atomic import write_json
from ungrok.errors import UngrokError
from ungrok.experiment.cells import KillSpec, RescueSpec
from ungrok.experiment.layout import TRAJ, cell_dir, corpus_dir, seed_dir
from ungrok.experiment.spec import Experiment
from ungrok.hashing import manifest_sha256, sha256_file

MARKER = ".done-{}"


# --------------------------------------------------------------------------- markers
def marker(folder: Path, step: str) -> Path:
    return Path(folder) / MARKER.format(step)


def read_marker(folder: Path, step: str) -> dict[str, Any] | None:
    """The marker's record, or None if the step has not finished (a torn marker counts as not finished)."""
    p = marker(folder, step)
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def write_marker(folder: Path, step: str, info: Mapping[str, Any]) -> None:
    """Written last, atomically: its presence means the step's artifact is complete."""
    write_json(marker(folder, step), {"step": step, **info})


# --------------------------------------------------------------------------- corpora
def _kill_cues(e: KillSpec, src: Path, exp: Experiment):  # noqa: ANN202 - CueList | None, imported lazily
    from ungrok.edit.scan import resolve_cues

    if e.cues == "spec":
        return None
    scan = e.cues == "scan"  # else a cue file
    return resolve_cues(None if scan else exp.resolve(e.cues), scan, src, e.rule, e.min_events, e.min_ratio,
                        exp.rules_dir)


def build_cell_corpus(
    exp: Experiment, cell: str, run_dir: Path, battery_files: Sequence[Path]
) -> dict[str, Any]:
    """Write cells/<CELL>/corpus (a storyworld, a link to a built corpus, or an edit of the
    parent's corpus); returns what the completion marker records."""
    spec = exp.cells[cell]
    dst = corpus_dir(run_dir, cell)
    dst.parent.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"kind": spec.kind}
    if spec.storyworld is not None:
        from ungrok.corpus.storyworld import build_storyworld

        build_storyworld(dst, spec.storyworld, force=True, rules_dir=exp.rules_dir)
    elif spec.corpus is not None:
        src = exp.resolve(spec.corpus).resolve()
        if dst.is_symlink() or dst.exists():
            if not dst.is_symlink():
                raise UngrokError(
                    f"{dst}: exists and is not the link to {src}; remove it to rebuild the cell"
                )
            dst.unlink()
        os.symlink(src, dst, target_is_directory=True)
        info["path"] = str(src)
    elif isinstance(spec.edit, KillSpec):
        from ungrok.edit import kill_corpus

        e = spec.edit
        src = corpus_dir(run_dir, e.parent)
        prov = kill_corpus(src, dst, e.rule, e.rate, e.seed, cues=_kill_cues(e, src, exp), force=True,
                           rules_dir=exp.rules_dir)
        info.update(rule=e.rule, rate=e.rate, flipped_sites=prov.get("flipped_sites"))
    else:
        from ungrok.edit import build_rescue

        e = spec.edit
        assert isinstance(e, RescueSpec)
        prov = build_rescue(
            corpus_dir(run_dir, e.parent), dst, e.rule, e.dose,
            unit=e.unit, unit_from=corpus_dir(run_dir, e.unit_from) if e.unit_from else None,
            placement=e.placement, window=e.window, steps=exp.cell_steps(cell), seed=e.seed,
            battery_files=list(battery_files), rules_dir=exp.rules_dir, force=True,
        )
        info.update(rule=e.rule, dose=e.dose, n_events=prov.get("n_events"))
    from ungrok.corpus.shards import read_manifest

    m = read_manifest(dst)
    info.update(tokens=m.total_tokens, documents=m.documents, manifest_sha256=manifest_sha256(dst))
    return info


# --------------------------------------------------------------------------- support
def count_cell_support(corpus: Path, rules: Sequence[str], rules_dir: Path | None) -> dict[str, Any]:
    """`ungrok support --json` for one corpus: the counts of every rule plus its forecast."""
    from ungrok.rules.registry import get_rule
    from ungrok.support.count import count
    from ungrok.support.forecast import ForecastThresholds, forecast

    result = count(corpus, [get_rule(r, rules_dir) for r in rules], workers=1, rules_dir=rules_dir).to_json()
    thresholds = ForecastThresholds()
    for row in result["rules"].values():
        row["forecast"] = forecast(row["ratio"], thresholds, row["rule_events"] + row["prior_events"])
    result["forecast_thresholds"] = thresholds.model_dump()
    return result


# --------------------------------------------------------------------------- train + score
@dataclass(frozen=True)
class RunJob:
    """Everything one (cell, seed) task needs; plain values only, so it pickles to any worker."""

    run_dir: str
    cell: str
    seed: int
    train_doc: dict[str, Any]  # a TrainConfig mapping, seed included
    batteries: tuple[str, ...]  # battery files, as hashed by the registry
    monitor_rules: tuple[str, ...]  # empty: no live monitor
    classifier: dict[str, Any]  # ClassifierConfig fields (the monitor judges with them)
    rules_dir: str | None = None
    threads: int | None = None  # torch threads in this worker (None: leave as it is)

    @property
    def out(self) -> Path:
        return seed_dir(Path(self.run_dir), self.cell, self.seed)

    @property
    def data(self) -> Path:
        return corpus_dir(Path(self.run_dir), self.cell)

    @property
    def run_name(self) -> str:
        return f"{self.cell}/seed{self.seed}"


def _load_batteries(paths: Sequence[str]) -> list:
    from ungrok.probes.battery import load_battery

    return [load_battery(p) for p in paths]


def _monitor(job: RunJob, batteries: list, tokenizer: Any) -> list:
    if not job.monitor_rules:
        return []
    from ungrok.fate.config import ClassifierConfig
    from ungrok.probes.battery import Battery
    from ungrok.probes.margins import margin_rules
    from ungrok.train.monitor import RuleMonitor

    merged = Battery(tuple(it for b in batteries for it in b.items), source="experiment batteries")
    margins = margin_rules(list(job.monitor_rules), None, job.rules_dir)
    return [
        RuleMonitor(merged, tokenizer, list(job.monitor_rules), margins, ClassifierConfig(**job.classifier))
    ]


def _score(job: RunJob, batteries: list, tok_path: Path) -> int:
    """Score every checkpoint with every battery into traj.parquet (+ margins); resumable per checkpoint."""
    from ungrok.model import list_checkpoints
    from ungrok.probes.margins import margin_rules
    from ungrok.probes.models import TokenizerFile, load_own_checkpoint, resolve_device
    from ungrok.probes.trajectories import CheckpointSource, TrajectoryStore, score_checkpoints

    dev = resolve_device("auto")
    cks = list_checkpoints(job.out)
    if not cks:
        raise UngrokError(f"{job.out}: training left no checkpoint to score")
    tok = TokenizerFile.load(tok_path)

    def loader(ck):  # noqa: ANN001, ANN202
        return lambda: (load_own_checkpoint(ck, dev), tok)

    sources = [CheckpointSource(job.run_name, ck.step, None, loader(ck)) for ck in cks]
    store = TrajectoryStore(job.out / TRAJ)
    for bat in batteries:
        score_checkpoints(store, sources, bat, margin_rules(bat.families, None, job.rules_dir))
    return len(cks)


def run_cell_seed(job: RunJob) -> dict[str, Any]:
    """Train (or resume) one (cell, seed), then score every checkpoint; each half leaves a marker."""
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    t0 = time.perf_counter()
    out = job.out
    done: dict[str, Any] = {"cell": job.cell, "seed": job.seed}
    tok_path = job.data / "tokenizer.json"
    batteries = None
    if read_marker(out, "train") is None:
        from ungrok.probes.models import TokenizerFile
        from ungrok.train.config import parse_config
        from ungrok.train.loop import train

        cfg = parse_config(job.train_doc, f"cell {job.cell} train")
        batteries = _load_batteries(job.batteries)
        callbacks = _monitor(job, batteries, TokenizerFile.load(tok_path))
        res = train(cfg, job.data, out, callbacks=callbacks, progress=False)
        write_marker(out, "train", {"status": res.status, "steps": res.steps, "final_loss": res.final_loss,
                                    "checkpoints": len(res.checkpoints)})
        done.update(train=res.status, steps=res.steps, final_loss=res.final_loss)
    if read_marker(out, "score") is None:
        batteries = batteries or _load_batteries(job.batteries)
        n = _score(job, batteries, tok_path)
        write_marker(out, "score", {"checkpoints": n, "batteries": [b.sha256 for b in batteries]})
        done["scored"] = n
    done["seconds"] = round(time.perf_counter() - t0, 2)
    return done


# --------------------------------------------------------------------------- classify
def classify_run(run_dir: Path, cell: str, seed: int, cfg: Any, registry: Any = None) -> list[dict[str, Any]]:
    """Fate records of one governed (or pilot) run; each artifact's first read is recorded in the
    ledger first, with the file's sha256 (what a freeze binds of a pilot read)."""
    import pyarrow.parquet as pq

    from ungrok.fate.summary import summarize
    from ungrok.prereg import artifact_key, check_readable, record_read, records_for_run
    from ungrok.probes.trajectories import margins_path_for

    check_readable(run_dir, cell, seed, registry)
    path = seed_dir(run_dir, cell, seed) / TRAJ
    record_read(run_dir, artifact_key(cell, seed, "trajectories"), registry=registry, sha256=sha256_file(path),
                path=path)
    traj = pq.read_table(path)
    mpath = margins_path_for(path)
    margins = None
    if mpath.is_file():
        record_read(run_dir, artifact_key(cell, seed, "margins"), registry=registry, sha256=sha256_file(mpath),
                    path=mpath)
        margins = pq.read_table(mpath)
    steps = sorted(set(traj.column("step").to_pylist()))
    return records_for_run(cell, seed, summarize(traj, margins, cfg), steps=steps)


# --------------------------------------------------------------------------- gates
def _verdicts(records: Sequence[Mapping[str, Any]], cell: str) -> dict[str, list]:
    from ungrok.prereg.evidence import SeedRecord

    out: dict[str, list] = {}
    for r in records:
        if r["cell"] == cell:
            out.setdefault(r["family"], []).append(SeedRecord.model_validate(r).verdict())
    return out


def cell_gate(exp: Experiment, cell: str, records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The intervention-validity gate of an edited cell (None for unedited cells or gate: none).

    A gate that cannot be evaluated (a control family without verdicts) counts as
    INTERVENTION-INVALID: validity that cannot be shown is not assumed."""
    from ungrok.edit import intervention_gate

    e = exp.cells[cell].edit
    if e is None:
        return None
    kind = e.gate if isinstance(e, KillSpec) else e.gate_kind
    if kind == "none":
        return None
    doc: dict[str, Any] = {"kind": kind, "rule": e.rule, "parent": e.parent}
    try:
        base = _verdicts(records, e.parent) if kind == "ladder" else None
        d = intervention_gate(_verdicts(records, cell), e.rule, kind, base=base,  # type: ignore[arg-type]
                              rules_dir=exp.rules_dir, cfg=exp.classifier)
    except UngrokError as err:
        why = f"the gate could not be evaluated: {err}"
        return {**doc, "label": "INTERVENTION-INVALID", "valid": False, "summary": why, "reasons": [why]}
    summary = next(r for r in reversed(d.reasons) if not r.startswith("RS prediction"))  # RS is no gate
    return {**doc, "label": d.label, "valid": d.valid, "summary": summary, "reasons": list(d.reasons)}


# --------------------------------------------------------------------------- evidence
def cell_numbers(exp: Experiment) -> dict[str, dict[str, float]]:
    """Kill rates and rescue doses per cell; a ladder's parent sits at rate (dose) 0."""
    edits = [(name, c.edit, "rate" if c.kill is not None else "dose")
             for name, c in exp.cells.items() if c.edit is not None]
    out: dict[str, dict[str, float]] = {}
    for name, e, number in edits:
        out.setdefault(name, {})[number] = getattr(e, number)
    for _, e, number in edits:
        out.setdefault(e.parent, {}).setdefault(number, 0.0)
    return {k: out[k] for k in exp.cells if k in out}


def family_numbers(run_dir: Path, exp: Experiment) -> dict[str, dict[str, dict[str, float]]]:
    """support_ratio per (cell, rule), from each cell's support.json."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for cell in exp.cells:
        p = cell_dir(run_dir, cell) / "support.json"
        if p.is_file():
            rules = json.loads(p.read_text(encoding="utf-8")).get("rules", {})
            out[cell] = {r: {"support_ratio": float(row["ratio"])} for r, row in rules.items()}
    return out


def experiment_json(exp: Experiment) -> dict[str, Any]:
    """What the report reads: the cells' kinds and edit numbers, and the governed seeds."""
    cells: dict[str, dict[str, Any]] = {}
    for name, c in exp.cells.items():
        d: dict[str, Any] = {"kind": c.kind}
        if c.kill is not None:
            d.update(rule=c.kill.rule, rate=c.kill.rate, parent=c.kill.parent)
        elif c.rescue is not None:
            d.update(rule=c.rescue.rule, dose=c.rescue.dose, parent=c.rescue.parent)
        cells[name] = d
    doc: dict[str, Any] = {"name": exp.name, "cells": cells, "seeds": exp.seeds}
    if exp.pilots:  # shown apart by the report, never in the scoreboard
        doc["pilot_seeds"] = exp.pilots
    if exp.sweep_points:  # the report's phase diagram places each swept cell by its knobs
        # knobs as a list: the file is written with sorted keys, and the first knob is the x axis
        doc["sweeps"] = {name: {"knobs": list(exp.spec.sweeps[name].grid), "cells": cells}
                         for name, cells in exp.sweep_points.items()}
        if exp.focal is not None:
            doc["focal"] = {"rule": exp.focal, "ratio": ratio_label(exp.focal, exp.rules_dir)}
    return doc


def ratio_label(rule: str, rules_dir: Path | None) -> str:
    """What a rule's counted support ratio compares: the targets of its conflict cue class
    (she:he for the pronoun rule), else the generic rule:prior."""
    from ungrok.rules.registry import get_rule

    try:
        spec = get_rule(rule, rules_dir)
    except UngrokError:
        return "rule:prior"
    for c in spec.cues:
        if c.role == "conflict":
            return f"{c.rule[0].strip()}:{c.prior[0].strip()}"
    return "rule:prior"
