"""The same task function on a local Ray instance gives the local executor's counts."""

from __future__ import annotations

import pytest

from ungrok.corpus.build import BuildOptions, build_corpus
from ungrok.corpus.ingest import iter_documents
from ungrok.rules.registry import get_rule
from ungrok.support.count import count

ray = pytest.importorskip("ray")


def test_ray_executor_matches_local(tmp_path, reference):
    docs = ["Sue went home and she slept.", "Lily saw Tom and he waved.", "Anna ate an apple and a egg."] * 20
    (tmp_path / "t.txt").write_text("\n\n".join(docs))
    opts = BuildOptions(tokenizer=str(reference / "tokenizers" / "tinystories-bpe8192.json"), shard_tokens=97)
    build_corpus(lambda: iter_documents([tmp_path / "t.txt"]), tmp_path / "c", opts, {})
    rules = [get_rule("pronoun_gender_ref"), get_rule("det_an_choice")]
    local = count(tmp_path / "c", rules, task_tokens=50).rules
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = count(tmp_path / "c", rules, task_tokens=50, executor="ray").rules
    finally:
        ray.shutdown()
    assert remote == local
    # 20 Sue -> she, plus 19 Anna -> the next document's " she" within 16 tokens
    # (windows cross document boundaries, as the paper's counter does; the last Anna has none).
    assert local["pronoun_gender_ref"]["classes"]["girl_names"]["rule_events"] == 39
