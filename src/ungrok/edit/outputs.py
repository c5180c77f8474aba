"""Writing edited corpus folders: identity of the source, linked base shards, manifests.

Every edited corpus is an ordinary corpus folder (manifest, tokenizer, shards) that
the sampler, the support counter and `corpus stats` read unchanged; what the edit did
is recorded in the manifest's `source` field, next to the source corpus's identity.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ungrok.atomic import atomic_dir
from ungrok.corpus.shards import TOKENIZER, Corpus, Manifest, ShardInfo, write_manifest
from ungrok.errors import UngrokError
from ungrok.hashing import manifest_sha256


def source_identity(c: Corpus) -> dict[str, Any]:
    """What an edited corpus was made from: enough to find and re-verify it."""
    return {
        "path": str(c.path.resolve()),
        "manifest_sha256": manifest_sha256(c.path),
        "total_tokens": c.manifest.total_tokens,
        "documents": c.manifest.documents,
        "shards": len(c.manifest.shards),
        "upstream": c.manifest.source,
    }


def link_shards(c: Corpus, out_dir: Path) -> list[str]:
    """Hard-link every source shard into out_dir (instant, no extra disk), copying where links are
    impossible; returns the modes used."""
    modes = set()
    for s in c.manifest.shards:
        src, dst = c.path / s.file, out_dir / s.file
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
            modes.add("hardlink")
        except OSError:
            shutil.copyfile(src, dst)
            modes.add("copy")
    return sorted(modes)


def write_corpus(
    out_dir: Path, c: Corpus, shards: list[ShardInfo], documents: int, source: dict[str, Any]
) -> Manifest:
    """The source's tokenizer, and a manifest with the source's dtype, vocabulary and tokenizer
    and the given shards: what makes out_dir an ordinary corpus folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(c.tokenizer_path, out_dir / TOKENIZER)
    like = c.manifest
    m = Manifest(
        dtype=like.dtype,
        vocab_size=like.vocab_size,
        eot_id=like.eot_id,
        tokenizer_sha256=like.tokenizer_sha256,
        total_tokens=sum(s.tokens for s in shards),
        documents=documents,
        shards=shards,
        source=source,
    )
    write_manifest(out_dir, m)
    return m


@contextlib.contextmanager
def new_folder(dst: str | Path, force: bool) -> Iterator[Path]:
    """`atomic_dir`, refusing in one line a destination that appeared while the edit ran
    (`guard_output` checked it before any work)."""
    try:
        with atomic_dir(dst, force) as tmp:
            yield tmp
    except FileExistsError:
        raise UngrokError(f"{dst} already exists; use --force to replace it") from None


def read_span(c: Corpus, starts: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Tokens [start, stop) of the corpus stream (shards in manifest order), across shard files.

    `starts` holds each shard's first global position plus the total at the end.
    """
    start, stop = max(int(start), 0), min(int(stop), int(starts[-1]))
    if stop <= start:
        return np.zeros(0, dtype=c.dtype)
    first = int(np.searchsorted(starts, start, side="right")) - 1
    parts = []
    i = first
    while i < len(c.manifest.shards) and starts[i] < stop:
        lo, hi = int(starts[i]), int(starts[i + 1])
        if hi > lo:
            parts.append(np.asarray(c.shard(i)[max(start - lo, 0) : min(stop, hi) - lo]))
        i += 1
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def chunks(c: Corpus, size: int, after: int = 0) -> Iterator[tuple[int, int, np.ndarray]]:
    """The corpus stream in ranges [a, b) of `size` tokens: (a, b, tokens [a, b + after)), where
    `after` is the context a match or window that starts before b may read past it."""
    starts = shard_starts(c)
    total = int(starts[-1])
    for a in range(0, total, size):
        b = min(a + size, total)
        yield a, b, read_span(c, starts, a, b + after)


def shard_starts(c: Corpus) -> np.ndarray:
    sizes = np.array([s.tokens for s in c.manifest.shards], dtype=np.int64)
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
