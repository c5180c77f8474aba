"""Benchmark: one-pass support counting vs a plain per-pattern numpy reference, same input.

Builds a storyworld corpus once (default 200M tokens, cached under bench/.cache), then
reports in one run:
- tokens/s of every built-in rule counted together in one pass (1 worker, 1 thread),
- the ratio against a per-pattern numpy reference (one vectorised pass per cue /
  target / n-gram pattern) on the same in-memory tokens, after checking both give equal
  counts,
- peak resident memory of a counting process (bounded by the task size, not the corpus),
- wall time with 1 and 2 workers (scaling).

Every timing is the best of --repeat runs, the same for both sides, so that a short run
is not judged by one scheduler hiccup on a shared machine.

    .venv/bin/python bench/support.py [--tokens 200000000] [--reference-tokens 20000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ungrok.corpus.shards import Corpus
from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld
from ungrok.corpus.tokenizer import load_tokenizer
from ungrok.rules.registry import load_rules
from ungrok.support.count import count
from ungrok.support.kernel import count_array
from ungrok.support.plan import compile_rules

HERE = Path(__file__).resolve().parent


def corpus(tokens: int) -> Path:
    path = HERE / ".cache" / f"storyworld-{tokens}"
    if not (path / "manifest.json").is_file():
        print(f"building a {tokens:,}-token storyworld corpus once at {path} ...", flush=True)
        build_storyworld(path, StoryworldConfig(tokens=tokens, seed=0))
    return path


def _occurs(tokens: np.ndarray, seq: tuple[int, ...]) -> np.ndarray:
    """Start positions of seq (one vectorised pass per pattern)."""
    n = tokens.size - len(seq) + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    mask = tokens[:n] == seq[0]
    for q, t in enumerate(seq[1:], 1):
        mask &= tokens[q : q + n] == t
    return np.flatnonzero(mask)


def reference_counts(plan, tokens: np.ndarray):  # noqa: ANN001
    """Per-pattern numpy: the way a counter without a fused kernel would do it."""
    seqs = [tuple(plan.pat_tokens[s : s + n].tolist()) for s, n in zip(plan.pat_start, plan.pat_len, strict=True)]
    starts = [_occurs(tokens, s) for s in seqs]
    occ = np.array([len(x) for x in starts], dtype=np.int64)
    win = np.zeros((plan.n_classes, 3), dtype=np.int64)
    for k in range(plan.n_classes):
        w = plan.cls_window[k]
        cue_ends = np.concatenate(
            [starts[p] + len(seqs[p]) - 1 for p in range(len(seqs)) if k in plan.cue_cls[plan.cue_ptr[p] : plan.cue_ptr[p + 1]]]
            or [np.zeros(0, dtype=np.int64)]
        )

        def target_starts(kind: int, k: int = k) -> np.ndarray:
            sel = [
                starts[p]
                for p in range(len(seqs))
                for b in range(plan.tgt_ptr[p], plan.tgt_ptr[p + 1])
                if plan.tgt_cls[b] == k and plan.tgt_kind[b] == kind
            ]
            return np.unique(np.concatenate(sel)) if sel else np.zeros(0, dtype=np.int64)

        r, pr = target_starts(0), target_starts(1)
        big = np.iinfo(np.int64).max // 4
        nr = np.searchsorted(r, cue_ends, side="right")
        npr = np.searchsorted(pr, cue_ends, side="right")
        dr = np.where(nr < r.size, r[np.minimum(nr, r.size - 1)] - cue_ends if r.size else big, big)
        dp = np.where(npr < pr.size, pr[np.minimum(npr, pr.size - 1)] - cue_ends if pr.size else big, big)
        rule = (dr <= w) & (dr < dp)
        prior = (dp <= w) & (dp < dr)
        win[k] = [rule.sum(), prior.sum(), cue_ends.size - rule.sum() - prior.sum()]
    la = np.zeros((plan.n_groups, 2), dtype=np.int64)
    for p in range(len(seqs)):
        for b in range(plan.la_ptr[p], plan.la_ptr[p + 1]):
            nxt = starts[p] + len(seqs[p])
            nxt = nxt[nxt < tokens.size]
            la[plan.la_grp[b], plan.la_kind[b]] += int(plan.la_next[plan.la_grp[b]][tokens[nxt]].sum())
    return occ, win, la


def best_of(repeat: int, fn):  # noqa: ANN001, ANN201
    """(shortest wall time of `repeat` calls, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def child_peak_rss(path: Path) -> float:
    code = (
        "import sys; from ungrok.support.count import count; from ungrok.rules.registry import load_rules;"
        f"count({str(path)!r}, list(load_rules().values()))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # MiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=200_000_000)
    ap.add_argument("--reference-tokens", type=int, default=20_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    path = corpus(args.tokens)
    c = Corpus(path)
    rules = list(load_rules().values())
    compiled = compile_rules(rules, load_tokenizer(c.tokenizer_path))
    plan = compiled.plan
    print(f"{len(compiled.slots)} rules, {plan.n_patterns} patterns, {plan.n_classes} window classes; "
          f"skipped: {sorted(compiled.skipped) or 'none'}")

    # read into memory first: otherwise whichever side runs first pays for the page faults
    sample = np.array(c.shard(0)[: args.reference_tokens])
    count_array(plan, sample[:10_000])  # compile
    t_ours, ours = best_of(args.repeat, lambda: count_array(plan, sample))
    t_ref, (occ, win, la) = best_of(args.repeat, lambda: reference_counts(plan, sample))
    assert np.array_equal(ours.occurrences, occ), "occurrence counts differ from the reference"
    assert np.array_equal(ours.window, win), "window counts differ from the reference"
    assert np.array_equal(ours.lookahead, la), "lookahead counts differ from the reference"
    print(f"same {sample.size:,} tokens: one pass {sample.size / t_ours / 1e6:.1f}M tok/s, per-pattern numpy "
          f"{sample.size / t_ref / 1e6:.2f}M tok/s -> ratio {t_ref / t_ours:.1f}x (counts equal)")

    times = {}
    for workers in (1, 2):
        times[workers], _ = best_of(args.repeat, lambda w=workers: count(path, rules, workers=w))
        print(f"full corpus {c.total_tokens:,} tokens, {workers} worker(s): {times[workers]:.2f}s = "
              f"{c.total_tokens / times[workers] / 1e6:.1f}M tok/s")
    print(f"scaling 1 -> 2 workers: {times[1] / times[2]:.2f}x")
    print(f"peak RSS of a counting process: {child_peak_rss(path):.0f} MiB")


if __name__ == "__main__":
    main()
