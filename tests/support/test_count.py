"""Support counting end to end: hand-computed counts, resume markers, executors, served mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ungrok.cli import main
from ungrok.corpus.build import BuildOptions, build_corpus
from ungrok.corpus.shards import Corpus
from ungrok.rules.registry import get_rule
from ungrok.support.count import count, count_served, read_range
from ungrok.support.forecast import forecast
from ungrok.train.sampler import SamplerConfig, served_windows

TEXT = [
    # girl cue "Sue": " she" at distance 4 -> rule event (girl_names)
    "Sue went home and she slept.",
    # girl cue "Lily": " he" comes first -> prior event; boy cue "Tom": " he" next -> boy rule event
    "Lily saw Tom and he waved.",
    # girl cue "Mia" with no pronoun in 16 tokens and the document is last -> neither
    "Mia ran.",
]


@pytest.fixture
def ts_corpus(tmp_path, reference):
    (tmp_path / "t.txt").write_text("\n\n".join(TEXT))
    opts = BuildOptions(tokenizer=str(reference / "tokenizers" / "tinystories-bpe8192.json"), shard_tokens=4)
    from ungrok.corpus.ingest import iter_documents

    build_corpus(lambda: iter_documents([tmp_path / "t.txt"]), tmp_path / "c", opts, {})
    return tmp_path / "c"


def test_hand_computed_counts_on_the_tinystories_tokenizer(ts_corpus):
    c = Corpus(ts_corpus)
    assert len(c.manifest.shards) > 3  # tiny shards: windows must cross shard files
    table = count(ts_corpus, [get_rule("pronoun_gender_ref")], task_tokens=5)
    row = table.rules["pronoun_gender_ref"]
    girls = row["classes"]["girl_names"]
    boys = row["classes"]["boy_names"]
    # Hand count (docs/method.md §6.1): Sue -> she (rule); Lily -> he (prior); Mia -> neither.
    assert (girls["rule_events"], girls["prior_events"], girls["neither"]) == (1, 1, 1)
    # Tom -> he (rule for the boy class).
    assert (boys["rule_events"], boys["prior_events"], boys["neither"]) == (1, 0, 0)
    assert row["ratio"] == pytest.approx((1 + 1) / (1 + 1))
    assert row["frequency"] == pytest.approx(1 / c.total_tokens)


def test_task_size_and_workers_do_not_change_counts(ts_corpus, tmp_path):
    rules = [get_rule("pronoun_gender_ref"), get_rule("det_an_choice"), get_rule("irregular_past")]
    a = count(ts_corpus, rules, task_tokens=10**9).rules
    b = count(ts_corpus, rules, task_tokens=3, workers=2).rules
    assert a == b
    # resume: markers from a first run are reused, and an interrupted run completes the rest
    work = tmp_path / "work"
    first = count(ts_corpus, rules, task_tokens=4, work_dir=work).rules
    markers = sorted(work.rglob("task_*.npz"))
    assert markers and first == a
    for m in markers[1::2]:
        m.unlink()  # as if killed before these tasks finished
    assert count(ts_corpus, rules, task_tokens=4, work_dir=work).rules == a


def test_read_range_crosses_shards(ts_corpus):
    all_tokens = Corpus(ts_corpus).tokens()
    assert read_range(str(ts_corpus), 5, 19).tolist() == all_tokens[5:19].tolist()


def test_forecast_labels():
    assert forecast(7.91) == "likely survives"
    assert forecast(1.04) == "at risk"
    assert forecast(0.49) == "likely lost"
    assert forecast(1.0, events=0) == "no evidence"


def test_served_mode_counts_exactly_the_sampled_windows(tmp_path):
    from ungrok.corpus.tokenizer import build_word_tokenizer
    from ungrok.rules.registry import load_shared_lists

    lists = load_shared_lists()
    words = ["Sue", "she", "he", "ran", "Tom", "home", "."]
    tok = build_word_tokenizer(words + lists["GIRLS_V2"] + lists["BOYS_V2"], ["."])
    tok.save(str(tmp_path / "tok.json"))
    rng = np.random.default_rng(1)
    docs = [" ".join(rng.choice(words, size=rng.integers(3, 12))) for _ in range(400)]
    (tmp_path / "d.txt").write_text("\n\n".join(docs))
    from ungrok.corpus.ingest import iter_documents

    opts = BuildOptions(tokenizer=str(tmp_path / "tok.json"), shard_tokens=1500)
    build_corpus(lambda: iter_documents([tmp_path / "d.txt"]), tmp_path / "c", opts, {})
    cfg = SamplerConfig(context=16, batch_size=3, steps=20)
    rule = get_rule("pronoun_gender_ref")
    served = count_served(tmp_path / "c", cfg, seed=7, rules=[rule]).rules["pronoun_gender_ref"]
    # Independent expectation: draw the same windows again and count them with a slow
    # pure-Python first-pronoun scan per window.
    she, he = tok.token_to_id("Ġshe"), tok.token_to_id("Ġhe")
    cues = {tok.token_to_id("Sue"), tok.token_to_id("ĠSue")}
    exp = [0, 0, 0]
    n_windows = 0
    for _, sampler, shards, offsets in served_windows(tmp_path / "c", cfg, seed=7):
        for sh, off in zip(shards, offsets, strict=True):
            w = sampler.tokens(sh, off).tolist()
            n_windows += 1
            for c, t in enumerate(w):
                if t not in cues:
                    continue
                nxt = next(((j - c, w[j]) for j in range(c + 1, len(w)) if w[j] in (she, he)), None)
                if nxt is None or nxt[0] > 16:
                    exp[2] += 1
                else:
                    exp[0 if nxt[1] == she else 1] += 1
    girls = served["classes"]["girl_names"]
    assert [girls["rule_events"], girls["prior_events"], girls["neither"]] == exp
    assert n_windows == 60 and sum(exp) > 0
    assert served["mode"] == "served"


def test_support_cli_json_and_bad_input(ts_corpus, tmp_path, capsys):
    out = tmp_path / "s.json"
    main(["support", str(ts_corpus), "--rules", "pronoun_gender_ref,det_an_choice", "--json", str(out)])
    data = json.loads(out.read_text())
    assert set(data["rules"]) == {"pronoun_gender_ref", "det_an_choice"}
    assert data["rules"]["pronoun_gender_ref"]["classes"]["girl_names"]["rule_events"] == 1
    assert "forecast" in data["rules"]["det_an_choice"]
    capsys.readouterr()
    for args, needle in [
        (["support", str(ts_corpus), "--rules", "nope"], "unknown rule"),
        (["support", str(ts_corpus), "--json", str(out)], "exists; use --force"),
        (["support", str(tmp_path)], "not a corpus folder"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err


def test_rule_unknown_to_the_tokenizer_is_skipped_not_fatal(tmp_path):
    from ungrok.corpus.ingest import iter_documents
    from ungrok.corpus.tokenizer import build_word_tokenizer

    tok = build_word_tokenizer(["Sue", "she", "he", "ran"])  # no " an", no " a"
    tok.save(str(tmp_path / "tok.json"))
    (tmp_path / "d.txt").write_text("Sue ran and she ran")
    build_corpus(
        lambda: iter_documents([tmp_path / "d.txt"]),
        tmp_path / "c",
        BuildOptions(tokenizer=str(tmp_path / "tok.json")),
        {},
    )
    table = count(tmp_path / "c", [get_rule("det_an_choice")])
    assert "det_an_choice" in table.skipped and "det_an_choice" not in table.rules
