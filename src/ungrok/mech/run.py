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

A unit (run, step, rule, instrument) already in RUN/traj.mech.parquet with the same
prompts_sha256 is skipped; `force` recomputes everything asked for. Everything here is
descriptive (docs/method.md §11): no verdict reads it.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ungrok.errors import UngrokError
from ungrok.fate.config import DEFAULT_CONFIG
from ungrok.mech.store import ALL_INSTRUMENTS, MECH_FILE, MechStore

PER_CHECKPOINT = ("decomp", "decode", "heads")
PATCH_METRICS = {"final": "recovery_peak_to_final", "peak": "recovery_final_to_peak"}


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
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise UngrokError(f"{exp}: classifier: {loc}: {first['msg'].removeprefix('Value error, ')}") from None
    except TypeError as e:
        raise UngrokError(f"{exp}: classifier: {e}") from None


def load_batteries(paths: Sequence[str | Path]) -> Any:
    """One Battery of every item of the given files (an experiment may split families over several)."""
    from ungrok.probes.battery import Battery, load_battery

    bats = [load_battery(p) for p in paths]
    if len(bats) == 1:
        return bats[0]
    return Battery(tuple(it for b in bats for it in b.items), source=" + ".join(str(p) for p in paths))


def resolve_battery(run_dir: Path, battery: str | Path | Sequence[str | Path] | None) -> Any:
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
    return load_batteries(paths)


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
                       rules_dir: str | Path | None) -> dict[int, float] | None:  # fmt: skip
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
           if r["run"] == run and r["rule"] == rule and r["prompts_sha256"] == sha and r["cm"] is not None}  # fmt: skip
    return cms if all(s in cms for s in steps) else None


# --------------------------------------------------------------------------- bits-per-byte windows
def training_windows(run_dir: Path, context: int, tokenizer: Any) -> tuple[Any, float]:
    """The first 16 context windows of the run's own training shard stream, and their bytes per token."""
    import numpy as np

    from ungrok.corpus.shards import Corpus
    from ungrok.mech.direction import WINDOWS, bytes_per_token, first_windows
    from ungrok.probes.models import _config_data_path

    data = _config_data_path(Path(run_dir))
    if data is None:
        raise UngrokError(f"{run_dir}: direction needs the run's training corpus, and config.json names none")
    corpus = Corpus(data)
    need = WINDOWS * (context + 1)
    parts, have = [], 0
    for shard in corpus.shards():
        parts.append(np.asarray(shard[: need - have]))
        have += parts[-1].size
        if have >= need:
            break
    windows = first_windows(np.concatenate(parts) if parts else np.zeros(0, np.int64), context + 1)
    return windows, bytes_per_token(windows, lambda ids: tokenizer.tokenizer.decode(ids))


# --------------------------------------------------------------------------- the run
class _Progress:
    """A progress bar when asked for (and on a terminal), else nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, name: str, total: int) -> Any:
        import contextlib

        if not self.enabled:
            return contextlib.nullcontext(lambda _n=1: None)
        from ungrok.progress import bar

        @contextlib.contextmanager
        def cm():  # noqa: ANN202
            with bar(name, total) as p:
                yield lambda n=1: p.advance(p.task_ids[0], n)

        return cm()


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
    import torch

    from ungrok.mech.ngram import default_run_name
    from ungrok.mech.prompts import build_prompts
    from ungrok.probes.models import TokenizerFile, run_checkpoints, run_tokenizer_path

    t0 = time.perf_counter()
    say = log or (lambda _m: None)
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
    name = run_name or default_run_name(run_dir)
    prompts = {r: build_prompts(r, bat, tok, rules_dir) for r in rules}
    shas = {r: p.sha256 for r, p in prompts.items()}
    store = MechStore(run_dir / MECH_FILE)
    steps = [ck.step for ck in cks]
    by_step = {ck.step: ck for ck in cks}
    out = {r: RuleRun(r, shas[r], final=steps[-1]) for r in rules}
    computed = {i: 0 for i in insts if i != "ngram"}
    skipped = {i: 0 for i in insts if i != "ngram"}
    loads = 0

    recent: dict[int, Any] = {}  # the last two models loaded: patching and direction read the same pair

    def load(step: int) -> Any:
        from ungrok.model import load_checkpoint

        nonlocal loads
        if step not in recent:
            loads += 1
            if len(recent) == 2:
                del recent[next(iter(recent))]
            recent[step] = load_checkpoint(by_step[step]).model  # instruments never write weights
        return recent[step]

    def todo(step: int, rule: str, inst: str) -> bool:
        if force or not store.has(name, step, rule, inst, shas[rule]):
            return True
        skipped[inst] += 1
        return False

    pair_needed = any(i in insts for i in ("patch", "direction"))
    table_cms = {r: margins_from_table(run_dir, name, r, steps, rules_dir) for r in rules}
    cms: dict[str, dict[int, float]] = {r: {} for r in rules}

    # 1. per-checkpoint instruments (and the CM, where the margin table does not give it)
    per_ck = [i for i in PER_CHECKPOINT if i in insts]
    with torch.no_grad(), _Progress(progress)("mech checkpoints", len(cks)) as advance:
        for step in steps:
            need = {r: [i for i in per_ck if todo(step, r, i)] for r in rules}
            need_cm = [r for r in rules if pair_needed and table_cms.get(r) is None]
            if any(need.values()) or need_cm:
                model = load(step)
                rows: list[dict[str, Any]] = []
                for r in rules:
                    p, wanted = prompts[r], need[r]
                    dec = None
                    if "decomp" in wanted or "heads" in wanted:
                        from ungrok.mech.decompose import decompose_gap

                        dec = decompose_gap(model, p)
                        if "decomp" in wanted:
                            rows += dec.rows(name, step, r, shas[r])
                    if "heads" in wanted:
                        from ungrok.mech.heads import head_report

                        hr = head_report(model, p, dec)
                        rows += hr.rows(name, step, r, shas[r])
                        cms[r][step] = hr.cm
                    if "decode" in wanted:
                        from ungrok.mech.decode import cue_decodability

                        rows += cue_decodability(model, p).rows(name, step, r, shas[r])
                    if r in need_cm and step not in cms[r]:
                        from ungrok.mech.trace import contrast_margin

                        cms[r][step] = contrast_margin(model, p)
                    for i in wanted:
                        computed[i] += 1
                if rows:
                    store.put(rows, save=False)
                    store.save()
                del model
            advance(1)

    # 2. the pair: peak (argmax raw CM, ties later) and final
    for r in rules:  # the pair is read whenever the margin table gives it (free), computed only if needed
        source = table_cms.get(r)
        if source is not None or pair_needed:
            out[r].cm_from = "traj.margins.parquet" if source is not None else "computed"
            out[r].cms = dict(source if source is not None else cms[r])
            out[r].peak, out[r].peak_cm = peak_step(out[r].cms, min_step)

    # 3. patching, peak <-> final
    if "patch" in insts:
        for r in rules:
            rr = out[r]
            assert rr.peak is not None
            if rr.peak == rr.final:
                rr.notes.append(f"patch: the CM peaks at the final checkpoint (step {rr.final}); no pair to patch")
                stale = [(name, s, r, "patch") for s in store.steps(name, r, "patch")]
                if stale:
                    store.drop(stale)
                continue
            if not force and _patch_current(store, name, r, rr, shas[r]):
                skipped["patch"] += 2
                continue
            from ungrok.mech.patching import patch_components

            peak_m, final_m = load(rr.peak), load(rr.final)
            old = [s for s in store.steps(name, r, "patch") if s not in (rr.peak, rr.final)]
            if old:
                rr.notes.append(f"patch: replaced the rows of an earlier peak/final pair (steps {old})")
                store.drop([(name, s, r, "patch") for s in old], save=False)
            rows = patch_components(peak_m, final_m, prompts[r], "peak_to_final").rows(name, rr.final, r, shas[r])
            rows += patch_components(final_m, peak_m, prompts[r], "final_to_peak").rows(name, rr.peak, r, shas[r])
            store.put(rows)
            computed["patch"] += 2

    # 4. direction removal at the peak and at the final checkpoint
    if "direction" in insts:
        windows: tuple[Any, float] | None = None
        for r in rules:
            rr = out[r]
            for step in sorted({rr.peak, rr.final} - {None}):  # type: ignore[arg-type]
                if not todo(step, r, "direction"):
                    continue
                from ungrok.mech.direction import direction_specificity

                model = load(step)
                if windows is None:
                    windows = training_windows(run_dir, _bpb_context(run_dir, model), tok)
                res = direction_specificity(model, prompts[r], windows[0], windows[1])
                store.put(res.rows(name, step, r, shas[r]))
                computed["direction"] += 1

    # 5. the n-gram baseline over the served stream
    ngram_path = None
    if "ngram" in insts:
        ngram_path = _ngram(run_dir, bat, name, force, progress)
    if not store.path.exists() and any(i in insts for i in PER_CHECKPOINT + ("patch", "direction")):
        store.save()  # nothing to add (e.g. every unit skipped in a fresh copy): leave the empty table
    for r in rules:
        for n in out[r].notes:
            say(n)
    return MechSummary(run_dir, name, insts, steps, out, computed, skipped, store.path, ngram_path,
                       time.perf_counter() - t0, loads)  # fmt: skip


def _patch_current(store: MechStore, run: str, rule: str, rr: RuleRun, sha: str) -> bool:
    """Patch rows exist for exactly this peak/final pair (each at its destination, with its metric)."""
    assert rr.peak is not None
    if set(store.steps(run, rule, "patch")) != {rr.peak, rr.final}:
        return False
    if not (store.has(run, rr.final, rule, "patch", sha) and store.has(run, rr.peak, rule, "patch", sha)):
        return False
    metrics = {(r["step"], r["metric"]) for r in store.select(run, rule, "patch")}
    return metrics == {(rr.final, PATCH_METRICS["final"]), (rr.peak, PATCH_METRICS["peak"])}


def _bpb_context(run_dir: Path, model: Any) -> int:
    """The run's training context (its sampler's), never more than the model's."""
    import json

    try:
        doc = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
        ctx = int(doc["config"]["sampler"]["context"])
    except (OSError, ValueError, KeyError, TypeError):
        ctx = int(model.config.context)
    return min(ctx, int(model.config.context))


def _ngram(run_dir: Path, battery: Any, name: str, force: bool, progress: bool) -> Path:
    """RUN/traj.ngram.parquet (resumed by write_ngram); with force, rebuilt beside it and swapped in whole."""
    from ungrok.mech.ngram import NGRAM_FILE, read_served_run, write_ngram

    dest = run_dir / NGRAM_FILE
    total = read_served_run(run_dir).sampler.steps
    with _Progress(progress)("n-gram counts", total) as advance:
        if not force:
            return write_ngram(run_dir, battery, run_name=name, progress=advance)
        tmp = Path(tempfile.mkdtemp(prefix=f".{NGRAM_FILE}.", dir=run_dir))
        try:
            write_ngram(run_dir, battery, run_name=name, out=tmp / NGRAM_FILE, progress=advance)
            os.replace(tmp / NGRAM_FILE, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


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
                 min_step=job.min_step)  # fmt: skip
    return {
        "run": s.run,
        "checkpoints": len(s.checkpoints),
        "pairs": {r: {"peak": rr.peak, "final": rr.final, "cm_from": rr.cm_from} for r, rr in s.rules.items()},
        "computed": s.computed,
        "seconds": round(s.seconds, 2),
    }
