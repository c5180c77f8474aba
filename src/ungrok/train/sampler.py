"""Packed IID sampling of fixed-length windows (docs/method.md §1.3), reproducible from (config, seed).

Each of a step's rows is drawn independently: a shard with probability proportional
to its (capped) size, then a uniform offset in [0, size - (context + 1)), then
context + 1 contiguous tokens (inputs and shifted targets). Sampling is with
replacement, not by epochs; windows cross document boundaries. The stream depends on
nothing but the config and the seed, so the support engine can count exactly what
training will serve.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ungrok.corpus.shards import Corpus, Manifest
from ungrok.errors import UngrokError


class PhaseB(BaseModel):
    """A second shard set used for every step >= switch_step (half-open windows); seed + 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    data: str
    switch_step: int = Field(ge=0)


class SamplerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    context: int = Field(2048, ge=1)
    batch_size: int = Field(32, ge=1)
    steps: int = Field(4400, ge=0)
    max_tokens: int | None = Field(None, ge=1)  # unique-data budget: first N tokens of the stream
    phase_b: PhaseB | None = None


def budgeted_shards(manifest: Manifest, max_tokens: int | None) -> list[tuple[int, int]]:
    """(shard index, tokens kept) in sorted filename order: the budget keeps the stream's first N tokens."""
    left = max_tokens if max_tokens is not None else manifest.total_tokens
    out = []
    for i in sorted(range(len(manifest.shards)), key=lambda i: manifest.shards[i].file):
        take = min(manifest.shards[i].tokens, left)
        left -= take
        out.append((i, take))
    return out


class PackedSampler:
    """Windows of one shard set: `batch(step)` -> (shard index, offset) per row."""

    def __init__(self, corpus: str | Path, context: int, max_tokens: int | None, seed: int):
        self.corpus = Corpus(corpus)
        self.context = context
        self.window = context + 1
        kept = budgeted_shards(self.corpus.manifest, max_tokens)
        capped = [(i, take) for i, take in kept if take > self.window]  # <= context + 1 tokens: dropped
        if not capped:
            raise UngrokError(
                f"{corpus}: no shard holds more than context + 1 = {self.window} tokens"
                + (f" within the budget of {max_tokens:,}" if max_tokens else "")
            )
        if max_tokens is not None and max_tokens > self.corpus.total_tokens:
            raise UngrokError(
                f"budget {max_tokens:,} tokens exceeds the corpus ({self.corpus.total_tokens:,})"
            )
        self.shard_ids = np.array([i for i, _ in capped], dtype=np.int64)
        self.sizes = np.array([n for _, n in capped], dtype=np.int64)
        self.probs = self.sizes / self.sizes.sum()
        self.rng = np.random.default_rng(seed)

    def draw(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The next `rows` windows: (shard index in the manifest, start offset)."""
        pick = self.rng.choice(len(self.sizes), size=rows, p=self.probs)
        offsets = self.rng.integers(0, self.sizes[pick] - self.window)
        return self.shard_ids[pick], offsets

    def tokens(self, shard: int, offset: int) -> np.ndarray:
        return np.asarray(self.corpus.shard(int(shard))[offset : offset + self.window])


def served_windows(
    data: str | Path, cfg: SamplerConfig, seed: int, start_step: int = 0
) -> Iterator[tuple[int, PackedSampler, np.ndarray, np.ndarray]]:
    """(step, sampler, shard ids, offsets) for every step the trainer will run, in order."""
    a = PackedSampler(data, cfg.context, cfg.max_tokens, seed)
    b = None
    if cfg.phase_b is not None:
        b = PackedSampler(cfg.phase_b.data, cfg.context, None, seed + 1)
        if b.corpus.manifest.tokenizer_sha256 != a.corpus.manifest.tokenizer_sha256:
            raise UngrokError("phase_b shards use a different tokenizer from the main shards")
    for step in range(cfg.steps):
        s = b if (b is not None and step >= cfg.phase_b.switch_step) else a  # type: ignore[union-attr]
        shards, offsets = s.draw(cfg.batch_size)
        if step >= start_step:
            yield step, s, shards, offsets
