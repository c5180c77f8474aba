"""Benchmark: how long a kill, a ladder and a rescue take per 100M tokens, and the kill's
site pass against a naive per-site Python loop.

Builds a storyworld corpus once (default 30M tokens, cached under bench/.cache, the same
cache bench/support.py uses), then reports wall time and seconds per 100M tokens of:
- kill pronoun_gender_ref at p = 0.437 (site pass + writing + byte verification, and the
  two support counts that check the formula), 1 worker;
- a five-rate det_an_choice ladder in one pass;
- rescue pronoun_gender_ref at dose 1 (unit δ_TS) with append and with replace placement;
- on a slice, the vectorised/numba site pass vs a per-site Python loop (same sites).

    .venv/bin/python bench/edit.py [--tokens 30000000] [--slice 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ungrok.corpus.shards import Corpus
from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld
from ungrok.edit.kill import kill_corpus, prepare_kill
from ungrok.edit.ladder import build_ladder
from ungrok.edit.rescue import build_rescue

HERE = Path(__file__).resolve().parent
DELTA_TS = 780_313 / 466_769_099  # docs/method.md §6.1: the paper's dose unit


def corpus(tokens: int) -> Path:
    path = HERE / ".cache" / f"storyworld-{tokens}"
    if not (path / "manifest.json").is_file():
        print(f"building a {tokens:,}-token storyworld corpus once at {path} ...", flush=True)
        build_storyworld(path, StoryworldConfig(tokens=tokens, seed=0))
    return path


def naive_sites(
    tokens: list[int], cues: set[int], channels: list[tuple[int, int]], window: int
) -> dict[int, int]:
    """The kill's site rule as a plain per-position Python loop (docs/method.md §8.1 read literally)."""
    n = len(tokens)
    sites: dict[int, int] = {}
    for c in range(n):
        if tokens[c] not in cues:
            continue
        for k, (src, dst) in enumerate(channels):
            for j in range(c + 1, min(n, c + window + 1)):
                if tokens[j] == dst:
                    break
                if tokens[j] == src:
                    sites[j] = k
                    break
    return sites


def per_100m(seconds: float, tokens: int) -> str:
    return f"{seconds:.2f}s ({seconds / tokens * 1e8:.1f}s per 100M tokens)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=30_000_000)
    ap.add_argument("--slice", type=int, default=1_000_000)
    args = ap.parse_args()
    src = corpus(args.tokens)
    W = Corpus(src).total_tokens
    work = Path(tempfile.mkdtemp(prefix="ungrok-bench-edit-", dir=HERE / ".cache"))
    try:
        setup = prepare_kill(src, "pronoun_gender_ref", None, 1, None)  # also warms numba
        t = time.perf_counter()
        from ungrok.support.count import count

        count(src, [setup.spec])
        t_count = time.perf_counter() - t

        t = time.perf_counter()
        prov = kill_corpus(src, work / "kill", "pronoun_gender_ref", 0.437, seed=0)
        t_kill = time.perf_counter() - t
        print(f"corpus: {W:,} tokens ({len(Corpus(src).manifest.shards)} shards); CPU shared with other jobs")
        print(f"kill pronoun_gender_ref p=0.437: {per_100m(t_kill, W)}; {prov['flipped_sites']:,} of "
              f"{prov['eligible_sites']:,} sites flipped, ratio {prov['support']['before']['ratio']:.3g} -> "
              f"{prov['support']['after']['ratio']:.3g}")
        print(f"  of which two support counts (before/after): ~{per_100m(2 * t_count, W)}; "
              f"edit pass (sites, write, verify): ~{per_100m(t_kill - 2 * t_count, W)}")

        rates = [0.5, 0.667, 0.8, 0.9, 1.0]
        t = time.perf_counter()
        build_ladder(src, work / "ladder", "det_an_choice", rates, seed=0)
        t_lad = time.perf_counter() - t
        print(f"ladder det_an_choice {len(rates)} rates, one pass: {per_100m(t_lad, W)} "
              f"(includes {len(rates) + 1} support counts)")
        shutil.rmtree(work / "ladder")

        for placement in ("append", "replace"):
            t = time.perf_counter()
            r = build_rescue(
                src, work / placement, "pronoun_gender_ref", 1.0, unit=DELTA_TS, placement=placement
            )
            t_r = time.perf_counter() - t
            print(f"rescue pronoun_gender_ref dose 1 (δ_TS), {placement}: {per_100m(t_r, W)}; "
                  f"{r['n_events']:,} events/class, {r['injected']['tokens']:,} injected tokens, "
                  f"accounting {r['accounting']['fraction']['rule']:.1%}")
            shutil.rmtree(work / placement)

        # the site pass alone vs a naive per-site loop, on the same slice
        c = Corpus(src)
        toks = np.asarray(c.shard(0)[: args.slice])
        plan = setup.plan
        t = time.perf_counter()
        sites = plan.sites(toks, 0, toks.size)
        t_fast = time.perf_counter() - t
        cues = {s[0] for s in plan.kill_cues.seqs if len(s) == 1}
        channels = [(ch.src, ch.dst) for ch in plan.channels]
        lst = toks.tolist()
        t = time.perf_counter()
        ref = naive_sites(lst, cues, channels, plan.window)
        t_naive = time.perf_counter() - t
        assert sorted(ref) == sites.pos.tolist(), "site pass differs from the naive loop"
        print(f"site pass on {toks.size:,} tokens: vectorised {toks.size / t_fast / 1e6:.1f}M tok/s, naive Python "
              f"{toks.size / t_naive / 1e6:.2f}M tok/s -> {t_naive / t_fast:.0f}x (same {len(ref):,} sites)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
