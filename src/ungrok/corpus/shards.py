"""Token shards: flat little-endian token ids plus a manifest every later step reads.

A corpus folder holds `shard_00000.bin`, ... (uint16 when the vocabulary fits, else
uint32), the `tokenizer.json` that made them and `manifest.json` with token counts
and a sha256 per shard. Every document is followed by the end-of-text id. Nothing
time-dependent goes in the manifest, so a rebuild from the same inputs is
byte-identical.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ungrok.errors import UngrokError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
DEFAULT_SHARD_TOKENS = 50_000_000  # the paper's shard size
Dtype = Literal["uint16", "uint32"]


class ShardInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str
    tokens: int
    sha256: str


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int = FORMAT_VERSION
    dtype: Dtype
    vocab_size: int
    eot_id: int
    tokenizer_sha256: str
    total_tokens: int
    documents: int
    shards: list[ShardInfo]
    source: dict[str, Any] = {}


def dtype_for_vocab(vocab_size: int, requested: str | None = None) -> Dtype:
    """uint16 when every id fits, else uint32; a requested dtype too small is an error."""
    if requested not in (None, "auto", "uint16", "uint32"):
        raise UngrokError(f"unknown dtype {requested!r}; use uint16, uint32 or auto")
    if requested == "uint16" and vocab_size > 2**16:
        raise UngrokError(
            f"vocabulary of {vocab_size} ids does not fit uint16 (max 65536); use --dtype uint32"
        )
    if requested in ("uint16", "uint32"):
        return requested  # type: ignore[return-value]
    return "uint16" if vocab_size <= 2**16 else "uint32"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class ShardWriter:
    """Append token ids; cut shards at `shard_tokens`; hash as we write (bounded memory)."""

    def __init__(self, out_dir: Path, dtype: Dtype, shard_tokens: int = DEFAULT_SHARD_TOKENS):
        if shard_tokens < 1:
            raise UngrokError("shard size must be at least 1 token")
        self.out_dir = Path(out_dir)
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.limit = int(np.iinfo(self.dtype).max)
        self.shard_tokens = shard_tokens
        self.shards: list[ShardInfo] = []
        self.documents = 0
        self._file: Any = None
        self._hash: Any = None
        self._count = 0

    def _open(self) -> None:
        name = f"shard_{len(self.shards):05d}.bin"
        self._file = open(self.out_dir / name, "wb")  # noqa: SIM115 - closed in _close
        self._hash = hashlib.sha256()
        self._count = 0
        self._name = name

    def _close(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self.shards.append(ShardInfo(file=self._name, tokens=self._count, sha256=self._hash.hexdigest()))
        self._file = None

    def write(self, ids: np.ndarray, documents: int = 0) -> None:
        """Write ids (already including end-of-text ids) and count `documents` finished."""
        ids = np.asarray(ids)
        if ids.size and (int(ids.max()) > self.limit or int(ids.min()) < 0):
            raise UngrokError(f"token id out of range for {self.dtype.name}")
        data = ids.astype(self.dtype, copy=False)
        pos = 0
        while pos < data.size:
            if self._file is None:
                self._open()
            take = min(self.shard_tokens - self._count, data.size - pos)
            raw = data[pos : pos + take].tobytes()
            self._file.write(raw)
            self._hash.update(raw)
            self._count += take
            pos += take
            if self._count >= self.shard_tokens:
                self._close()
        self.documents += documents

    def finish(self) -> list[ShardInfo]:
        self._close()
        return self.shards


def write_manifest(out_dir: Path, manifest: Manifest) -> None:
    text = json.dumps(manifest.model_dump(), indent=2, sort_keys=True) + "\n"
    (Path(out_dir) / MANIFEST).write_text(text, encoding="utf-8")


def read_manifest(corpus_dir: str | Path) -> Manifest:
    path = Path(corpus_dir) / MANIFEST
    if not path.is_file():
        raise UngrokError(f"{corpus_dir}: not a corpus folder (no {MANIFEST})")
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError) as e:
        first = str(e).splitlines()[0]
        raise UngrokError(f"{path}: malformed manifest ({first})") from None


class Corpus:
    """A read-only view of a corpus folder; shards are memory-mapped."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.dtype = np.dtype(self.manifest.dtype).newbyteorder("<")
        for s in self.manifest.shards:
            f = self.path / s.file
            if not f.is_file():
                raise UngrokError(f"{self.path}: shard {s.file} listed in the manifest is missing")
            size = f.stat().st_size
            if size != s.tokens * self.dtype.itemsize:
                raise UngrokError(
                    f"{f}: holds {size} bytes, manifest says {s.tokens} tokens "
                    f"({s.tokens * self.dtype.itemsize} bytes): truncated or wrong shard"
                )

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER

    @property
    def total_tokens(self) -> int:
        return self.manifest.total_tokens

    def shard(self, i: int) -> np.ndarray:
        s = self.manifest.shards[i]
        if s.tokens == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.path / s.file, dtype=self.dtype, mode="r", shape=(s.tokens,))

    def shards(self) -> Iterator[np.ndarray]:
        for i in range(len(self.manifest.shards)):
            yield self.shard(i)

    def tokens(self) -> np.ndarray:
        """All tokens in one array (copies; for small corpora and tests)."""
        parts = list(self.shards())
        return np.concatenate(parts) if parts else np.zeros(0, dtype=self.dtype)

    def verify(self) -> None:
        """Recompute every hash; raise naming the first shard or tokenizer that differs."""
        for s in self.manifest.shards:
            got = sha256_file(self.path / s.file)
            if got != s.sha256:
                raise UngrokError(
                    f"{self.path / s.file}: sha256 {got[:12]}… does not match manifest "
                    f"{s.sha256[:12]}…; the shard changed after it was built"
                )
        tok = self.tokenizer_path
        if tok.is_file() and sha256_file(tok) != self.manifest.tokenizer_sha256:
            raise UngrokError(f"{tok}: sha256 does not match the manifest's tokenizer_sha256")
