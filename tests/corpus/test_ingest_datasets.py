"""corpus build --hf-dataset: dataset repository folders and hub names from the offline cache.

Every source is built in a tmp folder: repository folders as the Hub lays them out (parquet
shards named train-0000N-of-00002, per-split jsonl folders, a README.md card with `configs:`)
and hub-cache snapshots (refs/main, snapshots/<commit>/ symlinked into blobs/), so nothing
touches the network. The expectation is independent of the build: each row's text encoded on
its own with the same word tokenizer, EOT after each, in the order the shards name them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cli_helpers import one_line_error, run
from ungrok.corpus.ingest import hf_dataset_documents
from ungrok.corpus.shards import Corpus, read_manifest
from ungrok.corpus.tokenizer import build_word_tokenizer, load_tokenizer
from ungrok.errors import UngrokError

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "she", "was", "happy", "Sue", "cried", "he", "ran"]
SHARD0 = ["the cat sat", "Sue cried and she ran", "a mat"]
SHARD1 = ["he was happy", "the cat ran on a mat"]
TEST = ["she sat"]
CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: test
    path: data/test-*
- config_name: late
  data_files:
  - split: train
    path: data/train-00001-*
---
# tiny stories
"""


def _parquet_repo(root: Path) -> Path:
    """Two train shards, one test shard and a card with two configs, as on the Hub."""
    (root / "data").mkdir(parents=True)
    pq.write_table(pa.table({"id": [0, 1, 2], "text": SHARD0}), root / "data/train-00000-of-00002.parquet")
    pq.write_table(pa.table({"id": [3, 4], "text": SHARD1}), root / "data/train-00001-of-00002.parquet")
    pq.write_table(pa.table({"id": [5], "text": TEST}), root / "data/test-00000-of-00001.parquet")
    (root / "README.md").write_text(CARD)
    return root


def _tokenizer(tmp_path: Path) -> Path:
    path = tmp_path / "tok.json"
    build_word_tokenizer(WORDS).save(str(path))
    return path


def _expected(tok: Path, docs: list[str]) -> list[int]:
    t = load_tokenizer(tok)
    out: list[int] = []
    for d in docs:
        out += t.encode(d, add_special_tokens=False).ids + [0]
    return out


def _build(capsys, tok: Path, out: Path, *args) -> list[int]:  # noqa: ANN001
    code, _, err = run(["corpus", "build", "--tokenizer", tok, "--out", out, *args], capsys)
    assert code == 0, err
    return Corpus(out).tokens().tolist()


def _snapshot(cache: Path, repo_id: str, files: dict[str, bytes], commit: str = "c0ffee" * 6 + "beef") -> Path:
    """A dataset in huggingface_hub's cache layout: blobs by hash, snapshot links, refs/main."""
    repo = cache / f"datasets--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for rel, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snap


def _parquet_bytes(tmp: Path, texts: list[str]) -> bytes:
    pq.write_table(pa.table({"text": texts}), tmp)
    return tmp.read_bytes()


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """HF_HUB_CACHE and HF_DATASETS_CACHE in tmp, HF_HUB_OFFLINE=1 (env and the libraries' constants)."""
    import datasets
    import huggingface_hub.constants as hc

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    return cache


def test_repository_folder_splits_and_configs_stream_in_row_order(tmp_path, capsys):
    repo = _parquet_repo(tmp_path / "tiny-stories")
    tok = _tokenizer(tmp_path)
    assert _build(capsys, tok, tmp_path / "train", "--hf-dataset", repo) == _expected(tok, SHARD0 + SHARD1)
    assert _build(capsys, tok, tmp_path / "test", "--hf-dataset", repo, "--split", "test") == _expected(tok, TEST)
    late = _build(capsys, tok, tmp_path / "late", "--hf-dataset", repo, "--hf-config", "late")
    assert late == _expected(tok, SHARD1)
    import datasets

    saved = tmp_path / "saved"  # save_to_disk output is accepted by --hf-dataset too
    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"text": TEST})}).save_to_disk(str(saved))
    assert _build(capsys, tok, tmp_path / "s", "--hf-dataset", saved, "--split", "test") == _expected(tok, TEST)
    m = read_manifest(tmp_path / "late")
    assert m.documents == len(SHARD1)
    assert m.source["hf_dataset"] == "tiny-stories" and m.source["hf_config"] == "late"


def test_per_split_jsonl_folders(tmp_path, capsys):
    repo = tmp_path / "notes"
    splits = {"train": ["the cat", "she ran"], "validation": ["a mat and he sat", "Sue was happy"]}
    for split, rows in splits.items():
        (repo / split).mkdir(parents=True)
        (repo / split / "part-0.jsonl").write_text("".join(json.dumps({"story": r, "n": 1}) + "\n" for r in rows))
    (repo / "README.md").write_text("---\nlicense: mit\n---\nNotes, one split per folder.\n")
    tok = _tokenizer(tmp_path)
    got = _build(capsys, tok, tmp_path / "v", "--hf-dataset", repo, "--split", "validation", "--text-field", "story")
    assert got == _expected(tok, splits["validation"])


def test_streams_rows_before_reading_later_shards(tmp_path):
    """Streaming: the first shard's rows arrive before a broken later shard is opened; reading
    on reaches it and says so in one line (a whole-split load would fail before any row)."""
    repo = _parquet_repo(tmp_path / "r")
    rows = [f"row {i}" for i in range(5000)]  # more than any batch the stream reads ahead
    pq.write_table(pa.table({"id": range(5000), "text": rows}), repo / "data/train-00000-of-00002.parquet")
    (repo / "data/train-00001-of-00002.parquet").write_bytes(b"not parquet at all")
    docs = hf_dataset_documents(str(repo))
    assert next(docs) == rows[0]
    with pytest.raises(UngrokError, match="cannot read a data file .*train-00001-of-00002.parquet"):
        list(docs)


def test_hub_name_from_the_offline_cache(tmp_path, capsys, offline_cache):
    """A full snapshot by name, and a partial one (the card plus one config's files, as
    `hf download --include 'sample/10BT/*' README.md` leaves FineWeb-Edu) by name and config."""
    tok = _tokenizer(tmp_path)
    p = tmp_path / "x.parquet"
    _snapshot(offline_cache, "org/tiny", {
        "README.md": CARD.encode(),
        "data/train-00000-of-00002.parquet": _parquet_bytes(p, SHARD0),
        "data/train-00001-of-00002.parquet": _parquet_bytes(p, SHARD1),
        "data/test-00000-of-00001.parquet": _parquet_bytes(p, TEST),
    })
    assert _build(capsys, tok, tmp_path / "a", "--hf-dataset", "org/tiny") == _expected(tok, SHARD0 + SHARD1)
    web_card = CARD.replace("config_name: late", "config_name: sample-10BT").replace(
        "data/train-00001-*", "sample/10BT/*"
    )
    _snapshot(offline_cache, "org/web", {
        "README.md": web_card.encode(),
        "sample/10BT/000_00000.parquet": _parquet_bytes(p, SHARD1),
    })
    code, _, err = run(["corpus", "build", "--tokenizer", tok, "--out", tmp_path / "x", "--hf-dataset", "org/web"], capsys)
    assert "its card names configs default, sample-10BT (set --hf-config)" in one_line_error(code, err)
    got = _build(capsys, tok, tmp_path / "b", "--hf-dataset", "org/web", "--hf-config", "sample-10BT")
    assert got == _expected(tok, SHARD1)
    assert read_manifest(tmp_path / "b").source["hf_dataset"] == "org/web"


def test_hub_name_offline_end_to_end(tmp_path):
    """As a user runs it: HF_HOME and HF_HUB_OFFLINE=1 in the environment of a fresh process."""
    home = tmp_path / "hf"
    _snapshot(home / "hub", "org/tiny", {
        "README.md": CARD.encode(),
        "data/train-00000-of-00002.parquet": _parquet_bytes(tmp_path / "x.parquet", SHARD0),
        "data/test-00000-of-00001.parquet": _parquet_bytes(tmp_path / "y.parquet", TEST),
    })
    tok = _tokenizer(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-c", "import sys; from ungrok.cli import main; main(sys.argv[1:])", "corpus", "build", "--hf-dataset", "org/tiny", "--split", "test",
           "--tokenizer", str(tok), "--out", str(tmp_path / "c")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert Corpus(tmp_path / "c").tokens().tolist() == _expected(tok, TEST)


def test_bad_input_is_one_line(tmp_path, capsys, offline_cache):
    repo = _parquet_repo(tmp_path / "r")
    broken = _parquet_repo(tmp_path / "broken")
    (broken / "data/train-00001-of-00002.parquet").write_bytes(b"not parquet at all")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "weights.bin").write_bytes(b"\0" * 8)
    cases = [
        (["--hf-dataset", junk], "not a dataset repository"),
        (["--hf-dataset", tmp_path / "missing"], "folder not found"),
        (["--hf-dataset", repo, "--split", "validation"], "no split 'validation' (has train, test"),
        (["--hf-dataset", repo, "--text-field", "story"], "no 'story' column (has id, text"),
        (["--hf-dataset", repo, "--hf-config", "nope"], "'nope' not found"),
        (["--hf-dataset", "org/not-cached"], "not in the local Hugging Face cache, and HF_HUB_OFFLINE=1"),
        (["--hf-dataset", broken], "cannot read a data file (Failed to read file"),
        (["--hf-config", "late", repo], "--hf-config needs --hf-dataset"),
    ]
    for n, (args, message) in enumerate(cases):
        out = tmp_path / f"out{n}"
        code, _, err = run(["corpus", "build", "--vocab-size", "300", "--out", out, *args], capsys)
        assert message in one_line_error(code, err), (args, err)
        assert not out.exists()
