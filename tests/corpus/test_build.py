"""corpus build: every input format, both dtypes, byte-identical rebuilds, bad input."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ungrok.corpus.build import BuildOptions, build_corpus
from ungrok.corpus.ingest import iter_documents
from ungrok.corpus.shards import Corpus
from ungrok.corpus.tokenizer import build_word_tokenizer, load_tokenizer
from ungrok.errors import UngrokError

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "she", "was", "happy", "because", "he", "ran", "home", "while", "Sue", "cried"]


def _docs(n: int, seed: int = 0) -> list[str]:
    r = random.Random(seed)
    return [" ".join(r.choice(WORDS) for _ in range(r.randint(3, 30))) for _ in range(n)]


def _build(inputs, out, **kw):
    opts = BuildOptions(**{"vocab_size": 300, **kw})
    return build_corpus(
        lambda: iter_documents(inputs, opts.text_field, opts.txt_mode, opts.split),
        out,
        opts,
        source={"inputs": [str(p.name) for p in inputs]},
    )


def _expected_ids(tokenizer_path, docs, eot=0):
    """Independent expectation: encode each document on its own, then append EOT."""
    tok = load_tokenizer(tokenizer_path)
    out = []
    for d in docs:
        out.extend(tok.encode(d, add_special_tokens=False).ids)
        out.append(eot)
    return out


def test_txt_blocks_and_file_modes(tmp_path):
    docs = _docs(50)
    (tmp_path / "a.txt").write_text("\n\n\n".join(docs) + "\n")
    m, status = _build([tmp_path / "a.txt"], tmp_path / "c")
    assert status == "built" and m.documents == 50
    c = Corpus(tmp_path / "c")
    assert c.tokens().tolist() == _expected_ids(c.tokenizer_path, docs)
    m2, _ = _build([tmp_path / "a.txt"], tmp_path / "c2", txt_mode="file")
    assert m2.documents == 1


def test_jsonl_parquet_and_saved_dataset_agree(tmp_path):
    import datasets

    docs = _docs(40, seed=1)
    (tmp_path / "d.jsonl").write_text(
        "".join(json.dumps({"body": d, "id": i}) + "\n" for i, d in enumerate(docs))
    )
    pq.write_table(pa.table({"body": docs}), tmp_path / "d.parquet")
    datasets.Dataset.from_dict({"body": docs}).save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"body": docs})}).save_to_disk(
        str(tmp_path / "dd")
    )
    tok = tmp_path / "tok.json"
    build_word_tokenizer(WORDS).save(str(tok))
    results = []
    for name in ("d.jsonl", "d.parquet", "ds", "dd"):
        _build([tmp_path / name], tmp_path / f"out-{name}", text_field="body", tokenizer=str(tok))
        results.append(Corpus(tmp_path / f"out-{name}").tokens().tolist())
    assert results[0] == _expected_ids(tok, docs)
    assert all(r == results[0] for r in results)


def test_folder_inputs_are_read_in_sorted_order(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "b.txt").write_text("she ran")
    (tmp_path / "in" / "a.txt").write_text("he sat")
    docs = list(iter_documents([tmp_path / "in"]))
    assert docs == ["he sat", "she ran"]


def test_reference_tokenizer_and_uint16(tmp_path, reference):
    (tmp_path / "a.txt").write_text("Sue cried because she was sad.\n\nTom ran home.\n")
    tok = reference / "tokenizers" / "tinystories-bpe8192.json"
    m, _ = _build([tmp_path / "a.txt"], tmp_path / "c", tokenizer=str(tok))
    assert m.dtype == "uint16" and m.vocab_size == 8192
    ids = Corpus(tmp_path / "c").tokens().tolist()
    assert 341 in ids  # " she" in the TinyStories tokenizer (docs/method.md §2.1)
    assert ids.count(0) == 2


def test_large_vocab_picks_uint32_and_explicit_uint16_is_refused(tmp_path):
    def word(i: int) -> str:  # letters only: the byte-level split keeps them whole
        return "".join(chr(97 + (i // 26**k) % 26) for k in range(4))

    words = [word(i) for i in range(33_000)]  # two pieces per word -> 66k+ ids
    tok = tmp_path / "big.json"
    t = build_word_tokenizer(words)
    t.save(str(tok))
    top = t.decode([t.get_vocab_size() - 1])  # the word with the largest id
    (tmp_path / "a.txt").write_text(f"{word(1)}{top} {word(2)}\n\n{word(0)}\n")
    m, _ = _build([tmp_path / "a.txt"], tmp_path / "c", tokenizer=str(tok))
    assert m.dtype == "uint32"
    ids = Corpus(tmp_path / "c").tokens()
    assert ids.dtype == np.dtype("<u4") and int(ids.max()) > 65535
    with pytest.raises(UngrokError, match="does not fit uint16"):
        _build([tmp_path / "a.txt"], tmp_path / "c16", tokenizer=str(tok), dtype="uint16")
    assert not (tmp_path / "c16").exists()


def test_rebuild_is_byte_identical_and_unchanged(tmp_path):
    (tmp_path / "a.txt").write_text("\n\n".join(_docs(300, seed=3)))
    _build([tmp_path / "a.txt"], tmp_path / "c1", shard_tokens=500)
    _build([tmp_path / "a.txt"], tmp_path / "c2", shard_tokens=500)
    files = sorted(p.name for p in (tmp_path / "c1").iterdir())
    assert len([f for f in files if f.startswith("shard_")]) > 2
    assert files == sorted(p.name for p in (tmp_path / "c2").iterdir())
    for f in files:
        assert (tmp_path / "c1" / f).read_bytes() == (tmp_path / "c2" / f).read_bytes(), f
    _, status = _build([tmp_path / "a.txt"], tmp_path / "c1", shard_tokens=500)
    assert status == "unchanged"


def test_different_corpus_in_out_dir_needs_force(tmp_path):
    (tmp_path / "a.txt").write_text("\n\n".join(_docs(20)))
    (tmp_path / "b.txt").write_text("\n\n".join(_docs(20, seed=9)))
    _build([tmp_path / "a.txt"], tmp_path / "c")
    before = (tmp_path / "c" / "manifest.json").read_bytes()
    with pytest.raises(UngrokError, match="different corpus; use --force"):
        _build([tmp_path / "b.txt"], tmp_path / "c")
    assert (tmp_path / "c" / "manifest.json").read_bytes() == before
    opts = BuildOptions(vocab_size=300)
    _, status = build_corpus(
        lambda: iter_documents([tmp_path / "b.txt"]), tmp_path / "c", opts, {}, force=True
    )
    assert status == "replaced"
    assert (tmp_path / "c" / "manifest.json").read_bytes() != before
    _no_leftovers(tmp_path)


def test_non_corpus_folder_needs_force(tmp_path):
    (tmp_path / "a.txt").write_text("she ran")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.md").write_text("mine")
    with pytest.raises(UngrokError, match="not an ungrok corpus"):
        _build([tmp_path / "a.txt"], tmp_path / "c")
    assert (tmp_path / "c" / "notes.md").read_text() == "mine"


def _no_leftovers(folder):
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "temporary files left behind"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", "\n\n  \n", "no documents"),
        ("bad.jsonl", '{"text": "ok"}\n{"body": "x"}\n', r"bad.jsonl:2: no 'text' field"),
        ("broken.jsonl", '{"text": "ok"}\n{not json\n', r"broken.jsonl:2: not valid JSON"),
        ("latin.txt", b"caf\xe9 au lait", "not UTF-8"),
        ("x.csv", "a,b", "unsupported input"),
        ("bad.parquet", "not parquet", "not a readable parquet"),
    ],
)
def test_bad_inputs_one_line_nothing_written(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UngrokError, match=message) as e:
        _build([p], tmp_path / "out")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()
    _no_leftovers(tmp_path)


def test_missing_input_and_bad_tokenizer(tmp_path):
    with pytest.raises(UngrokError, match="input not found"):
        _build([tmp_path / "nope.txt"], tmp_path / "out")
    (tmp_path / "a.txt").write_text("she ran")
    (tmp_path / "tok.json").write_text("{ this is not a tokenizer")
    with pytest.raises(UngrokError, match="not a valid tokenizer.json"):
        _build([tmp_path / "a.txt"], tmp_path / "out", tokenizer=str(tmp_path / "tok.json"))


def test_jsonl_streams_documents_before_a_late_error(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "first"}\n{"text": "second"}\n{"oops": 1}\n')
    it = iter_documents([p])
    assert next(it) == "first" and next(it) == "second"
    with pytest.raises(UngrokError):
        next(it)
