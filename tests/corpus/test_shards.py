from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ungrok.corpus.shards import (
    Corpus,
    Manifest,
    ShardWriter,
    dtype_for_vocab,
    write_manifest,
)
from ungrok.errors import UngrokError


def _write_corpus(tmp_path, ids, dtype, shard_tokens):
    w = ShardWriter(tmp_path, dtype, shard_tokens)
    w.write(ids, documents=1)
    shards = w.finish()
    m = Manifest(
        dtype=dtype,
        vocab_size=int(ids.max()) + 1,
        eot_id=0,
        tokenizer_sha256="x",
        total_tokens=sum(s.tokens for s in shards),
        documents=1,
        shards=shards,
    )
    write_manifest(tmp_path, m)
    return shards


def test_shards_split_roundtrip_and_hash(tmp_path):
    ids = np.arange(1000, dtype=np.int64) % 700
    shards = _write_corpus(tmp_path, ids, "uint16", shard_tokens=300)
    assert [s.tokens for s in shards] == [300, 300, 300, 100]
    for s in shards:
        # independent expectation: hashlib over the file bytes, little-endian uint16
        assert s.sha256 == hashlib.sha256((tmp_path / s.file).read_bytes()).hexdigest()
    c = Corpus(tmp_path)
    assert np.array_equal(c.tokens(), ids)
    raw = (tmp_path / "shard_00000.bin").read_bytes()
    assert raw[:4] == bytes([0, 0, 1, 0])  # little-endian 0, 1
    c.verify()


def test_uint32_for_large_ids(tmp_path):
    ids = np.array([0, 70000, 5, 2**32 - 1], dtype=np.int64)
    _write_corpus(tmp_path, ids, "uint32", shard_tokens=10)
    assert (tmp_path / "shard_00000.bin").stat().st_size == 16
    assert Corpus(tmp_path).tokens().tolist() == ids.tolist()


def test_dtype_choice():
    assert dtype_for_vocab(8192) == "uint16"
    assert dtype_for_vocab(65536) == "uint16"
    assert dtype_for_vocab(65537) == "uint32"
    with pytest.raises(UngrokError, match="does not fit uint16"):
        dtype_for_vocab(100_000, "uint16")


def test_id_out_of_range_for_dtype(tmp_path):
    w = ShardWriter(tmp_path, "uint16", 10)
    with pytest.raises(UngrokError, match="out of range"):
        w.write(np.array([70000]))


def test_tampered_shard_is_named(tmp_path):
    _write_corpus(tmp_path, np.arange(100) % 50, "uint16", shard_tokens=60)
    path = tmp_path / "shard_00001.bin"
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(UngrokError, match="shard_00001.bin: sha256"):
        Corpus(tmp_path).verify()


def test_truncated_shard_is_refused(tmp_path):
    _write_corpus(tmp_path, np.arange(100) % 50, "uint16", shard_tokens=60)
    path = tmp_path / "shard_00000.bin"
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(UngrokError, match="truncated"):
        Corpus(tmp_path)


def test_not_a_corpus(tmp_path):
    with pytest.raises(UngrokError, match="not a corpus folder"):
        Corpus(tmp_path)
    (tmp_path / "manifest.json").write_text("{bad json")
    with pytest.raises(UngrokError, match="malformed manifest"):
        Corpus(tmp_path)
