"""`ungrok run`: every step of an experiment, resumably, into one run folder.

Phases (`--phase`): `pilot` builds the corpora and trains, scores and classifies only the
experiment's `pilot_seeds` (exploratory; each read recorded in the ledger with the file's
sha256; no registry, no predictions needed) into pilot_fates.json; `confirm` (the
default) is the pre-registered run below, whose freeze binds the pilot reads made so far;
`all` is the pilot and then the confirm phase in one command.

Order: prepare the folder (copy of the experiment and its batteries) → freeze the
pre-registration (before any training) or verify it → corpora in dependency order →
support per cell → train + score every (cell, seed), governed and quarantined, in
parallel → classify the governed runs (each read recorded in the ledger) → intervention
gates → evidence + scoreboard → mechanism instruments on the governed runs (optional `mech:`
section; descriptive, after every verdict) → experiment.json + report.html.

Each step leaves its artifact and then a `.done-<step>` marker; a rerun skips every step
whose marker exists and says so, so an interrupted run (Ctrl-C, SIGKILL, a failed task)
resumes where it stopped. Training itself resumes inside an interrupted (cell, seed) to
the bit, and scoring resumes per checkpoint. The (cell, seed) tasks run inline
(--workers 1), in a spawn process pool, or on Ray; each writes only its own folder, so
the executor and the completion order change nothing that is written.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ungrok.atomic import write_bytes, write_json, write_text
from ungrok.errors import UngrokError
from ungrok.executor import Executor, make_executor
from ungrok.experiment import tasks as T
from ungrok.experiment.spec import Experiment, load_experiment, resolve_path
from ungrok.hashing import sha256_text
from ungrok.progress import output_console

EXPERIMENT_COPY = "experiment.yaml"
PHASES = ("pilot", "confirm", "all")


# --------------------------------------------------------------------------- output
@dataclass
class Stage:
    done: int = 0
    skipped: int = 0


@dataclass
class RunSummary:
    out: Path
    stages: dict[str, Stage] = field(default_factory=dict)
    scoreboard: str | None = None
    report: Path | None = None


class _Log:
    """Lines to the console; while a progress bar is live on a terminal, above it."""

    def __init__(self, console: Console):
        self.console = console
        self.progress: Any = None

    def __call__(self, msg: str, style: str | None = None) -> None:
        live = self.progress is not None and self.progress.console.is_terminal
        (self.progress.console if live else self.console).print(msg, style=style, highlight=False,
                                                                soft_wrap=True)

    @contextlib.contextmanager
    def stage(self, name: str, total: int) -> Iterator[Callable[[], None]]:
        from ungrok.progress import bar

        with bar(name, total) as p:
            self.progress = p
            try:
                yield lambda: p.advance(p.task_ids[0], 1)
            finally:
                self.progress = None


def _why(e: BaseException) -> str:
    if isinstance(e, UngrokError):
        return str(e)
    return f"{type(e).__name__}: {e}".rstrip(": ")


# --------------------------------------------------------------------------- preparation
def _battery_files(exp: Experiment, out: Path) -> dict[str, Path]:
    """name -> the battery file the run and the registry use: its copy for a relative path."""
    return {name: resolve_path(out, rel) for name, rel in exp.spec.batteries.items()}


def _input_copies(exp: Experiment, out: Path) -> dict[str, tuple[Path, Path]]:
    """The batteries and the pilot record: (source, the file the run and the registry use)."""
    named = {f"battery {name}": rel for name, rel in exp.spec.batteries.items()}
    if exp.spec.pilot_record is not None:
        named["pilot_record"] = exp.spec.pilot_record
    return {what: (exp.resolve(rel), resolve_path(out, rel)) for what, rel in named.items()}


def prepare_run_dir(exp: Experiment, out: Path) -> None:
    """Write RUN_DIR/experiment.yaml (or check it is this experiment) and copy the batteries
    (and the pilot record) beside it."""
    if out.exists() and not out.is_dir():
        raise UngrokError(f"{out}: exists and is not a folder")
    copy = out / EXPERIMENT_COPY
    if copy.is_file():
        kept = copy.read_text(encoding="utf-8")
        if kept != exp.text and not same_but_mech(kept, exp.text):
            if not (_pilot_only(exp, out) and same_except(kept, exp.text, PILOT_OPEN_KEYS)):
                raise UngrokError(
                    f"{out} holds a run of a different experiment ({copy} differs from {exp.path}); "
                    "choose another --out"
                )
            write_text(copy, exp.text)  # predictions written after the pilot, before the freeze
    elif out.is_dir() and any(out.iterdir()):
        raise UngrokError(
            f"{out}: exists and is not an ungrok run folder (no {EXPERIMENT_COPY}); choose another --out"
        )
    else:
        write_text(copy, exp.text)
    for what, (src, used) in _input_copies(exp, out).items():
        if used == src:
            continue
        data = src.read_bytes()
        if used.is_file():
            if used.read_bytes() != data:
                raise UngrokError(
                    f"{what}: {src} changed since this run began (its copy {used} differs); "
                    "restore it or choose another --out"
                )
        else:
            write_bytes(used, data)


# What may still change after a pilot and before the freeze: what is predicted and which
# confirmatory seeds run. Everything that shaped the pilot runs (cells, training, batteries,
# classifier, pilot_seeds) is fixed by them.
PILOT_OPEN_KEYS = frozenset({"predictions", "measures", "cell_numbers", "seeds", "quarantined_seeds", "mech", "hub"})


def _pilot_only(exp: Experiment, out: Path) -> bool:
    """The folder holds a pilot and nothing confirmatory yet: no registry, no run but pilot runs."""
    from ungrok.prereg import REGISTRY_NAME

    pilots = {f"seed{s}" for s in exp.pilots}
    return (
        bool(pilots)
        and not (out / REGISTRY_NAME).exists()
        and all(p.parent.name in pilots for p in (out / "cells").glob("*/seed*/config.json"))
    )


def same_except(old_text: str, new_text: str, keys: frozenset[str]) -> bool:
    """Two experiment documents that differ at most in the top-level `keys`."""
    import yaml

    try:
        old, new = yaml.safe_load(old_text), yaml.safe_load(new_text)
    except yaml.YAMLError:
        return False
    if not isinstance(old, dict) or not isinstance(new, dict):
        return False
    return {k: v for k, v in old.items() if k not in keys} == {k: v for k, v in new.items() if k not in keys}


def same_but_mech(old_text: str, new_text: str) -> bool:
    """Two experiment documents that differ at most in their `mech:` section.

    The mechanism stage is descriptive (docs/method.md §11): it reads finished runs and feeds no
    verdict, gate or scoreboard, so adding it to (or changing it in) a running or finished
    experiment changes nothing that was registered. Such a run folder resumes; it keeps its
    own experiment.yaml (the registry's hash covers that copy), and the `.done-mech` markers
    record which rules and instruments ran."""
    return same_except(old_text, new_text, frozenset({"mech"}))


def _training_started(exp: Experiment, out: Path) -> bool:
    """Has a confirmatory (governed or quarantined) run begun? Pilot runs precede the freeze."""
    return any(any((out / "cells").glob(f"*/seed{s}/config.json")) for s in exp.seeds + exp.quarantined)


def preregister(exp: Experiment, out: Path, log: _Log) -> None:
    """Freeze the registry before any training, or verify the frozen one (a change stops the run)."""
    from ungrok.prereg import REGISTRY_NAME, freeze, freeze_warnings
    from ungrok.prereg.integrity import check_run

    reg = out / REGISTRY_NAME
    if reg.exists():
        integ = check_run(reg)  # the check `prereg verify` makes: a broken registry or ledger stops the run
        if not integ.changed:
            log(f"registry: {reg} verified (nothing changed since it was frozen)")
            return
        log(f"registry: {reg} and its ledger verified, but {len(integ.changed)} result file(s) changed since "
            "their first read; the predictions reading them will be UNSCOREABLE", style="red")
        for c in integ.changed:
            log(f"registry: changed: {c.line()}", style="red")
        return
    if not exp.needs_registry:
        return
    if _training_started(exp, out):
        raise UngrokError(
            f"{reg} is missing but training has already started in {out}; predictions must be frozen "
            "before training, so this run folder cannot be pre-registered any more"
        )
    r = freeze(out / EXPERIMENT_COPY, out, rules_dir=exp.rules_dir)
    log(f"registry: frozen {reg} before any training ({len(r.predictions)} prediction(s), "
        f"quarantined seeds {r.seeds.quarantined or 'none'}); sha256 {r.sha256}")
    if r.pilot is not None:
        bound = f"{len(r.pilot.reads)} pilot read(s)" if r.pilot.reads else "no pilot reads at freeze"
        log(f"registry: bound {bound}" + (f" and pilot record {r.pilot.record.path}" if r.pilot.record else ""))
    for line in freeze_warnings(r):
        log(f"registry: warning: {line}: it can only be UNSCOREABLE")


# --------------------------------------------------------------------------- stages
def build_corpora(exp: Experiment, out: Path, log: _Log) -> Stage:
    st = Stage()
    batteries = list(_battery_files(exp, out).values())
    todo = []
    for cell in exp.order:
        m = T.read_marker(T.cell_dir(out, cell), "corpus")
        if m is None:
            todo.append(cell)
            continue
        st.skipped += 1
        if exp.cells[cell].kind == "built":  # the one input outside the run folder
            now = T.manifest_sha256(T.corpus_dir(out, cell))
            if now != m.get("manifest_sha256"):
                raise UngrokError(
                    f"cell {cell}: corpus {m.get('path')} changed since this run used it (manifest sha256 "
                    f"{str(m.get('manifest_sha256'))[:12]}… -> {now[:12]}…); restore it or choose another --out"
                )
    if st.skipped:
        log(f"corpora: {st.skipped} done earlier, skipped")
    with log.stage("corpora", len(todo)) as advance:
        for cell in todo:
            t0 = time.perf_counter()
            info = T.build_cell_corpus(exp, cell, out, batteries)
            T.write_marker(T.cell_dir(out, cell), "corpus", info)
            st.done += 1
            advance()
            log(
                f"corpus {cell}: {info['kind']}, {info['tokens']:,} tokens in {time.perf_counter() - t0:.1f}s"
            )
    return st


def count_support(exp: Experiment, out: Path, log: _Log) -> Stage:
    st = Stage()
    if not exp.rules:
        log("support: no rule to count (rules: is empty and no battery family is a rule)")
        return st
    known: dict[str, Path] = {}
    todo = []
    for cell in exp.cells:
        m = T.read_marker(T.cell_dir(out, cell), "support")
        if m is None:
            todo.append(cell)
        else:
            st.skipped += 1
            known.setdefault(m.get("manifest_sha256", ""), T.cell_dir(out, cell) / "support.json")
    if st.skipped:
        log(f"support: {st.skipped} cell(s) done earlier, skipped")
    with log.stage("support", len(todo)) as advance:
        for cell in todo:
            cdir = T.cell_dir(out, cell)
            sha = T.manifest_sha256(T.corpus_dir(out, cell))
            if sha in known:  # the same corpus under another cell (a budget cell): counted once
                result = json.loads(known[sha].read_text(encoding="utf-8"))
            else:
                result = T.count_cell_support(T.corpus_dir(out, cell), exp.rules, exp.rules_dir)
            write_json(cdir / "support.json", result)
            T.write_marker(cdir, "support", {"manifest_sha256": sha, "rules": list(exp.rules)})
            known[sha] = cdir / "support.json"
            st.done += 1
            advance()
    return st


def _train_doc(exp: Experiment, out: Path, cell: str, seed: int) -> dict[str, Any]:
    from ungrok.edit.rescue import PHASE_B, PHASE_FILE
    from ungrok.experiment.spec import deep_merge
    from ungrok.yamlfile import load_yaml

    doc = {**exp.train_docs[cell], "seed": seed}
    phase = T.corpus_dir(out, cell) / PHASE_FILE
    if phase.is_file():  # a windowed rescue: its sampler switches to phase_b at the window's edge
        sampler = load_yaml(phase, "rescue phase file")["sampler"]
        sampler["phase_b"]["data"] = str(T.corpus_dir(out, cell) / PHASE_B)  # where the run folder is now
        doc = deep_merge(doc, {"sampler": sampler})
    return doc


def run_jobs(
    exp: Experiment, out: Path, executor: Executor, threads: int | None, log: _Log, pilot: bool = False,
) -> Stage:
    """Train + score every (cell, seed) not finished yet (the governed and quarantined seeds, or
    the pilot seeds); a failure is logged as one line, and once every other task has finished
    and kept its work, raised with the first. Each start is noted in the ledger first."""
    from ungrok.prereg.ledger import record_start

    st = Stage()
    batteries = tuple(map(str, _battery_files(exp, out).values()))
    todo = exp.pilots if pilot else exp.seeds + exp.quarantined
    jobs = []
    for cell in exp.cells:
        for seed in todo:
            if T.read_marker(T.seed_dir(out, cell, seed), "score") is not None:
                st.skipped += 1
                continue
            record_start(out, cell, seed)
            jobs.append(T.RunJob(
                run_dir=str(out), cell=cell, seed=seed, train_doc=_train_doc(exp, out, cell, seed),
                batteries=batteries, monitor_rules=exp.monitor_rules,
                classifier=exp.classifier.model_dump(mode="json"),
                rules_dir=None if exp.rules_dir is None else str(exp.rules_dir), threads=threads,
            ))
    if st.skipped:
        log(f"runs: {st.skipped} (cell, seed) run(s) done earlier, skipped")
    failures: list[str] = []
    quarantined, pilots = set(exp.quarantined), set(exp.pilots)
    with log.stage("runs", len(jobs)) as advance:
        for job, result in executor.map(T.run_cell_seed, jobs) if jobs else ():
            advance()
            tag = f"cell {job.cell} seed {job.seed}" + (" (quarantined)" if job.seed in quarantined else "")
            tag += " (pilot)" if job.seed in pilots else ""
            if isinstance(result, BaseException):
                failures.append(f"{tag}: {_why(result)}")
                log(f"failed: {failures[-1]}", style="red")
                continue
            st.done += 1
            parts = []
            if "train" in result:
                loss = result.get("final_loss")
                parts.append(f"{result['train']} {result['steps']} steps"
                             + (f", final loss {loss:.3f}" if loss is not None else ""))
            if "scored" in result:
                parts.append(f"scored {result['scored']} checkpoints")
            log(f"run {tag}: {'; '.join(parts) or 'done'} ({result['seconds']:.1f}s in all)")
    if failures:
        n = len(failures)
        raise UngrokError(f"{n} {'pilot ' if pilot else ''}run(s) failed ({failures[0]}{'; ...' if n > 1 else ''}); "
                          "the finished work is kept, rerun the same command to retry the failed runs")
    return st


def classify(exp: Experiment, out: Path, log: _Log, pilot: bool = False) -> tuple[Stage, list[dict[str, Any]]]:
    """fates.json over the governed seeds (never the quarantined ones); with `pilot`,
    pilot_fates.json over the pilot seeds, which nothing downstream scores."""
    from ungrok.prereg import REGISTRY_NAME, load_registry
    from ungrok.prereg.pilot import PILOT_FATES

    step, seeds, what = ("pilot-classify", exp.pilots, "pilot") if pilot else ("classify", exp.seeds, "governed")
    path = out / (PILOT_FATES if pilot else "fates.json")
    if T.read_marker(out, step) is not None:
        log(f"{step}: done earlier, skipped")
        return Stage(skipped=1), json.loads(path.read_text(encoding="utf-8"))["records"]
    reg_path = out / REGISTRY_NAME
    reg = load_registry(reg_path) if reg_path.exists() else None
    records: list[dict[str, Any]] = []
    with log.stage(step, len(exp.cells) * len(seeds)) as advance:
        for cell in exp.cells:
            for seed in seeds:
                records += T.classify_run(out, cell, seed, exp.classifier, reg)
                advance()
    cfg = exp.classifier
    doc = {"classifier_sha256": cfg.sha256(), "classifier": cfg.model_dump(mode="json"), "records": records}
    _write_result(out, path, doc, bound=reg is not None and not pilot)
    T.write_marker(out, step, {"records": len(records), "classifier_sha256": cfg.sha256()})
    log(f"{step}: {len(records)} verdicts ({len(exp.cells)} cells x {len(seeds)} {what} seeds) -> {path}"
        + (" (exploratory, never scored)" if pilot else ""))
    return Stage(done=1), records


def _write_result(out: Path, path: Path, doc: Any, bound: bool) -> None:
    """Write a run-level result a verdict reads (fates.json, gates.json). In a registered run its
    sha256 goes into the ledger first, so a later edit of the file, or a ledger that lost
    the record, is caught by `prereg verify` and scored UNSCOREABLE (prereg/integrity.py)."""
    from ungrok.prereg.ledger import record_result

    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"  # what write_json writes
    if bound:
        record_result(out, path.name, sha256_text(text))
    write_text(path, text)


def gate_cells(exp: Experiment, out: Path, records: list[dict[str, Any]], log: _Log) -> tuple[Stage, dict]:
    path = out / "gates.json"
    if T.read_marker(out, "gates") is not None:
        log("gates: done earlier, skipped")
        return Stage(skipped=1), json.loads(path.read_text(encoding="utf-8"))
    gates = {}
    for cell in exp.cells:
        g = T.cell_gate(exp, cell, records)
        if g is not None:
            gates[cell] = g
            log(f"gate {cell} ({g['kind']}): {g['label']}" + ("" if g["valid"] else f" ({g['summary']})"))
    from ungrok.prereg import REGISTRY_NAME

    _write_result(out, path, gates, bound=(out / REGISTRY_NAME).exists())
    T.write_marker(out, "gates", {"cells": len(gates)})
    return Stage(done=1), gates


def scoreboard(exp: Experiment, out: Path, records: list[dict[str, Any]], gates: Mapping[str, Any],
               log: _Log) -> tuple[Stage, str | None]:
    from ungrok.prereg import REGISTRY_NAME, Evidence, score, write_scoreboard
    from ungrok.prereg.integrity import check_run

    board_path = out / "scoreboard.json"
    if not exp.has_predictions:
        return Stage(), None
    if (done := T.read_marker(out, "scoreboard")) is not None:
        line = done.get("summary")
        log(f"scoreboard: done earlier, skipped ({line})")
        return Stage(skipped=1), line
    integ = check_run(out / REGISTRY_NAME)  # the check `prereg verify` and `prereg score` make
    reg = integ.registry
    evidence = Evidence.model_validate({
        "classifier_sha256": exp.classifier.sha256(), "records": records,
        "cells": T.cell_numbers(exp), "families": T.family_numbers(out, exp),
    })
    write_json(out / "evidence.json", evidence.model_dump(mode="json", exclude_unset=True))
    invalid = {c: g["summary"] for c, g in gates.items() if not g["valid"]}
    board = score(reg, evidence, invalid, ledger=integ.ledger, changed=integ.changed)
    write_scoreboard(board_path, board, force=True)
    line = board.summary.line()
    T.write_marker(out, "scoreboard", {"summary": line, "registry_head_sha256": reg.head_sha256})
    log(f"scoreboard: {line} -> {board_path}")
    return Stage(done=1), line


def mechanisms(
    exp: Experiment, out: Path, executor: Executor, threads: int | None, log: _Log
) -> tuple[Stage, list[str]]:
    """`ungrok mech` on every governed (cell, seed) once the verdicts are in (docs/method.md §11).

    Descriptive: it runs after classify, gates and the scoreboard and feeds none of them.
    Quarantined seeds are never read. Each seed folder gets traj.mech.parquet (and
    traj.ngram.parquet) and a `.done-mech` marker naming the rules and instruments; the
    instruments themselves resume per checkpoint, so a rerun after a failure redoes only
    what is missing."""
    from ungrok.mech.run import MechJob, run_mech_job

    st = Stage()
    m = exp.spec.mech
    if m is None:
        return st, []
    want = {"rules": list(m.rules), "instruments": list(m.instruments)}
    batteries = tuple(map(str, _battery_files(exp, out).values()))
    jobs = []
    for cell in exp.cells:
        if m.cells is not None and cell not in m.cells:
            continue
        for seed in exp.seeds:
            folder = T.seed_dir(out, cell, seed)
            done = T.read_marker(folder, "mech")
            if done is not None and {k: done.get(k) for k in want} == want:
                st.skipped += 1
                continue
            jobs.append(MechJob(
                run_dir=str(folder), run_name=f"{cell}/seed{seed}", rules=tuple(m.rules),
                instruments=tuple(m.instruments), batteries=batteries,
                rules_dir=None if exp.rules_dir is None else str(exp.rules_dir), threads=threads,
                min_step=exp.classifier.min_step,
            ))
    if st.skipped:
        log(f"mech: {st.skipped} run(s) done earlier, skipped")
    failures: list[str] = []
    t0 = time.perf_counter()
    with log.stage("mech", len(jobs)) as advance:
        for job, result in executor.map(run_mech_job, jobs) if jobs else ():
            advance()
            if isinstance(result, BaseException):
                failures.append(f"{job.run_name}: {_why(result)}")
                log(f"mech failed: {failures[-1]}", style="red")
                continue
            T.write_marker(Path(job.run_dir), "mech", {**want, **result})
            st.done += 1
    if jobs:
        log(f"mech: {st.done} run(s) in {time.perf_counter() - t0:.1f}s ({', '.join(m.rules)}; "
            f"{', '.join(m.instruments)}) -> cells/*/seed*/traj.mech.parquet")
    return st, failures


def hub_suite(exp: Experiment, out: Path, ex: Executor, log: _Log) -> Stage:
    """Score the hub section's public checkpoints into RUN_DIR/hub/ and classify them (issue 8).

    Models sharing a revision grid go to one `score_suite` call; every call resumes (a
    scored revision is skipped); a model or revision that is not there is named, skipped
    and listed, and a task that failed is logged as `hub: failed ...` and kept as failed in
    suite.json (a rerun retries it). The classification and the depth-by-scale statistic
    are derived from the folder's tables and rewritten each time."""
    from ungrok.hub.scale import classify_suite
    from ungrok.hub.suite import score_suite

    h = exp.spec.hub
    if h is None:
        return Stage()
    files = _battery_files(exp, out)
    battery = files[h.battery or next(iter(files))]
    folder = out / "hub"
    groups: dict[str, tuple[str | list[str], list[str]]] = {}
    for m in h.models:
        rev = h.revisions_for(m)
        assert rev is not None  # load_experiment checked every model has a grid
        groups.setdefault(json.dumps(rev), (rev, []))[1].append(m)
    st = Stage()
    t0 = time.perf_counter()
    for rev, models in groups.values():
        summary = score_suite(models, rev, battery, folder, margins=h.margins, executor=ex, device=h.device,
                              dtype=h.dtype, offline=h.offline, rules_dir=exp.rules_dir)
        for line in summary.lines():
            log(f"hub: {line}")
        st.done += summary.scored
        st.skipped += summary.already
    fates = classify_suite(folder, cfg=exp.classifier, family=h.family, n_boot=h.n_boot,
                           scale_models=h.scale_models)
    sc = fates["scale"]
    rho = "undefined" if sc.get("rho") is None else f"{sc['rho']:+.3f}"
    ci = "" if not sc.get("ci") else f" [{sc['ci'][0]:+.2f}, {sc['ci'][1]:+.2f}]"
    log(f"hub: {len(h.models)} model(s) in {time.perf_counter() - t0:.1f}s; depth by scale ({sc.get('family')}): "
        f"rho {rho}{ci} -> {folder / 'hub_fates.json'}")
    return st


def write_report(out: Path, log: _Log) -> Path:
    """experiment.json and report.html are derived: rebuilt on every run."""
    from ungrok.report import build_report, load_report

    t0 = time.perf_counter()
    path = build_report(load_report(out), out / "report.html", force=True)
    log(f"report: {path} in {time.perf_counter() - t0:.1f}s")
    return path


def pilot_phase(exp: Experiment, out: Path, ex: Executor, threads: int | None, log: _Log,
                summary: RunSummary) -> None:
    """Corpora, support, and the pilot seeds trained, scored and classified (every read in the
    ledger). Refused once a registry is frozen with pilot work left: the pilot precedes the freeze."""
    from ungrok.prereg import REGISTRY_NAME

    if (out / REGISTRY_NAME).exists():
        if T.read_marker(out, "pilot-classify") is not None:
            log("pilot: done earlier, skipped")
            return
        raise UngrokError(f"{out / REGISTRY_NAME} is already frozen; pilot runs precede the freeze, so run the "
                          "pilot in a fresh --out folder")
    summary.stages["corpora"] = build_corpora(exp, out, log)
    summary.stages["support"] = count_support(exp, out, log)
    summary.stages["pilot runs"] = run_jobs(exp, out, ex, threads, log, pilot=True)
    summary.stages["pilot classify"], _ = classify(exp, out, log, pilot=True)


# --------------------------------------------------------------------------- the run
def run_experiment(
    experiment: str | Path,
    out: str | Path,
    *,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    console: Console | None = None,
    phase: str = "confirm",
    _executor: Executor | None = None,
) -> RunSummary:
    """Run (or resume) every step of `experiment` into the run folder `out`.

    `phase`: "confirm" (the pre-registered run), "pilot" (only the pilot seeds, before any
    freeze) or "all" (pilot, then confirm).

    Raises UngrokError with one line for bad input, a tampered registry, a different
    experiment in `out`, or when (cell, seed) tasks failed (after every other task has
    finished and kept its work; a rerun retries only the failed ones).
    """
    out = Path(out)
    if phase not in PHASES:
        raise UngrokError(f"--phase {phase!r}: use {', '.join(PHASES)}")
    log = _Log(console or output_console())
    ex = _executor or make_executor(executor, workers, address)
    # worker processes split the cores; this process's own torch threads are left as they are
    threads = getattr(ex, "threads", None)
    exp = load_experiment(experiment, overrides)
    if phase != "confirm" and not exp.pilots:
        raise UngrokError(f"--phase {phase}: {exp.path} declares no pilot_seeds")
    summary = RunSummary(out)
    prepare_run_dir(exp, out)
    write_json(out / "experiment.json", T.experiment_json(exp))
    if phase in ("pilot", "all"):
        pilot_phase(exp, out, ex, threads, log, summary)
    if phase == "pilot":
        summary.report = write_report(out, log)
        log(f"pilot finished: {out} ({len(exp.cells)} cells x {len(exp.pilots)} pilot seeds); freeze and confirm "
            "with `ungrok run` (phase confirm)")
        return summary
    preregister(exp, out, log)
    summary.stages["corpora"] = build_corpora(exp, out, log)
    summary.stages["support"] = count_support(exp, out, log)
    summary.stages["runs"] = run_jobs(exp, out, ex, threads, log)
    summary.stages["classify"], records = classify(exp, out, log)
    summary.stages["gates"], gates = gate_cells(exp, out, records, log)
    summary.stages["scoreboard"], summary.scoreboard = scoreboard(exp, out, records, gates, log)
    # the hub stage runs on the executor the flags name (a test's `_executor` drives the runs only)
    hub_ex = ex if _executor is None else make_executor(executor, workers, address)
    summary.stages["hub"] = hub_suite(exp, out, hub_ex, log)
    summary.stages["mech"], mech_failures = mechanisms(exp, out, ex, threads, log)
    summary.report = write_report(out, log)
    if mech_failures:
        n = len(mech_failures)
        raise UngrokError(
            f"the mechanism stage failed for {n} run(s) ({mech_failures[0]}{'; ...' if n > 1 else ''}); "
            "verdicts, gates and the scoreboard are complete and unaffected; rerun the same command to retry"
        )
    log(f"finished: {out} ({len(exp.cells)} cells x {len(exp.seeds) + len(exp.quarantined)} seeds)")
    return summary


def parse_sets(items: Iterable[str]) -> dict[str, Any]:
    """`--set a.b.c=VALUE` (VALUE read as YAML; null deletes the key) -> a nested override mapping."""
    import yaml

    over: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UngrokError(f"--set {item!r}: expected KEY=VALUE, e.g. train.sampler.steps=50")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise UngrokError(f"--set {item!r}: empty key part")
        node = over
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise UngrokError(f"--set {item!r}: {p} is set to a value and a mapping")
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UngrokError(f"--set {item!r}: the value is not valid YAML") from None
    return over
