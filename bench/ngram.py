"""Benchmark: the n-gram baseline's one-pass trie counter vs numpy references, same tokens.

Uses a storyworld corpus (default 30M tokens, cached under bench/.cache like bench/support.py)
and the n-grams every built-in rule's battery items need for Stupid Backoff up to order 5.
Reports in one run:
- tokens/s of the fast counter (NgramCounter.add, numba, 1 thread) over the flat stream;
- the same for a vectorised numpy reference (per order: rolling keys of every position,
  np.searchsorted into the sorted pattern keys, np.bincount), after checking equal counts,
  and the ratio;
- the same for a naive per-pattern numpy reference (one vectorised match per n-gram), on
  the order-2 patterns only (all 8k order-5 patterns would take minutes), and the ratio;
- end-to-end tokens/s of counting a served stream (context 2048, batch 32: gather the
  windows from the memory-mapped shards, then count) with one snapshot.
Every timing is the best of --repeat runs.

    .venv/bin/python bench/ngram.py [--tokens 30000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from ungrok.corpus.shards import Corpus
from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld
from ungrok.mech.ngram import NgramCounter, ServedRun, battery_ids, query_patterns, served_snapshots
from ungrok.probes.battery import build_battery
from ungrok.probes.models import TokenizerFile
from ungrok.train.sampler import SamplerConfig

HERE = Path(__file__).resolve().parent


def corpus(tokens: int) -> Path:
    path = HERE / ".cache" / f"storyworld-{tokens}"
    if not (path / "manifest.json").is_file():
        print(f"building a {tokens:,}-token storyworld corpus once at {path} ...", flush=True)
        build_storyworld(path, StoryworldConfig(tokens=tokens, seed=0))
    return path


def best(fn, repeat: int) -> tuple[float, object]:  # noqa: ANN001
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def fast_counts(queries, order: int, tokens: np.ndarray) -> NgramCounter:  # noqa: ANN001
    c = NgramCounter(queries, order)
    c.add(tokens)
    return c


def numpy_counts(
    patterns: list[tuple[int, ...]], tokens: np.ndarray
) -> dict[tuple[int, ...], tuple[int, int]]:
    """Per order: every position's n-gram as a packed key, looked up in the sorted pattern keys."""
    vocab = sorted({t for p in patterns for t in p})
    bits = len(vocab).bit_length()
    assert bits * max(map(len, patterns)) <= 63
    comp = np.zeros(max(int(tokens.max()), vocab[-1]) + 1, dtype=np.int64)  # token -> 1..K, 0 elsewhere
    comp[vocab] = np.arange(1, len(vocab) + 1)
    c = comp[tokens]
    n = c.size
    out: dict[tuple[int, ...], tuple[int, int]] = {}
    for L in sorted({len(p) for p in patterns}):
        pats = [p for p in patterns if len(p) == L]
        pkeys = np.array([sum(int(comp[t]) << (bits * j) for j, t in enumerate(reversed(p))) for p in pats])
        order = np.argsort(pkeys)
        pkeys, pats = pkeys[order], [pats[i] for i in order]
        key = np.zeros(n - L + 1, dtype=np.int64)
        ok = np.ones(n - L + 1, dtype=bool)
        for j in range(L):  # slot j holds the token j places before the n-gram's end
            part = c[L - 1 - j : n - j]
            key |= part << (bits * j)
            ok &= part > 0
        idx = np.minimum(np.searchsorted(pkeys, key), len(pkeys) - 1)
        hit = ok & (pkeys[idx] == key)
        occ = np.bincount(idx[hit], minlength=len(pats))
        last = hit.size - 1  # the n-gram ending at the last token is followed by nothing
        fol = occ.copy()
        if hit.size and hit[last]:
            fol[idx[last]] -= 1
        out.update({p: (int(o), int(f)) for p, o, f in zip(pats, occ, fol, strict=True)})
    return out


def per_pattern_counts(patterns: list[tuple[int, ...]], tokens: np.ndarray) -> dict[tuple[int, ...], int]:
    """One vectorised match per pattern: the way a counter without a fused pass would do it."""
    out = {}
    for p in patterns:
        m = tokens.size - len(p) + 1
        mask = tokens[:m] == p[0]
        for q, t in enumerate(p[1:], 1):
            mask &= tokens[q : q + m] == t
        out[p] = int(mask.sum())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=30_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    path = corpus(args.tokens)
    c = Corpus(path)
    tokens = c.tokens()[: args.tokens]
    battery = build_battery()
    ids = battery_ids(battery, TokenizerFile.load(c.tokenizer_path))
    queries = ids.queries()
    n = tokens.size
    print(f"stream: {n:,} tokens ({tokens.dtype}); battery: {len(battery):,} items, "
          f"{len(queries):,} queries; numba threads: 1; cpus: {os.cpu_count()}")

    fast_counts(queries, 5, tokens[:1000])  # compile outside the timings
    t_fast, fast = best(lambda: fast_counts(queries, 5, tokens), args.repeat)
    snap = fast.snapshot()
    patterns = list(snap.index)
    t_np, ref = best(lambda: numpy_counts(patterns, tokens), args.repeat)
    assert all(ref[p] == (snap.occ[k], snap.followed[k]) for p, k in snap.index.items()), "counts differ"
    print(f"order <= 5, {len(patterns):,} patterns: fast {n / t_fast / 1e6:8.1f} M tok/s ({t_fast:.3f} s)"
          f" | numpy per order {n / t_np / 1e6:6.1f} M tok/s ({t_np:.2f} s)"
          f" | ratio {t_np / t_fast:.1f}x")

    pats2 = query_patterns(queries, 2)
    t_fast2, fast2 = best(lambda: fast_counts(queries, 2, tokens), args.repeat)
    t_pp, ref2 = best(lambda: per_pattern_counts(pats2, tokens), 1)
    s2 = fast2.snapshot()
    assert all(ref2[p] == s2.occ[k] for p, k in s2.index.items()), "counts differ"
    print(f"order <= 2, {len(pats2):,} patterns: fast {n / t_fast2 / 1e6:8.1f} M tok/s ({t_fast2:.3f} s)"
          f" | numpy per pattern {n / t_pp / 1e6:6.2f} M tok/s ({t_pp:.1f} s)"
          f" | ratio {t_pp / t_fast2:.0f}x")

    steps = max(1, n // (32 * 2049))
    run = ServedRun(path, path, SamplerConfig(context=2048, batch_size=32, steps=steps), seed=0)
    t_srv, snaps = best(lambda: served_snapshots(run, NgramCounter(queries, 5), [steps]), args.repeat)
    served = snaps[steps].total
    print(f"served stream ({steps} steps x 32 x 2049 = {served:,} tokens, gather + count, order 5): "
          f"{served / t_srv / 1e6:.1f} M tok/s ({t_srv:.2f} s)")


if __name__ == "__main__":
    main()
