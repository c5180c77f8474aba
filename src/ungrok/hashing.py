"""Every sha256 ungrok records, in one place, so a hash means the same bytes wherever it is taken.

Registries, ledgers, classifier constants, batteries and corpora are all named by a sha256
that other files store and later compare. Each recipe lives here once: a second copy that
drifted by one separator would silently stop matching hashes written by the first.

- `canonical_json`: key-sorted, whitespace-free, ASCII-escaped JSON (independent of dict
  order and indentation), and `sha256_json` its hash (registry, ledger, classifier, watch).
- `sha256_json_spaced`: key-sorted JSON with json's default separators; the prompt-set
  hashes (margins, mech) were published that way and stores compare against them.
- `sha256_bytes` / `sha256_text` / `sha256_file` (chunked, bounded memory).
- `manifest_sha256`: a corpus's identity, the hash of its `manifest.json` bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
CHUNK = 1 << 22


def canonical_json(obj: Any, allow_nan: bool = False) -> str:
    """Key-sorted, compact, ASCII-only JSON: the text a structure's hash is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=allow_nan)


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of raw bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """Hex sha256 of text as UTF-8."""
    return sha256_bytes(text.encode("utf-8"))


def sha256_json(obj: Any, allow_nan: bool = False) -> str:
    """Hex sha256 of `canonical_json(obj)`: the same for any key order or indentation."""
    return sha256_text(canonical_json(obj, allow_nan=allow_nan))


def sha256_json_spaced(obj: Any) -> str:
    """Hex sha256 of key-sorted JSON with default separators (", ", ": ").

    Only for the prompt-set hashes already stored in trajectory and mech stores; new
    hashes use `sha256_json`.
    """
    return sha256_text(json.dumps(obj, sort_keys=True))


def sha256_file(path: str | Path, chunk: int = CHUNK) -> str:
    """Hex sha256 of a file read in chunks, so a multi-GB shard or checkpoint fits in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def manifest_sha256(corpus_dir: str | Path) -> str:
    """A corpus's identity: the sha256 of its manifest.json bytes (which hash every shard)."""
    return sha256_bytes((Path(corpus_dir) / MANIFEST).read_bytes())
