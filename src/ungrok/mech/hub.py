"""`ungrok hub mech`: the GPT-NeoX instruments over public checkpoints into one traj.mech.parquet.

Plan first, in this process, before any weights move: each model's revisions come from
the hub suite's grid (auto, thinned or a list; `ungrok.hub.revisions`) and the refs the
hub or the local cache has (`ungrok.hub.cache`); its config, read at its first revision
(no weights), must be GPT-NeoX; and its tokenizer must give the rule's prompts (one-token
targets, held-out cue and control prefixes in the battery). Any of those failing is bad
input: one line, exit 2. A (model, revision) whose decomp, heads and decode units are
already in the store with the same prompts is skipped (force recomputes it). Each of the
rest is one task for the shared executor (`ungrok.executor`): load fp32 weights
(`probes.models.load_hf`), run the three instruments (`mech.neox`), free the model,
return the rows; this process alone writes the store, atomically after every task.

Rows are the own-model store's (`mech.store`): run = the model id, step = the revision's
training step. Descriptive only, like every mechanism row.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ungrok.errors import UngrokError, failure_line, first_line
from ungrok.executor import Executor, RayExecutor, make_executor
from ungrok.hub.cache import hub_env, hub_env_for
from ungrok.hub.revisions import check_grids, parse_revision_spec
from ungrok.hub.suite import model_list, plan_revisions, raise_if_failed, ray_placement, seconds_line
from ungrok.mech.store import MECH_FILE, MechStore
from ungrok.probes.battery import Battery

HUB_INSTRUMENTS = ("decomp", "heads", "decode")


@dataclass(frozen=True)
class MechTask:
    """One (model, revision) to measure; picklable, so a pool or Ray worker can run it."""

    model: str
    revision: str
    step: int
    rule: str
    battery: Battery
    device: str = "auto"
    threads: int | None = None
    gpus: int = 0  # Ray: GPUs the task asks for
    hub_env: tuple[tuple[str, str], ...] = ()
    rules_dir: str | None = None


@dataclass
class MechResult:
    rows: list[dict[str, Any]]
    prompts_sha256: str
    seconds: float


@dataclass
class HubMechSummary:
    """What one `hub_mech` call did."""

    out: Path
    measured: list[tuple[str, str]] = field(default_factory=list)  # (model, revision)
    already: int = 0
    skipped: list[str] = field(default_factory=list)  # one line each
    failed: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"measured {len(self.measured)} revision(s), {self.already} already in {self.out / MECH_FILE}; "
               f"{len(self.skipped)} skipped, {len(self.failed)} failed"]
        if self.seconds:
            out.append(seconds_line(self.seconds))
        return out + [f"skipped {s}" for s in self.skipped] + [f"failed {s}" for s in self.failed]

    def raise_failures(self) -> None:
        """Exit 1 (not bad input) when tasks failed; what succeeded is already written."""
        raise_if_failed(self.failed, self.out / MECH_FILE)


def _load_prompts(model: str, revision: str, rule: str, battery: Battery, rules_dir: str | None) -> Any:
    """The rule's prompts under the model's tokenizer; refuses a model without GPT-NeoX blocks."""
    from transformers import AutoConfig

    from ungrok.mech.prompts import build_prompts
    from ungrok.probes.models import load_hf_tokenizer

    try:
        cfg = AutoConfig.from_pretrained(model, revision=revision)
    except (OSError, ValueError) as e:
        raise UngrokError(f"cannot load {model} at revision {revision!r}: {first_line(e)}") from None
    tok = load_hf_tokenizer(model, revision)
    if getattr(cfg, "model_type", None) != "gpt_neox":
        raise UngrokError(f"{model}: a {getattr(cfg, 'model_type', '?')!r} model, not GPT-NeoX; "
                          "`ungrok hub mech` reads GPT-NeoX blocks (Pythia) only")
    try:
        return build_prompts(rule, battery, tok, rules_dir)
    except UngrokError as e:
        raise UngrokError(f"{model}: {e}") from None


def mech_task(task: MechTask) -> MechResult:
    """Load one (model, revision) in fp32, run decomp, heads and decode, free it; its store rows."""
    import torch

    from ungrok.hub.memory import release_memory
    from ungrok.probes.models import resolve_device

    t0 = time.perf_counter()
    if task.threads:
        torch.set_num_threads(task.threads)
    with hub_env(dict(task.hub_env)):
        rows, sha = _measure(task)
        release_memory(resolve_device(task.device).type == "cuda")
    return MechResult(rows, sha, time.perf_counter() - t0)


def _measure(task: MechTask) -> tuple[list[dict[str, Any]], str]:
    """Everything that holds the weights, in one frame that is gone when it returns."""
    from ungrok.mech.heads import head_attribution
    from ungrok.mech.neox import decompose_neox, neox_decodability
    from ungrok.mech.prompts import build_prompts
    from ungrok.probes.models import load_hf

    model, tok = load_hf(task.model, task.revision, "float32", task.device)
    prompts = build_prompts(task.rule, task.battery, tok, task.rules_dir)
    key = (task.model, task.step, task.rule, prompts.sha256)
    dec = decompose_neox(model.model, prompts)
    rows = dec.rows(*key) + head_attribution(dec).rows(*key) + neox_decodability(model.model, prompts).rows(*key)
    return rows, prompts.sha256


def _plan(names: list[str], spec: str | list[str], rule: str, battery: Battery, rules_dir: str | None,
          store: MechStore, force: bool, summary: HubMechSummary) -> Iterator[tuple[str, str, int]]:
    """(model, revision, step) still to measure; skips go into the summary."""
    for model in names:
        aside, revisions = plan_revisions(model, spec)
        aside += [(r.name, missing) for r, missing in revisions if missing is not None]
        summary.skipped += [f"{model}@{name}: {why}" for name, why in aside]
        there = [r for r, missing in revisions if missing is None]
        if not there:
            continue
        sha = _load_prompts(model, there[0].name, rule, battery, rules_dir).sha256
        for r in there:
            done = all(store.has(model, r.step, rule, i, sha) for i in HUB_INSTRUMENTS) if not force else False
            if done:
                summary.already += 1
            else:
                yield model, r.name, r.step


def hub_mech(
    models: Sequence[str] | str,
    revisions: str | Sequence[str],
    rule: str,
    battery: Path,
    out: Path,
    *,
    executor: str | Executor = "local",
    workers: int = 1,
    address: str | None = None,
    device: str = "auto",
    offline: bool | None = None,
    force: bool = False,
    rules_dir: Path | None = None,
) -> HubMechSummary:
    """Run decomp, heads and decode on every (model, revision) into OUT/traj.mech.parquet.

    Resumable; a task that fails is named in the summary and, once everything else is
    written, raised as TasksFailed (exit 1). See the module docstring.
    """
    from ungrok.probes.battery import load_battery
    from ungrok.probes.models import resolve_device

    names = model_list(models)
    spec = parse_revision_spec(revisions)
    check_grids(names, spec)
    ex = make_executor(executor, workers, address) if isinstance(executor, str) else executor
    if not isinstance(ex, RayExecutor):
        resolve_device(device)  # an unknown or absent device is one line before anything loads
    bat = load_battery(battery)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UngrokError(f"{out}: exists and is not a folder")
    store = MechStore(out / MECH_FILE)
    summary = HubMechSummary(out)
    env = hub_env_for(offline)
    rdir = None if rules_dir is None else str(rules_dir)
    threads = None if isinstance(ex, RayExecutor) else getattr(ex, "threads", None)
    with hub_env(env):
        base = MechTask("", "", 0, rule, bat, device, threads, hub_env=tuple(sorted(env.items())), rules_dir=rdir)
        jobs = [replace(base, model=m, revision=r, step=s)
                for m, r, s in _plan(names, spec, rule, bat, rdir, store, force, summary)]
        if jobs and isinstance(ex, RayExecutor):
            gpus, dev = ray_placement(device, ex)
            jobs = [replace(j, gpus=gpus, device=dev, threads=1) for j in jobs]
        out.mkdir(parents=True, exist_ok=True)
        for job, res in ex.map(mech_task, jobs):
            if isinstance(res, BaseException):
                summary.failed.append(f"{job.model}@{job.revision}: {failure_line(res)}")
                continue
            store.put(res.rows)  # saved atomically; replaces this (model, step)'s units when forced
            summary.measured.append((job.model, job.revision))
            summary.seconds.append(res.seconds)
    return summary
