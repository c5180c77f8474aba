"""The one hashing module reproduces every hash ungrok has already written, byte for byte.

Each expected value is recomputed here with hashlib and json directly (the recipe the
old per-module copies used), and the published ones are pinned as literals too.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from ungrok.fate.config import DEFAULT_CONFIG, ClassifierConfig
from ungrok.fate.watch_config import DEFAULT_WATCH
from ungrok.hashing import (
    canonical_json,
    manifest_sha256,
    sha256_bytes,
    sha256_file,
    sha256_json,
    sha256_json_spaced,
    sha256_text,
)
from ungrok.prereg.ledger import entry_hash
from ungrok.probes.battery import load_battery

CLASSIFIER_SHA = "da5baf11200e69423ab905570c51f5269acade6d9e2912ebc8d41bc1cd4e5e7d"
WATCH_SHA = "5932ddb289a74ff51151f89692833375b6b87150a4390f2f815a9216cb81f427"
RVP3_SHA = "17f539b620e0380fa7f6e493698f3544e00a30174380880e2a0eeab117fc77bb"
OBJ = {"b": [1, 2.5, None], "a": "é", "c": {"z": True, "y": "x"}}


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_canonical_json_is_sorted_compact_and_ascii():
    assert canonical_json(OBJ) == '{"a":"\\u00e9","b":[1,2.5,null],"c":{"y":"x","z":true}}'
    assert canonical_json({"b": 1, "a": 2}) == canonical_json({"a": 2, "b": 1})
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    assert canonical_json({"x": float("inf")}, allow_nan=True) == '{"x":Infinity}'


def test_json_hashes_match_hashlib_and_pinned_values():
    want = _hex(json.dumps(OBJ, sort_keys=True, separators=(",", ":"), ensure_ascii=True))
    assert sha256_json(OBJ) == want == "13abcba31f135b1ea142b43f54abaf42c457d16b574bdce280417d648d2a1ed7"
    spaced = _hex(json.dumps(OBJ, sort_keys=True))
    assert sha256_json_spaced(OBJ) == spaced == "2741afe33aec55b0b077b0e789ceb46be01a68d2623be7736cd69fab45fdb7ef"
    assert sha256_text("é") == hashlib.sha256("é".encode()).hexdigest() == sha256_bytes(b"\xc3\xa9")


def test_classifier_and_watch_hashes_are_the_frozen_ones():
    for cfg, pinned in ((DEFAULT_CONFIG, CLASSIFIER_SHA), (DEFAULT_WATCH, WATCH_SHA)):
        text = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert cfg.canonical_json() == text
        assert cfg.sha256() == _hex(text) == pinned
    # A non-finite constant still hashes (json's Infinity), as it did before the move.
    inf = ClassifierConfig(cm_guard_nats=float("inf"))
    assert len(inf.sha256()) == 64 and inf.sha256() != CLASSIFIER_SHA


def test_ledger_entry_hash_is_canonical_json_without_its_hash():
    fields = {"kind": "read", "key": "c/1/traj", "hash": "ignored", "prev": "0" * 64}
    body = {k: v for k, v in fields.items() if k != "hash"}
    assert entry_hash(fields) == _hex(json.dumps(body, sort_keys=True, separators=(",", ":")))


def test_file_and_manifest_hashes(tmp_path):
    data = bytes(range(256)) * 1000
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert sha256_file(f) == sha256_file(str(f), chunk=7) == sha256_bytes(data) == want
    (tmp_path / "manifest.json").write_bytes(b'{"shards": []}\n')
    assert manifest_sha256(tmp_path) == hashlib.sha256(b'{"shards": []}\n').hexdigest()


def test_published_battery_hash_is_its_file_hash(reference):
    path = reference / "batteries/rvp3/battery.jsonl"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == RVP3_SHA
    b = load_battery(path)
    assert b.sha256 == b.file_sha256 == sha256_file(path) == RVP3_SHA
