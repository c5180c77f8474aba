"""Token shards: flat little-endian token ids plus a manifest every later step reads.

A corpus folder holds `shard_00000.bin`, ... (uint16 when the vocabulary fits, else
uint32), the `tokenizer.json` that made them and `manifest.json` with token counts
and a sha256 per shard. Every document is followed by the end-of-text id. Nothing
time-dependent goes in the manifest, so a rebuild from the same inputs is
byte-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ungrok.errors import UngrokError
from ungrok.hashing import MANIFEST, sha256_file

FORMAT_VERSION = 1
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
    """Parse and check a corpus's manifest: every reader of a corpus comes through here."""
    path = Path(corpus_dir) / MANIFEST
    if not path.is_file():
        raise UngrokError(f"{corpus_dir}: not a corpus folder (no {MANIFEST})")
    try:
        m = Manifest.model_validate_json(path.read_bytes())
    except (ValidationError, ValueError) as e:
        first = str(e).splitlines()[0]
        raise UngrokError(f"{path}: malformed manifest ({first})") from None
    problem = manifest_problem(m)
    if problem:
        raise UngrokError(f"{path}: refused manifest: {problem}")
    return m


def _outside(file: str) -> bool:
    """A shard path that could name anything but a file of this corpus folder."""
    p = Path(file)
    return (
        not file
        or "\\" in file
        or p.is_absolute()
        or bool(p.drive)
        or any(part in ("..", ".") for part in p.parts)
        or file.endswith("/")
    )


def manifest_problem(m: Manifest) -> str | None:
    """What makes a parsed manifest unusable (a forged or damaged one), or None.

    Checked once here so no reader trusts a number the manifest could get wrong: the
    format, the vocabulary the ids must fall in, and shard paths inside the folder.
    """
    if m.format_version != FORMAT_VERSION:
        return f"unknown format_version {m.format_version} (this ungrok reads {FORMAT_VERSION})"
    if m.vocab_size < 1:
        return f"vocab_size {m.vocab_size} must be at least 1"
    cap = int(np.iinfo(np.dtype(m.dtype)).max) + 1
    if m.vocab_size > cap:
        return f"vocab_size {m.vocab_size:,} does not fit {m.dtype} (at most {cap:,} ids)"
    if not 0 <= m.eot_id < m.vocab_size:
        return f"eot_id {m.eot_id} is outside the vocabulary [0, {m.vocab_size})"
    if not m.shards:
        return "the shard list is empty"
    seen: set[str] = set()
    for sh in m.shards:
        if _outside(sh.file):
            return f"shard path {sh.file!r} is outside the corpus folder"
        if sh.file in seen:
            return f"shard {sh.file!r} is listed twice"
        seen.add(sh.file)
        if sh.tokens < 0:
            return f"shard {sh.file!r} has a negative token count"
    if m.total_tokens != sum(sh.tokens for sh in m.shards):
        return f"total_tokens {m.total_tokens:,} is not the sum of the shards' tokens"
    if m.documents < 0:
        return f"documents {m.documents} is negative"
    return None


# --------------------------------------------------------------------------- shard digests
# (sha256, largest id) per shard file, keyed by what changes when a file is rewritten, so
# that every verb can check a corpus it reads without re-hashing it each time.
_DIGESTS: dict[str, list] = {}
_DISK_LOADED = False
_DISK_MAX = 4096


def _cache_file() -> Path:
    root = os.environ.get("UNGROK_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ungrok"
    )
    return Path(root) / "shard-digests.json"


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}|{st.st_dev}"


def _load_disk_cache() -> None:
    global _DISK_LOADED
    if _DISK_LOADED:
        return
    _DISK_LOADED = True
    try:
        doc = json.loads(_cache_file().read_text(encoding="utf-8"))
        if isinstance(doc, dict):
            for k, v in doc.items():
                if isinstance(v, list) and len(v) == 2:
                    _DIGESTS.setdefault(k, v)
    except (OSError, ValueError):
        pass  # no cache, or an unreadable one: hash again


def _save_disk_cache() -> None:
    from ungrok.atomic import write_text

    items = list(_DIGESTS.items())[-_DISK_MAX:]
    with contextlib.suppress(OSError):  # a cache we cannot write only costs time
        write_text(_cache_file(), json.dumps(dict(items)))


def scan_shard(path: Path, dtype: np.dtype, chunk: int = 1 << 22) -> tuple[str, int]:
    """(sha256, largest token id) of one shard file, in one read."""
    h = hashlib.sha256()
    top = -1
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
            n = len(block) // dtype.itemsize * dtype.itemsize
            if n:
                top = max(top, int(np.frombuffer(block[:n], dtype=dtype).max()))
    return h.hexdigest(), top


def shard_digest(path: Path, dtype: np.dtype) -> tuple[str, int]:
    """scan_shard, cached by the file's size, mtime, ctime and inode (in process and on disk)."""
    _load_disk_cache()
    key = _stat_key(path)
    hit = _DIGESTS.get(key)
    if hit is not None:
        return str(hit[0]), int(hit[1])
    sha, top = scan_shard(path, dtype)
    _DIGESTS[key] = [sha, top]
    _save_disk_cache()
    return sha, top


class Corpus:
    """A read-only view of a corpus folder; shards are memory-mapped.

    Opening one checks it (sizes, shard and tokenizer hashes, ids inside the vocabulary),
    so every verb that reads a corpus refuses a damaged or forged one; `verify=False` is
    for worker processes reopening a corpus their parent already checked.
    """

    def __init__(self, path: str | Path, verify: bool = True):
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
        if verify:
            self.check()

    def check(self, cached: bool = True) -> None:
        """Every shard's sha256 and largest id, and the tokenizer's sha256, against the manifest."""
        m = self.manifest
        for s in m.shards:
            f = self.path / s.file
            got, top = shard_digest(f, self.dtype) if cached else scan_shard(f, self.dtype)
            if got != s.sha256:
                raise UngrokError(
                    f"{f}: sha256 {got[:12]}… does not match manifest "
                    f"{s.sha256[:12]}…; the shard changed after it was built"
                )
            if top >= m.vocab_size:
                raise UngrokError(
                    f"{f}: holds token id {top}, outside the vocabulary of {m.vocab_size:,} ids "
                    "(manifest vocab_size)"
                )
        tok = self.tokenizer_path
        if tok.is_file():
            got = shard_digest(tok, np.dtype(np.uint8))[0] if cached else sha256_file(tok)
            if got != m.tokenizer_sha256:
                raise UngrokError(f"{tok}: sha256 does not match the manifest's tokenizer_sha256")

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
        return np.concatenate(list(self.shards()))  # a manifest lists at least one shard

    def verify(self) -> None:
        """Recompute every hash (no cache); raise naming the first shard or tokenizer that differs."""
        self.check(cached=False)
