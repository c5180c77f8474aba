"""The public-checkpoint suite: a battery over models x revisions, one task per (model, revision).

Plan first, in this process, before any weights move: each model's revision grid
(`ungrok.hub.revisions`), which of those revisions exist (`ungrok.hub.cache`: the hub's
refs online, the local cache's offline), and which are already in the store. An
unknown model id, a revision that is not there or one without a step is recorded as
skipped with its reason; the rest become tasks (`ungrok.hub.task.score_task`) for the
shared executor (`ungrok.executor`: inline for one worker, a spawn pool for more, Ray
with one GPU per task). Each task loads its model once, scores, frees it and
reports seconds and peak memory; this process alone writes the store, atomically,
after every finished task, then suite.json, so a kill loses only the tasks in flight
and a rerun scores only what is missing. A task that fails (its load or its scoring) is
recorded as "failed" and the suite goes on; the summary names everything that was not
scored, and `failed()` lists the failures, which `ungrok hub score` turns into exit 1
once everything is written (a skip is never fatal).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ungrok.errors import TasksFailed, UngrokError, failure_line
from ungrok.executor import Executor, RayExecutor, make_executor
from ungrok.hub.cache import available_revisions, hub_env, hub_env_for, missing_revision_reason
from ungrok.hub.record import SuiteRecord
from ungrok.hub.revisions import Revision, check_grids, parse_revision_spec, plan_steps, resolve_revisions
from ungrok.probes.score import DEFAULT_BATCH_TOKENS

TRAJ = "traj.parquet"


@dataclass
class SuiteSummary:
    """What one `score_suite` call did (the folder's full story is suite.json)."""

    out: Path
    scored: int = 0  # tasks scored by this call
    already: int = 0  # (model, revision) pairs whose rows were in the store
    skipped: list[dict[str, Any]] = field(default_factory=list)  # model, revision, status, why
    notes: dict[str, list[str]] = field(default_factory=dict)  # per model, e.g. split targets
    seconds: list[float] = field(default_factory=list)  # per task scored by this call
    peak_rss_mib: list[float] = field(default_factory=list)

    def failed(self) -> list[dict[str, Any]]:
        """The tasks that failed (a load or a score that raised, a worker that died): not skips."""
        return [k for k in self.skipped if k["status"] == "failed"]

    def lines(self) -> list[str]:
        """The end-of-suite report: counts, timing, then every skip, failure and note by name."""
        n_failed = len(self.failed())
        out = [f"scored {self.scored} revision(s), {self.already} already in {self.out}; "
               f"{len(self.skipped)} not scored" + (f" ({n_failed} failed)" if n_failed else "")]
        if self.seconds:
            out.append(f"{seconds_line(self.seconds)}; "
                       f"peak RSS per task: max {max(self.peak_rss_mib):.0f} MiB")
        out += [f"{k['status']} {_where(k)}: {k['why']}" for k in self.skipped]
        for model, notes in self.notes.items():
            out += [f"note {model}: {n}" for n in notes]
        return out

    def raise_failures(self) -> None:
        """Exit 1 once everything is written and listed: the suite is incomplete (see raise_if_failed)."""
        raise_if_failed([f"{_where(k)}: {k['why']}" for k in self.failed()], self.out)


def _where(k: dict[str, Any]) -> str:
    return k["model"] if k["revision"] is None else f"{k['model']}@{k['revision']}"


def seconds_line(seconds: Sequence[float]) -> str:
    """The timing line of a suite or `hub mech` summary (seconds: not empty)."""
    s = sorted(seconds)
    return f"seconds per revision: median {s[len(s) // 2]:.2f}, max {s[-1]:.2f}"


def raise_if_failed(failed: Sequence[str], written: Path) -> None:
    """Exit 1 (not bad input) when tasks failed, naming the first ("model@revision: why"); what
    succeeded is already in `written`."""
    if failed:
        raise TasksFailed(f"{len(failed)} task(s) failed ({failed[0]}{'; ...' if len(failed) > 1 else ''}); "
                          f"the rest is written to {written}, rerun to retry the failed ones")


def model_list(models: Sequence[str] | str) -> list[str]:
    """Hub model ids from a comma-separated string or a list of them (each may hold commas too),
    deduplicated in order."""
    items = models.split(",") if isinstance(models, str) else [p for m in models for p in m.split(",")]
    names = list(dict.fromkeys(m.strip() for m in items if m.strip()))
    if not names:
        raise UngrokError("--models is empty: give one or more hub model ids, comma-separated")
    return names


def ray_placement(device: str, ex: RayExecutor) -> tuple[int, str]:
    """(GPUs per task, the device a task uses) on the Ray cluster: one GPU each when it has any."""
    ex.ray()  # the ray package is needed even for cpu tasks
    if device == "cpu":
        return 0, "cpu"
    if ex.gpus() < 1:
        if device == "auto":
            return 0, "cpu"
        raise UngrokError(f"--device {device}: the Ray cluster has no GPU")
    return 1, "cuda"  # Ray sets CUDA_VISIBLE_DEVICES to the task's GPU


def plan_revisions(
    model: str, spec: str | list[str]
) -> tuple[list[tuple[str, str]], list[tuple[Revision, str | None]]]:
    """A model's grid before any weights move: (name, why) for the names set aside, then each
    revision in step order with why it cannot load (None: it is there or unknown until loaded).

    Raises UngrokError for an unknown model or a grid that needs refs the model lacks."""
    available = available_revisions(model)
    revisions, aside = plan_steps(resolve_revisions(model, spec, available))  # OLMo auto: from its refs
    return aside, [(r, None if available is None or r.name in available
                    else missing_revision_reason(model, r.name)) for r in revisions]


@contextlib.contextmanager
def _progress(show: bool, total: int) -> Iterator[Callable[[], None]]:
    if not show:
        yield lambda: None
        return
    from ungrok.progress import bar

    with bar("revisions", total) as p:
        yield lambda: p.advance(p.task_ids[0], 1)


class _Suite:
    """The state one call works on: battery, store, record and summary."""

    def __init__(
        self, battery: Any, prompt_sets: tuple, store: Any, record: SuiteRecord, summary: SuiteSummary
    ):
        self.battery, self.prompt_sets = battery, prompt_sets
        self.store, self.record, self.summary = store, record, summary

    def done(self, model: str, step: int) -> bool:
        return self.store.has_scores(model, step, self.battery.sha256) and not self.store.missing_margins(
            model, step, self.prompt_sets
        )

    def not_scored(self, model: str, revision: str | None, step: int | None, status: str, why: str,
                   **measures: float | None) -> None:
        if revision is None:
            self.record.set_unknown(model, why)
        else:
            self.record.set_revision(model, revision, step, status, why, **measures)
        self.summary.skipped.append({"model": model, "revision": revision, "status": status, "why": why})

    def plan(self, models: list[str], spec: str | list[str], make: Callable[..., Any]) -> list[Any]:
        """Tasks still to run; skips and already-scored pairs go straight into the record."""
        jobs = []
        for model in models:
            try:
                aside, revisions = plan_revisions(model, spec)
            except UngrokError as e:  # unknown model, or no step branches to list
                self.not_scored(model, None, None, "skipped", str(e))
                continue
            for name, why in aside:
                self.not_scored(model, name, None, "skipped", why)
            for rev, missing in revisions:
                if missing is not None:
                    self.not_scored(model, rev.name, rev.step, "skipped", missing)
                elif self.done(model, rev.step):
                    self.summary.already += 1
                    if not self.record.has_scored(model, rev.name):
                        self.record.set_revision(model, rev.name, rev.step, "scored")
                else:
                    jobs.append(make(model=model, revision=rev.name, step=rev.step))
        return jobs

    def absorb(self, job: Any, res: Any) -> None:
        """One finished task into the store (saved) and the record (saved after it)."""
        if isinstance(res, BaseException):  # the worker itself died (pool broken, Ray worker lost)
            self.not_scored(job.model, job.revision, job.step, "failed", failure_line(res))
        else:
            measures = {"seconds": res.seconds, "peak_rss_mib": res.peak_rss_mib,
                        "rss_after_mib": res.rss_after_mib, "peak_gpu_mib": res.peak_gpu_mib}
            if res.status != "scored":
                self.not_scored(job.model, job.revision, job.step, res.status, res.why or "", **measures)
            else:
                self._store(job, res)
                self.record.set_params(job.model, res.n_params)
                self.record.add_notes(job.model, res.notes)
                self.record.set_revision(job.model, job.revision, job.step, "scored", **measures)
                self.summary.scored += 1
                self.summary.seconds.append(res.seconds)
                self.summary.peak_rss_mib.append(res.peak_rss_mib)
                have = self.summary.notes.setdefault(job.model, [])
                have.extend(n for n in res.notes if n not in have)
        self.record.save()

    def _store(self, job: Any, res: Any) -> None:
        scores = res.battery_scores(self.battery)
        model, step, rev = job.model, job.step, job.revision
        self.store.add_scores(model, step, rev, self.battery.sha256, scores.groups())
        self.store.add_items(model, step, rev, scores)
        wanted = {ps.rule for ps in self.store.missing_margins(model, step, self.prompt_sets)}
        self.store.add_margins(model, step, rev, [m for m in res.margins if m.rule in wanted])
        self.store.save()
        import pyarrow as pa

        # Each save concatenates the whole item table anew; give the old buffers back to the OS.
        pa.default_memory_pool().release_unused()


def score_suite(
    models: Sequence[str] | str,
    revisions: str | Sequence[str],
    battery: Path,
    out: Path,
    *,
    margins: bool = True,
    executor: str | Executor = "local",
    workers: int = 1,
    address: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
    precision: str = "fp32",
    compile: bool = False,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    offline: bool | None = None,
    progress: bool = True,
    rules_dir: Path | None = None,
) -> SuiteSummary:
    """Score `battery` (and its rules' margins) on every (model, revision) into the folder `out`.

    revisions: "auto" (Pythia's 154-revision grid; OLMo's step branches), "thinned" (the
    paper code's 41-revision Pythia grid), or a list / comma-separated string applied to
    every model. precision / compile: the forward's matmuls and torch.compile (ungrok.probes.models;
    compiling pays once per worker process). offline: True sets HF_HUB_OFFLINE=1 for the suite, False clears it,
    None leaves the environment as it is. `executor` is a kind ("local", "ray"; with `workers`
    and `address`) or a ready executor (`ungrok run` passes its own). Resumable; see the
    module docstring.
    """
    from ungrok.hub.task import SuiteTask, score_task
    from ungrok.probes.battery import load_battery
    from ungrok.probes.margins import margin_rules
    from ungrok.probes.models import DTYPES, resolve_device, resolve_dtype, resolve_precision
    from ungrok.probes.trajectories import TrajectoryStore

    names = model_list(models)
    spec = parse_revision_spec(revisions)
    check_grids(names, spec)
    if batch_tokens < 1:
        raise UngrokError(f"--batch-tokens {batch_tokens}: need at least 1")
    if dtype not in DTYPES:
        raise UngrokError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    resolve_precision(precision)
    ex = make_executor(executor, workers, address) if isinstance(executor, str) else executor
    if not isinstance(ex, RayExecutor):  # a Ray cluster's devices are not this machine's
        resolve_dtype(dtype, resolve_device(device))
    bat = load_battery(battery)
    prompt_sets = tuple(margin_rules(bat.families, None, rules_dir)) if margins else ()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UngrokError(f"{out}: exists and is not a folder")
    store = TrajectoryStore(out / TRAJ, items=True)
    record = SuiteRecord(out, str(battery), bat.sha256)
    for m in names:
        store.check_compatible(m, bat, prompt_sets)
    summary = SuiteSummary(out)
    suite = _Suite(bat, prompt_sets, store, record, summary)
    env = hub_env_for(offline)
    threads = None if isinstance(ex, RayExecutor) else getattr(ex, "threads", None)  # Ray: 1 per task, below
    with hub_env(env):
        task = SuiteTask("", "", 0, bat, prompt_sets, device=device, dtype=dtype, precision=precision,
                         compile=compile, batch_tokens=batch_tokens, threads=threads,
                         hub_env=tuple(sorted(env.items())))
        jobs = suite.plan(names, spec, lambda **kw: replace(task, **kw))
        out.mkdir(parents=True, exist_ok=True)
        record.save()
        if jobs:
            if isinstance(ex, RayExecutor):
                gpus, dev = ray_placement(device, ex)
                jobs = [replace(j, gpus=gpus, device=dev, threads=1) for j in jobs]
            with _progress(progress, len(jobs)) as advance:
                for job, res in ex.map(score_task, jobs):
                    suite.absorb(job, res)
                    advance()
    return summary
