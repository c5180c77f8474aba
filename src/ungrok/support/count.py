"""Map-reduce support counting over a corpus: ranges are tasks, partial counts add up.

The shards are one logical stream in manifest order. A task owns a token range and
reads `plan.lookahead()` tokens past it (from the next shard if needed), so windows
that cross shard or task boundaries are counted exactly once. A finished task leaves
a marker file (its counts) so an interrupted count resumes where it stopped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ungrok.atomic import atomic_path
from ungrok.corpus.shards import Corpus
from ungrok.corpus.tokenizer import load_tokenizer
from ungrok.errors import UngrokError, first_error
from ungrok.executor import make_executor, mark_done, or_raise, pending
from ungrok.rules.spec import RuleSpec
from ungrok.support.kernel import Counts, Plan, count_array
from ungrok.support.plan import CompiledRules, compile_rules, rows_from_counts
from ungrok.train.sampler import SamplerConfig, served_windows

DEFAULT_TASK_TOKENS = 25_000_000


@dataclass
class SupportTable:
    """Support per rule, as `ungrok support --json` writes it."""

    tokens: int
    rules: dict[str, dict]
    skipped: dict[str, str]
    mode: str

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "mode": self.mode, "rules": self.rules, "skipped": self.skipped}


def read_range(corpus_path: str, start: int, stop: int) -> np.ndarray:
    """Tokens [start, stop) of the corpus stream, across shard files."""
    c = Corpus(corpus_path, verify=False)  # a task of a count whose caller checked the corpus
    parts = []
    pos = 0
    for i, s in enumerate(c.manifest.shards):
        lo, hi = pos, pos + s.tokens
        if hi > start and lo < stop:
            arr = c.shard(i)
            parts.append(np.asarray(arr[max(start - lo, 0) : min(stop, hi) - lo]))
        pos = hi
        if pos >= stop:
            break
    if not parts:
        return np.zeros(0, dtype=c.dtype)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class CountTask:
    """One token range of the stream; `marker` (with a work dir) holds its counts once done."""

    corpus: str
    plan: Plan
    start: int
    stop: int
    marker: Path | None = None


def count_task(t: CountTask) -> Counts:
    """The task function every executor runs: count events anchored in [start, stop)."""
    tokens = read_range(t.corpus, t.start, t.stop + t.plan.lookahead())
    return count_array(t.plan, tokens, n_own=t.stop - t.start)


def _marker(work: Path, i: int) -> Path:
    return work / f"task_{i:05d}.npz"


def _save(path: Path, c: Counts) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, tokens=c.tokens, occ=c.occurrences, win=c.window, la=c.lookahead)


def _load(path: Path) -> Counts:
    z = np.load(path)
    return Counts(int(z["tokens"]), z["occ"], z["win"], z["la"])


def _execute(tasks, corpus_path, plan, work: Path | None, workers: int, executor: str, address: str | None,
             progress: Callable[[int], None] | None) -> Counts:
    """Sum the counts of every range: finished ones from their markers, the rest through the executor.

    The first failing range stops the count with its own exception; every range finished before
    it keeps its marker, so a rerun resumes."""
    total = Counts.zeros(plan)
    jobs = [CountTask(corpus_path, plan, a, b, _marker(work, i) if work else None) for i, (a, b) in enumerate(tasks)]
    todo, done = pending(jobs)
    for t in done:
        total = total + _load(t.marker)  # type: ignore[arg-type]
        if progress:
            progress(t.stop - t.start)
    if executor not in ("local", "ray"):
        raise UngrokError(f"unknown executor {executor!r}; use local or ray")
    # Ray: every range in flight at once (the cluster schedules them); local: up to --workers
    # processes, none for a single range. A local count ignores --address, as it always has.
    n = max(len(todo), 1) if executor == "ray" else max(1, min(workers, len(todo)))
    ex = make_executor(executor, n, address if executor == "ray" else None)
    for t, c in or_raise(ex.map(count_task, todo)):
        mark_done(t, c, _save)
        total = total + c
        if progress:
            progress(t.stop - t.start)
    return total


def count(
    corpus: str | Path,
    rules: list[RuleSpec],
    *,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    task_tokens: int = DEFAULT_TASK_TOKENS,
    work_dir: str | Path | None = None,
    rules_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> SupportTable:
    """Count every rule's support over a corpus in one pass per task.

    With `work_dir`, finished tasks leave markers there and a rerun resumes.
    """
    c = Corpus(corpus)
    tok = load_tokenizer(c.tokenizer_path)
    if tok.get_vocab_size() > c.manifest.vocab_size:
        raise UngrokError(f"{corpus}: tokenizer has more ids than the manifest's vocab_size")
    compiled = compile_rules(rules, tok, rules_dir)
    work = _work_dir(work_dir, c, compiled, task_tokens)
    tasks = [(a, min(a + task_tokens, c.total_tokens)) for a in range(0, c.total_tokens, task_tokens)]
    counts = _execute(tasks, str(c.path), compiled.plan, work, workers, executor, address, progress)
    return SupportTable(
        counts.tokens, rows_from_counts(compiled, counts, "corpus"), compiled.skipped, "corpus"
    )


def _work_dir(work_dir, c: Corpus, compiled: CompiledRules, task_tokens: int) -> Path | None:  # noqa: ANN001
    if work_dir is None:
        return None
    shards = "".join(s.sha256 for s in c.manifest.shards)
    key = hashlib.sha256(f"{shards}|{compiled.key()}|{task_tokens}".encode()).hexdigest()[:16]
    path = Path(work_dir) / key
    path.mkdir(parents=True, exist_ok=True)
    return path


def count_served(
    data: str | Path,
    cfg: SamplerConfig,
    seed: int,
    rules: list[RuleSpec],
    *,
    rules_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> SupportTable:
    """Count over exactly the windows the training sampler serves for (cfg, seed).

    Each window is counted on its own: the model sees no context beyond it.
    """
    c = Corpus(data)
    tok = load_tokenizer(c.tokenizer_path)
    compiled = compile_rules(rules, tok, rules_dir)
    total = Counts.zeros(compiled.plan)
    for _step, sampler, shards, offsets in served_windows(data, cfg, seed):
        for sh, off in zip(shards, offsets, strict=True):
            total = total + count_array(compiled.plan, sampler.tokens(sh, off))
        if progress:
            progress(1)
    return SupportTable(total.tokens, rows_from_counts(compiled, total, "served"), compiled.skipped, "served")


def load_served_config(path: str | Path) -> SamplerConfig:
    """A sampler config from YAML: its fields at top level or under `sampler:`."""
    from pydantic import ValidationError

    from ungrok.yamlfile import load_yaml

    p = Path(path)
    doc = load_yaml(p, "served-stream config")
    if isinstance(doc, dict):
        doc = doc.get("sampler", doc)
    try:
        return SamplerConfig.model_validate(doc)
    except ValidationError as e:
        loc, msg = first_error(e, raw=True)
        raise UngrokError(f"{p}: field {loc}: {msg}") from None
