"""Benchmark: storyworld's vectorised id generator vs a naive text generator + tokenizer.

Reports, in one run and on one core (numpy and the tokenizer's Rust threads pinned to 1):
- tokens/s of `build_storyworld` writing a --tokens corpus (default 50M) to a temp folder,
  shards, tokenizer and manifest included;
- tokens/s of the naive way to make the same kind of text: fill the same templates
  sentence by sentence in Python, join the text, `Tokenizer.encode_batch` it
  (--reference-tokens, default 2M, then extrapolated as a rate);
- their ratio.

    .venv/bin/python bench/storyworld.py [--tokens 50000000] [--reference-tokens 2000000]
"""

from __future__ import annotations

import os

os.environ.setdefault("RAYON_RS_NUM_CPUS", "1")  # one tokenizer thread, a fair one-core compare
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from ungrok.corpus import storyworld as sw  # noqa: E402


def naive_documents(cfg: sw.StoryworldConfig, rng: random.Random):  # noqa: ANN201
    """One story at a time, one sentence at a time, as text (the obvious implementation)."""
    body = [(cat, t) for cat, ts in sw.TEMPLATES.items() if cat != "intro" for t in ts]
    weights = [sw.CATEGORY_WEIGHTS.get(cat, 0.03) / len(sw.TEMPLATES[cat]) for cat, _ in body]
    names = sw.GIRL_NAMES + sw.BOY_NAMES
    subjects = sw.MARGIN_SUBJECTS + sw.OTHER_SUBJECTS
    while True:
        girl = rng.random() < 0.5
        hero = rng.choice(sw.GIRL_NAMES if girl else sw.BOY_NAMES)
        n = rng.randint(cfg.min_sentences, cfg.max_sentences)
        texts = [rng.choice(sw.TEMPLATES["intro"])]
        texts += [t for _, t in rng.choices(body, weights, k=n - 1)]
        out = []
        for t in texts:
            words = []
            last_girl = girl
            for w in t.split():
                if not w.startswith("{"):
                    words.append(w)
                    continue
                slot = w[1:-1]
                if slot in ("N", "N2", "FN"):
                    nm = hero if slot == "N" and rng.random() < 0.5 else rng.choice(names)
                    last_girl = nm in sw.GIRL_NAMES
                    words.append(nm)
                elif slot == "GN":
                    last_girl = rng.random() < 0.5
                    words.append(rng.choice(sw.FEM_NOUNS if last_girl else sw.MASC_NOUNS))
                elif slot in ("OCC", "FOCC"):
                    last_girl = rng.random() < 0.2
                    words.append(rng.choice(subjects))
                elif slot == "P":
                    words.append("she" if last_girl == (rng.random() < 0.9) else "he")
                elif slot == "R":
                    words.append("herself" if last_girl == (rng.random() < 0.95) else "himself")
                elif slot == "CAPP":
                    words.append("She" if girl else "He")
                elif slot == "DET":
                    words.append("a")  # fixed below once the noun is known
                elif slot in sw.CHOICES:
                    rule, prior = rng.choice(sw.CHOICES[slot][1])
                    words.append(rule if rng.random() < 0.95 else prior)
                else:
                    words.append(rng.choice(sw.LISTS[slot]))
            for i, w in enumerate(words[:-1]):
                if w == "a" and words[i + 1][0] in "aeiou" and rng.random() < 0.95:
                    words[i] = "an"
            out.append(" ".join(words).replace(" ,", ",").replace(" .", "."))
        yield " ".join(out)


def naive(cfg: sw.StoryworldConfig, tokens: int) -> tuple[int, float]:
    tok = sw.storyworld_tokenizer()
    rng = random.Random(cfg.seed)
    docs = naive_documents(cfg, rng)
    t0 = time.perf_counter()
    done = 0
    while done < tokens:
        batch = [next(docs) for _ in range(1024)]
        for e in tok.encode_batch(batch, add_special_tokens=False):
            done += len(e.ids) + 1  # + end-of-text
    return done, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=50_000_000)
    ap.add_argument("--reference-tokens", type=int, default=2_000_000)
    args = ap.parse_args()
    cfg = sw.StoryworldConfig(tokens=args.tokens, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rep = sw.build_storyworld(Path(tmp) / "storyworld", cfg)
        dt = time.perf_counter() - t0
    fast = rep.total_tokens / dt
    print(
        f"storyworld   {rep.total_tokens:>12,} tokens in {dt:7.2f}s = {fast:>13,.0f} tokens/s "
        f"({rep.documents:,} documents, {rep.shards} shard(s), written)"
    )
    n, dn = naive(cfg, args.reference_tokens)
    slow = n / dn
    print(
        f"naive text   {n:>12,} tokens in {dn:7.2f}s = {slow:>13,.0f} tokens/s "
        f"(per-sentence Python + encode_batch, not written)"
    )
    print(
        f"ratio        {fast / slow:,.1f}x faster; 50M tokens take {50e6 / fast:.1f}s "
        f"(naive: {50e6 / slow:.0f}s)"
    )


if __name__ == "__main__":
    main()
