"""`ungrok mech`: every mechanism instrument over one training run, into its trajectory store.

Order, each part resumable:
1. per checkpoint, loaded once: the logit-gap decomposition, the head report (which
   reuses that decomposition) and cue decodability, for every rule; the store is saved
   after each checkpoint, so an interruption loses one checkpoint at most;
2. the pair the paper reads (docs/method.md §5.2, §11.4): the *peak* = argmax of the run's raw CM
   (from traj.margins.parquet when it covers every checkpoint with these margin prompts,
   else computed on the fly; ties go to the later step) and the *final* checkpoint;
   activation patching peak -> final and final -> peak;
3. direction removal at the peak and at the final checkpoint;
4. the n-gram baseline over the run's served stream (RUN/traj.ngram.parquet).

Which instruments exist, and where each runs, is `mech.instruments.REGISTRY`; the stages here
dispatch on it. A unit (run, step, rule, instrument) already in RUN/traj.mech.parquet with the same
prompts_sha256 is skipped; `force` recomputes everything asked for. Everything here is
descriptive (docs/method.md §11): no verdict reads it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ungrok.errors import UngrokError, first_error_line
from ungrok.fate.config import DEFAULT_CONFIG
from ungrok.mech.instruments import EVERY, PAIR, REGISTRY, RUN, Ctx, Instrument, RunCtx
from ungrok.mech.store import ALL_INSTRUMENTS, MECH_FILE, MechStore


# --------------------------------------------------------------------------- results
@dataclass
class RuleRun:
    """Where one rule's pair landed."""

    rule: str
    prompts_sha256: str
    final: int
    peak: int | None = None  # None when no instrument needed it
    peak_cm: float | None = None
    cm_from: str | None = None  # "traj.margins.parquet" or "computed"
    cms: dict[int, float] = field(default_factory=dict)  # raw CM per step, where it was read or computed
    notes: list[str] = field(default_factory=list)


@dataclass
class MechSummary:
    run_dir: Path
    run: str
    instruments: tuple[str, ...]
    checkpoints: list[int]
    rules: dict[str, RuleRun]
    computed: dict[str, int]  # units computed per store instrument
    skipped: dict[str, int]  # units already present
    store: Path
    ngram: Path | None
    seconds: float
    loads: int  # checkpoint loads


# --------------------------------------------------------------------------- inputs
def parse_instruments(only: str | Iterable[str] | None) -> tuple[str, ...]:
    """`decomp,heads` (or a list) -> the instruments in run order; unknown names are one error line."""
    if only is None:
        return ALL_INSTRUMENTS
    names = [x.strip() for x in (only.split(",") if isinstance(only, str) else only) if x.strip()]
    bad = [n for n in names if n not in ALL_INSTRUMENTS]
    if bad:
        raise UngrokError(f"unknown instrument {bad[0]!r}; use {', '.join(ALL_INSTRUMENTS)}")
    if not names:
        raise UngrokError(f"no instrument named; use {', '.join(ALL_INSTRUMENTS)}")
    return tuple(i for i in ALL_INSTRUMENTS if i in names)


def experiment_batteries(run_dir: Path) -> list[Path] | None:
    """The batteries of the experiment a seed folder (RUN/cells/<cell>/seed<N>) belongs to, or None."""
    import yaml

    run_dir = Path(run_dir).resolve()
    root = run_dir.parent.parent.parent
    if run_dir.parent.parent.name != "cells" or not (root / "experiment.yaml").is_file():
        return None
    try:
        doc = yaml.safe_load((root / "experiment.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise UngrokError(f"{root / 'experiment.yaml'}: unreadable ({e})") from None
    bats = doc.get("batteries") if isinstance(doc, dict) else None
    if not isinstance(bats, dict) or not bats:
        return None
    out = []
    for rel in bats.values():
        p = Path(str(rel)).expanduser()
        out.append(p if p.is_absolute() else root / p)  # the run folder keeps a copy at the same path
    return out


def run_classifier(run_dir: Path) -> tuple[Any, Path | None]:
    """The classifier constants a run is read with, and the file they come from (None: the defaults).

    In order: the frozen registry (RUN_DIR/registry.json, or for an experiment seed folder
    ROOT/cells/<cell>/seed<N> the experiment's ROOT/registry.json), hash-checked; else a
    seed folder's ROOT/experiment.yaml `classifier:` section (an experiment without
    predictions freezes no registry); else, for a plain `ungrok train` run folder, the
    default constants. A registry or experiment file that exists but cannot be read, or
    whose constants are invalid, is one error line naming it: never a silent default.
    """
    from pydantic import ValidationError

    from ungrok.fate.config import ClassifierConfig
    from ungrok.prereg.ledger import REGISTRY_NAME
    from ungrok.prereg.registry import load_registry
    from ungrok.yamlfile import load_yaml

    run_dir = Path(run_dir).resolve()
    seed_root = run_dir.parent.parent.parent if run_dir.parent.parent.name == "cells" else None
    for folder in (run_dir, seed_root):
        if folder is not None and (folder / REGISTRY_NAME).exists():
            path = folder / REGISTRY_NAME
            try:
                return load_registry(path).classifier_config(), path  # UngrokError naming the file otherwise
            except OSError as e:
                raise UngrokError(f"{path}: unreadable ({e})") from None
    if seed_root is None or not (seed_root / "experiment.yaml").exists():
        return DEFAULT_CONFIG, None
    exp = seed_root / "experiment.yaml"
    try:
        doc = load_yaml(exp, "experiment file")
    except OSError as e:
        raise UngrokError(f"{exp}: unreadable ({e})") from None
    section = doc.get("classifier") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(section, (dict, type(None))):
        raise UngrokError(f"{exp}: no readable classifier section (expected a mapping)")
    try:
        return ClassifierConfig(**(section or {})), exp
    except ValidationError as e:
        raise UngrokError(first_error_line(e, f"{exp}: classifier", top="")) from None
    except TypeError as e:
        raise UngrokError(f"{exp}: classifier: {e}") from None


def resolve_battery(run_dir: Path, battery: str | Path | Sequence[str | Path] | None) -> Any:
    """The battery files named (else the experiment's), loaded as one Battery."""
    from ungrok.probes.battery import Battery, load_battery

    if battery is None:
        found = experiment_batteries(run_dir)
        if found is None:
            raise UngrokError(
                f"{run_dir}: not a seed folder of an experiment (RUN/cells/<cell>/seed<N>); pass --battery FILE "
                "(the battery the run was scored with)"
            )
        paths: list[str | Path] = list(found)
    elif isinstance(battery, (str, Path)):
        paths = [battery]
    else:
        paths = list(battery)
    for p in paths:
        if not Path(p).is_file():
            raise UngrokError(f"{p}: battery file not found")
    bats = [load_battery(p) for p in paths]
    if len(bats) == 1:
        return bats[0]
    # an experiment may split its families over several files: one Battery of every item
    return Battery(tuple(it for b in bats for it in b.items), source=" + ".join(str(p) for p in paths))


# --------------------------------------------------------------------------- the peak
def peak_step(cms: Mapping[int, float], min_step: int = 0) -> tuple[int, float]:
    """Argmax of the raw CM over steps >= min_step; ties go to the later step (docs/method.md §5.2).

    The window is the classifier's (the CM instrument guard reads the same steps): over
    all steps, a run whose CM never rose above step 0's exact 0 would "peak" at the
    untrained model, and patching against step 0 says nothing. With no finite CM at or
    after min_step, every step is used.
    """
    finite = {s: cm for s, cm in cms.items() if not math.isnan(cm)}
    if not finite:
        raise UngrokError("no checkpoint has a finite contrast margin; the peak is undefined")
    late = {s: cm for s, cm in finite.items() if s >= min_step}
    pool = late or finite
    step = max(pool, key=lambda s: (pool[s], s))
    return step, pool[step]


def margins_from_table(run_dir: Path, run: str, rule: str, steps: Sequence[int],
                       rules_dir: str | Path | None) -> dict[int, float] | None:
    """The rule's raw CM per checkpoint from RUN/traj.margins.parquet, if it covers every step with
    the rule's current margin prompts; else None (the CM is then computed)."""
    from ungrok.probes.margins import margin_prompt_set
    from ungrok.probes.trajectories import MARGIN_COLUMNS, read_rows
    from ungrok.rules.registry import get_rule

    path = Path(run_dir) / "traj.margins.parquet"
    if not path.is_file():
        return None
    sha = margin_prompt_set(get_rule(rule, rules_dir), rules_dir).sha256
    cms = {int(r["step"]): float(r["cm"]) for r in read_rows(path, MARGIN_COLUMNS, "margin table")
           if r["run"] == run and r["rule"] == rule and r["prompts_sha256"] == sha and r["cm"] is not None}
    return cms if all(s in cms for s in steps) else None


# --------------------------------------------------------------------------- the run
@dataclass
class _Job:
    """What the stages of one `mech_run` share: inputs, the store, the model cache and the counts."""

    run_dir: Path
    name: str
    insts: tuple[str, ...]
    force: bool
    tok: Any
    battery: Any
    prompts: dict[str, Any]  # rule -> MechPrompts
    store: MechStore
    by_step: dict[int, Any]  # step -> checkpoint
    out: dict[str, RuleRun]
    computed: dict[str, int]
    skipped: dict[str, int]
    loads: int = 0
    recent: dict[int, Any] = field(default_factory=dict)  # the last two models loaded (the pair's)
    run_memo: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> list[int]:
        return list(self.by_step)

    def where(self, where: str) -> list[Instrument]:
        return [REGISTRY[i] for i in self.insts if REGISTRY[i].where == where]

    def load(self, step: int) -> Any:
        from ungrok.model import load_checkpoint

        if step not in self.recent:
            self.loads += 1
            if len(self.recent) == 2:
                del self.recent[next(iter(self.recent))]
            self.recent[step] = load_checkpoint(self.by_step[step]).model  # instruments never write weights
        return self.recent[step]

    def todo(self, step: int, rule: str, inst: str) -> bool:
        if self.force or not self.store.has(self.name, step, rule, inst, self.out[rule].prompts_sha256):
            return True
        self.skipped[inst] += 1
        return False

    def ctx(self, step: int, rule: str, pair: tuple[int, int] | None = None) -> Ctx:
        return Ctx(self.load(step), self.prompts[rule], step, self.run_dir, self.tok,
                   run_memo=self.run_memo, pair=pair, load=self.load)

    def rows(self, inst: Instrument, c: Ctx, rule: str) -> list[dict[str, Any]]:
        """One unit: the instrument's rows at c.step, counted."""
        self.computed[inst.name] += 1
        return inst.fn(c).rows(self.name, c.step, rule, self.out[rule].prompts_sha256)


def mech_run(
    run_dir: Path,
    rules: list[str],
    battery: Path | Sequence[Path] | None = None,
    tokenizer: Path | None = None,
    instruments: str | Iterable[str] = ALL_INSTRUMENTS,
    force: bool = False,
    progress: bool = True,
    *,
    rules_dir: str | Path | None = None,
    run_name: str | None = None,
    log: Callable[[str], None] | None = None,
    min_step: int = DEFAULT_CONFIG.min_step,
) -> MechSummary:
    """Run the asked-for instruments over every checkpoint of `run_dir` for each rule; resumable.

    Raises UngrokError (one line) for an unknown rule, a rule without margin prompts or with
    a multi-token target, a run without checkpoints, a damaged checkpoint, or a missing battery.
    """
    t0 = time.perf_counter()
    job = _setup(run_dir, rules, battery, tokenizer, instruments, force, rules_dir, run_name)
    pair_needed = bool(job.where(PAIR))
    table_cms = {r: margins_from_table(job.run_dir, job.name, r, job.steps, rules_dir) for r in job.out}
    need_cm = [r for r in job.out if pair_needed and table_cms[r] is None]
    cms = _every_checkpoint(job, need_cm, progress)
    _find_pairs(job, table_cms, cms, pair_needed, min_step)
    for inst in job.where(PAIR):
        for r in job.out:
            (_partnered if inst.partnered else _at_pair)(job, inst, r)
    ngram_path = None
    for inst in job.where(RUN):
        ngram_path = inst.fn(RunCtx(job.run_dir, job.battery, job.name, force, progress))
    if not job.store.path.exists() and any(REGISTRY[i].where != RUN for i in job.insts):
        job.store.save()  # nothing to add (e.g. every unit skipped in a fresh copy): leave the empty table
    say = log or (lambda _m: None)
    for rr in job.out.values():
        for n in rr.notes:
            say(n)
    return MechSummary(job.run_dir, job.name, job.insts, job.steps, job.out, job.computed, job.skipped,
                       job.store.path, ngram_path, time.perf_counter() - t0, job.loads)


def _setup(run_dir: Path, rules: list[str], battery: Any, tokenizer: Path | None, instruments: Any, force: bool,
           rules_dir: str | Path | None, run_name: str | None) -> _Job:
    """Check the inputs, build every rule's prompts, open the store."""
    from ungrok.mech.ngram import default_run_name
    from ungrok.mech.prompts import build_prompts
    from ungrok.probes.models import TokenizerFile, run_checkpoints, run_tokenizer_path

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UngrokError(f"{run_dir}: run folder not found")
    insts = parse_instruments(instruments if isinstance(instruments, str) else list(instruments))
    rules = list(dict.fromkeys(rules))
    if not rules:
        raise UngrokError("name at least one rule (--rule R)")
    cks = run_checkpoints(run_dir)
    tok = TokenizerFile.load(run_tokenizer_path(run_dir, tokenizer))
    bat = resolve_battery(run_dir, battery)
    prompts = {r: build_prompts(r, bat, tok, rules_dir) for r in rules}
    stored = [i for i in insts if REGISTRY[i].where != RUN]
    return _Job(run_dir, run_name or default_run_name(run_dir), insts, force, tok, bat, prompts,
                MechStore(run_dir / MECH_FILE), {ck.step: ck for ck in cks},
                {r: RuleRun(r, p.sha256, final=cks[-1].step) for r, p in prompts.items()},
                dict.fromkeys(stored, 0), dict.fromkeys(stored, 0))


def _every_checkpoint(job: _Job, need_cm: list[str], progress: bool) -> dict[str, dict[int, float]]:
    """The EVERY instruments at each checkpoint, the store saved after each; returns the CMs they
    computed (and, for `need_cm`'s rules, the CM the pair is picked by where no table gives it)."""
    import torch

    cms: dict[str, dict[int, float]] = {r: {} for r in job.out}
    every = job.where(EVERY)
    from ungrok.progress import optional_bar

    with torch.no_grad(), optional_bar(progress, "mech checkpoints", len(job.steps)) as advance:
        for step in job.steps:
            need = {r: [i for i in every if job.todo(step, r, i.name)] for r in job.out}
            if any(need.values()) or need_cm:
                rows: list[dict[str, Any]] = []
                for r in job.out:
                    c = job.ctx(step, r)
                    for inst in need[r]:
                        rows += job.rows(inst, c, r)
                    if "cm" in c.memo or r in need_cm:
                        cms[r][step] = c.cm()
                if rows:
                    job.store.put(rows, save=False)
                    job.store.save()
            advance(1)
    return cms


def _find_pairs(job: _Job, table_cms: Mapping[str, dict[int, float] | None], cms: Mapping[str, dict[int, float]],
                pair_needed: bool, min_step: int) -> None:
    """Each rule's peak (argmax raw CM, ties later): read whenever the margin table gives it (free),
    computed only when a PAIR instrument needs it."""
    for r, rr in job.out.items():
        source = table_cms[r]
        if source is not None or pair_needed:
            rr.cm_from = "traj.margins.parquet" if source is not None else "computed"
            rr.cms = dict(source if source is not None else cms[r])
            rr.peak, rr.peak_cm = peak_step(rr.cms, min_step)


def _at_pair(job: _Job, inst: Instrument, rule: str) -> None:
    """A PAIR instrument whose units stand alone: each of the peak and final checkpoints, if missing."""
    rr = job.out[rule]
    assert rr.peak is not None
    pair = (rr.peak, rr.final)
    for step in sorted(set(pair)):
        if job.todo(step, rule, inst.name):
            job.store.put(job.rows(inst, job.ctx(step, rule, pair), rule))


def _partnered(job: _Job, inst: Instrument, rule: str) -> None:
    """A partnered PAIR instrument (patch): both units together, rows of an earlier pair dropped."""
    rr, name, store = job.out[rule], inst.name, job.store
    assert rr.peak is not None
    if rr.peak == rr.final:
        rr.notes.append(f"{name}: the CM peaks at the final checkpoint (step {rr.final}); no pair to {name}")
        stale = [(job.name, s, rule, name) for s in store.steps(job.name, rule, name)]
        if stale:
            store.drop(stale)
        return
    pair = (rr.peak, rr.final)
    if not job.force and _pair_current(job, inst, rule, pair):
        job.skipped[name] += 2
        return
    old = [s for s in store.steps(job.name, rule, name) if s not in pair]
    if old:
        rr.notes.append(f"{name}: replaced the rows of an earlier peak/final pair (steps {old})")
        store.drop([(job.name, s, rule, name) for s in old], save=False)
    rows = [row for step in (rr.final, rr.peak) for row in job.rows(inst, job.ctx(step, rule, pair), rule)]
    store.put(rows)


def _pair_current(job: _Job, inst: Instrument, rule: str, pair: tuple[int, int]) -> bool:
    """Rows exist for exactly this peak/final pair, with these prompts (and, if the instrument can
    tell, computed as this pair)."""
    store, sha = job.store, job.out[rule].prompts_sha256
    if set(store.steps(job.name, rule, inst.name)) != set(pair):
        return False
    if not all(store.has(job.name, s, rule, inst.name, sha) for s in pair):
        return False
    return inst.same_pair is None or inst.same_pair(store.select(job.name, rule, inst.name), *pair)


# --------------------------------------------------------------------------- the experiment task
@dataclass(frozen=True)
class MechJob:
    """One governed seed folder of an experiment; plain values only, so it pickles to any worker."""

    run_dir: str
    run_name: str
    rules: tuple[str, ...]
    instruments: tuple[str, ...]
    batteries: tuple[str, ...]
    rules_dir: str | None = None
    threads: int | None = None  # torch threads in this worker (None: leave as it is)
    min_step: int = DEFAULT_CONFIG.min_step  # the experiment classifier's: where the CM peak is sought


def run_mech_job(job: MechJob) -> dict[str, Any]:
    """`mech_run` for one (cell, seed); returns what the `.done-mech` marker records."""
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    s = mech_run(Path(job.run_dir), list(job.rules), battery=[Path(b) for b in job.batteries],
                 instruments=job.instruments, progress=False, rules_dir=job.rules_dir, run_name=job.run_name,
                 min_step=job.min_step)
    return {
        "run": s.run,
        "checkpoints": len(s.checkpoints),
        "pairs": {r: {"peak": rr.peak, "final": rr.final, "cm_from": rr.cm_from} for r, rr in s.rules.items()},
        "computed": s.computed,
        "seconds": round(s.seconds, 2),
    }
