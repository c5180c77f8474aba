"""One suite task: load a (model, revision), score the battery and margins, free it, measure.

A task runs wherever the executor puts it (this process, a spawn-pool worker, a Ray
worker) and never raises over its (model, revision): a load or a score that fails
returns status "failed" with its first line (the loader's one-line reason for a load),
so one bad revision cannot stop a suite, and the suite's caller sees it as a failure.
Unknown models and revisions that are not there were set aside as "skipped" by the
planner before any task ran (`ungrok.hub.suite`). Only arrays and small records travel
back; the parent alone writes the store.

Nothing loaded survives the task: model, tokenizer and scoring plans are locals of a
helper that has returned before memory is released, and no exception escapes (its
traceback would pin those frames, and with them the weights, in whoever holds it).
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ungrok.errors import UngrokError, failure_line
from ungrok.hub.cache import hub_env
from ungrok.hub.memory import peak_rss_mib, release_memory, reset_peak_rss, rss_mib
from ungrok.probes.battery import Battery
from ungrok.probes.margins import MarginPlan, MarginPrompts, MarginScore
from ungrok.probes.models import load_hf, resolve_device
from ungrok.probes.score import DEFAULT_BATCH_TOKENS, BatteryPlan, BatteryScores, TextTokenizer

# A continuation meant as one token: one word, optionally space-led (" she", " himself").
_ONE_WORD = re.compile(r"\s?\S+")


@dataclass(frozen=True)
class SuiteTask:
    model: str
    revision: str
    step: int
    battery: Battery
    prompt_sets: tuple[MarginPrompts, ...] = ()
    device: str = "auto"
    dtype: str = "float32"
    precision: str = "fp32"  # matmuls (bf16: autocast) and whether the forward is compiled (probes/models.py)
    compile: bool = False
    batch_tokens: int = DEFAULT_BATCH_TOKENS
    threads: int | None = None  # torch threads inside the task (None: leave them); Ray's num_cpus
    gpus: int = 0  # Ray: GPUs the task asks for
    hub_env: tuple[tuple[str, str], ...] = ()  # HF_* variables the planning process ran with


@dataclass
class TaskResult:
    model: str
    revision: str
    step: int
    status: str  # "scored" | "failed"
    why: str | None = None
    n_params: int | None = None
    logp_correct: np.ndarray | None = None
    logp_distractor: np.ndarray | None = None
    len_correct: np.ndarray | None = None
    len_distractor: np.ndarray | None = None
    skipped: np.ndarray | None = None
    margins: list[MarginScore] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float | None = None
    peak_rss_mib: float | None = None
    rss_after_mib: float | None = None
    peak_gpu_mib: float | None = None

    def battery_scores(self, battery: Battery) -> BatteryScores:
        """The per-item scores again, bound to the parent's copy of the battery."""
        if self.logp_correct is None:
            raise UngrokError(f"{self.model}@{self.revision}: task has no scores ({self.status})")
        return BatteryScores(battery, self.logp_correct, self.logp_distractor, self.len_correct,  # type: ignore[arg-type]
                             self.len_distractor, self.skipped)  # type: ignore[arg-type]


def split_targets(
    battery: Battery, prompt_sets: Sequence[MarginPrompts], tokenizer: TextTokenizer
) -> list[str]:
    """One note per one-word target (" she") that this tokenizer splits into several tokens.

    The scorer sums log-probabilities over a target's tokens, so such an item is still
    scored, as a multi-token continuation; the note says so, because a margin between a
    1-token and a 2-token target is not the single-token comparison the battery meant.
    """
    targets = dict.fromkeys(t for it in battery.items for t in (it["correct"], it["distractor"]))
    for ps in prompt_sets:
        targets.update(dict.fromkeys((ps.rule_target, ps.prior_target)))
    words = [t for t in targets if _ONE_WORD.fullmatch(t)]
    batch = getattr(tokenizer, "encode_batch", None)
    encoded = batch(words) if batch is not None else [tokenizer.encode(t) for t in words]
    return [f"target {t!r} splits into {len(ids)} tokens: scored as multi-token"
            for t, ids in zip(words, encoded, strict=True) if len(ids) > 1]


def _load_and_score(task: SuiteTask, loaded: list[weakref.ref]) -> TaskResult:
    """Everything that touches the model, in one frame that is gone when this returns.

    `loaded` gets a weak reference to the model, so the caller can tell whether it died.
    """
    base = {"model": task.model, "revision": task.revision, "step": task.step}
    try:
        model, tokenizer = load_hf(task.model, task.revision, task.dtype, task.device, task.precision, task.compile)
    except UngrokError as e:  # the planner found the revision (or could not ask): a failure, not a skip
        return TaskResult(**base, status="failed", why=str(e))
    loaded.append(weakref.ref(model.model))
    notes = split_targets(task.battery, task.prompt_sets, tokenizer)
    scores = BatteryPlan(task.battery, tokenizer, (), task.batch_tokens).score(model)
    margins = (
        MarginPlan(task.prompt_sets, tokenizer, (), task.batch_tokens).score(model)
        if task.prompt_sets
        else []
    )
    n_params = sum(p.numel() for p in model.model.parameters())
    return TaskResult(
        **base,
        status="scored",
        n_params=int(n_params),
        logp_correct=scores.logp_correct,
        logp_distractor=scores.logp_distractor,
        len_correct=scores.len_correct,
        len_distractor=scores.len_distractor,
        skipped=scores.skipped,
        margins=margins,
        notes=notes,
    )


def score_task(task: SuiteTask) -> TaskResult:
    """Load, score, free and measure one (model, revision); never raises for its own problems."""
    import torch

    t0 = time.perf_counter()
    reset_peak_rss()
    if task.threads:
        torch.set_num_threads(task.threads)
    cuda = False
    loaded: list[weakref.ref] = []
    with hub_env(dict(task.hub_env)):
        try:
            dev = resolve_device(task.device)
            cuda = dev.type == "cuda"
            if cuda:
                torch.cuda.reset_peak_memory_stats(dev)
            result = _load_and_score(task, loaded)
        except Exception as e:  # noqa: BLE001 - reported as this task's failure; the suite goes on
            result = TaskResult(task.model, task.revision, task.step, "failed", why=failure_line(e))
        release_memory(cuda, collect=any(ref() is not None for ref in loaded))
    result.seconds = time.perf_counter() - t0
    result.peak_rss_mib = peak_rss_mib()
    result.rss_after_mib = rss_mib()
    if cuda:
        result.peak_gpu_mib = torch.cuda.max_memory_allocated(dev) / 2**20
    return result
