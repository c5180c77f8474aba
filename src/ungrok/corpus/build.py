"""`corpus build`: documents → tokenizer → shards + manifest, atomically and reproducibly."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from itertools import chain, islice
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict
from tokenizers import Tokenizer

from ungrok.atomic import atomic_dir
from ungrok.corpus.shards import (
    DEFAULT_SHARD_TOKENS,
    TOKENIZER,
    Manifest,
    ShardWriter,
    dtype_for_vocab,
    read_manifest,
    write_manifest,
)
from ungrok.corpus.tokenizer import encode_batches, eot_id, load_tokenizer, train_bpe
from ungrok.errors import UngrokError
from ungrok.hashing import sha256_file


class BuildOptions(BaseModel):
    """Everything that determines a built corpus; it is recorded in the manifest."""

    model_config = ConfigDict(extra="forbid")
    vocab_size: int = 8192
    tokenizer: str | None = None  # path of a given tokenizer.json; None = train a BPE
    train_docs: int | None = None  # train the BPE on the first N documents (None = all)
    text_field: str = "text"
    txt_mode: str = "blocks"
    split: str = "train"
    dtype: str = "auto"
    shard_tokens: int = DEFAULT_SHARD_TOKENS


class _Unchanged(Exception):
    """The rebuilt corpus equals the one already in place."""


def build_corpus(
    documents: Callable[[], Iterable[str]],
    out_dir: Path,
    opts: BuildOptions,
    source: dict,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Manifest, str]:
    """Build a corpus folder from a re-iterable document source.

    `documents()` is called once to train a tokenizer (if none is given) and once to
    encode, so inputs larger than memory stream through. Returns the manifest and
    one of "built", "unchanged" (the folder already held this exact corpus) or
    "replaced" (with force). `progress(documents, tokens)` reports increments.
    The folder is assembled beside out_dir and moved into place only when complete.
    """
    out_dir = Path(out_dir)
    existing = _existing_manifest(out_dir)
    if existing is None and out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise UngrokError(f"{out_dir}: exists and is not an ungrok corpus; use --force to replace it")
    tok = _tokenizer_for(documents, opts)
    eot = eot_id(tok)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    dtype = dtype_for_vocab(vocab, opts.dtype)
    status = "replaced" if out_dir.exists() else "built"
    try:
        with atomic_dir(out_dir, force=True) as tmp:
            tok_path = tmp / TOKENIZER
            if opts.tokenizer:
                shutil.copyfile(opts.tokenizer, tok_path)
            else:
                tok.save(str(tok_path))
            writer = ShardWriter(tmp, dtype, opts.shard_tokens)
            for batch in encode_batches(tok, documents(), batch=512):
                # Each document's ids, then the end-of-text id.
                arr = np.fromiter(chain.from_iterable([*ids, eot] for ids in batch), dtype=np.int64)
                writer.write(arr, documents=len(batch))
                if progress:
                    progress(len(batch), int(arr.size))
            shards = writer.finish()
            if writer.documents == 0:
                raise UngrokError("inputs hold no documents (every input is empty)")
            manifest = Manifest(
                dtype=dtype,
                vocab_size=vocab,
                eot_id=eot,
                tokenizer_sha256=sha256_file(tok_path),
                total_tokens=sum(s.tokens for s in shards),
                documents=writer.documents,
                shards=shards,
                source={**source, "options": _recorded(opts)},
            )
            write_manifest(tmp, manifest)
            if existing == manifest:
                raise _Unchanged
            if existing is not None and not force:
                raise UngrokError(f"{out_dir}: already holds a different corpus; use --force to replace it")
    except _Unchanged:
        return manifest, "unchanged"
    return manifest, status


def _recorded(opts: BuildOptions) -> dict:
    """Options as the manifest records them: a given tokenizer by file name (its hash is
    recorded too), so the same build from another folder is byte-identical."""
    d = opts.model_dump()
    if d["tokenizer"]:
        d["tokenizer"] = Path(d["tokenizer"]).name
    return d


def _tokenizer_for(documents: Callable[[], Iterable[str]], opts: BuildOptions) -> Tokenizer:
    if opts.tokenizer:
        return load_tokenizer(opts.tokenizer)
    return train_bpe(islice(documents(), opts.train_docs or None), opts.vocab_size)  # None: all


def _existing_manifest(out_dir: Path) -> Manifest | None:
    """The corpus already at out_dir, or None (no manifest, or one that does not read)."""
    try:
        return read_manifest(out_dir)
    except UngrokError:
        return None


def describe(manifest: Manifest) -> dict:
    """A plain summary for printing and JSON."""
    return {
        "tokens": manifest.total_tokens,
        "documents": manifest.documents,
        "shards": len(manifest.shards),
        "dtype": manifest.dtype,
        "vocab_size": manifest.vocab_size,
        "eot_id": manifest.eot_id,
        "tokenizer_sha256": manifest.tokenizer_sha256,
        "mean_doc_tokens": round(manifest.total_tokens / max(manifest.documents, 1), 2),
    }
