"""The n-gram baseline: hand-computed Stupid-Backoff scores, a slow reference counter, the
forced-choice rule, cumulative snapshots over the served stream, and the classifier on the table."""

from __future__ import annotations

import json
import math
from collections import Counter
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ungrok.corpus.build import BuildOptions, build_corpus
from ungrok.corpus.tokenizer import build_word_tokenizer
from ungrok.errors import UngrokError
from ungrok.fate.summary import summarize
from ungrok.mech.ngram import (
    NgramCounter,
    StupidBackoff,
    battery_ids,
    group_rows,
    ngram_trajectory,
    read_served_run,
    score_ids,
    write_ngram,
)
from ungrok.probes.battery import parse_battery
from ungrok.probes.models import TokenizerFile
from ungrok.probes.trajectories import TrajectoryStore
from ungrok.train.config import parse_config, resolve_model, resolved_config
from ungrok.train.sampler import served_windows

A, B, C, D, E, UNSEEN = 1, 2, 3, 4, 5, 6
TOY = [A, B, C, A, B, D, A, B, C, E]  # 10 tokens


# --------------------------------------------------------------------------- hand-computed scores
def test_hand_computed_trigram_scores_on_a_toy_corpus():
    queries = [((A, B), C), ((A, B), D), ((A, B), E), ((A, B), UNSEEN), ((E,), A), ((B,), C), ((C, A, B), D)]
    sb = StupidBackoff.fit(TOY, queries, order=3)
    # "a b" occurs 3 times, each followed by a token: twice by c, once by d.
    assert sb.score((A, B), C) == F(2, 3)
    assert sb.score((A, B), D) == F(1, 3)
    # backoff: "a b e" and "b e" never occur; e occurs once in 10 tokens -> 0.4^2 * 1/10
    assert sb.score((A, B), E) == F(2, 5) ** 2 * F(1, 10) == F(2, 125)
    # unseen at every order: 0.4^3 * 0.5 / 10
    assert sb.score((A, B), UNSEEN) == F(2, 5) ** 3 * F(1, 2) / 10 == F(2, 625)
    # "e" is the last token, so it is never a context: one backoff to count(a)/total = 3/10
    assert sb.score((E,), A) == F(2, 5) * F(3, 10)
    # a one-token history allows order 2 at most and is not charged for the missing order
    assert sb.score((B,), C) == F(2, 3)
    # only the last order - 1 tokens of a history count: (c, a, b) -> (a, b)
    assert sb.score((C, A, B), D) == F(1, 3)


def test_hand_computed_bigram_and_unigram_scores():
    queries = [((A, B), C), ((A, B), E), ((A, B), UNSEEN), ((), A)]
    bi = StupidBackoff.fit(TOY, queries, order=2)
    assert bi.score((A, B), C) == F(2, 3)  # count(b c) / count(b followed)
    assert bi.score((A, B), E) == F(2, 5) * F(1, 10)
    assert bi.score((A, B), UNSEEN) == F(2, 5) ** 2 * F(1, 2) / 10
    uni = StupidBackoff.fit(TOY, queries, order=1)
    assert uni.score((A, B), C) == F(2, 10)
    assert uni.score((), A) == F(3, 10)
    assert uni.score((A,), UNSEEN) == F(2, 5) * F(1, 2) / 10


def test_a_context_at_the_end_of_the_stream_is_not_counted():
    sb = StupidBackoff.fit([A, B, C, A, B], [((A, B), C)], order=3)
    assert sb.score((A, B), C) == 1  # the final "a b" predicts nothing: 1/1, not 1/2


def test_windows_are_counted_separately():
    queries = [((B, C), A), ((A, B), D)]
    flat = StupidBackoff.fit([A, B, C, A, B, D], queries, order=3)
    rows = StupidBackoff.fit(np.array([[A, B, C], [A, B, D]]), queries, order=3)
    assert flat.score((B, C), A) == 1  # "b c a" crosses the middle
    # in two windows "b c a" and "c a" never occur and c ends its window: back off to count(a)/total
    assert rows.score((B, C), A) == F(2, 5) ** 2 * F(2, 6)
    assert rows.score((A, B), D) == F(1, 2)


def test_nothing_counted_gives_ties_and_orders_are_checked():
    sb = StupidBackoff.fit(np.zeros(0, dtype=np.uint16), [((A,), B), ((A,), C)], order=2)
    assert sb.score((A,), B) == sb.score((A,), C) == F(2, 5) ** 2 * F(1, 2)
    counts = NgramCounter([((A,), B)], 2).snapshot()
    with pytest.raises(UngrokError, match="order must be in 1..2"):
        StupidBackoff(counts, 3)
    with pytest.raises(KeyError, match="not among the counted"):
        StupidBackoff(counts, 2).score((C,), D)
    with pytest.raises(UngrokError, match="alpha"):
        StupidBackoff(counts, 2, alpha=1.5)


# --------------------------------------------------------------------------- slow reference
def reference_counts(rows: list[list[int]], max_len: int) -> tuple[Counter, Counter, int]:
    """Every n-gram of every window, by brute force: occurrences and occurrences followed by a token."""
    grams: Counter = Counter()
    followed: Counter = Counter()
    total = 0
    for row in rows:
        total += len(row)
        for i in range(len(row)):
            for n in range(1, min(max_len, i + 1) + 1):
                g = tuple(row[i - n + 1 : i + 1])
                grams[g] += 1
                if i + 1 < len(row):
                    followed[g] += 1
    return grams, followed, total


def reference_score(rows: list[list[int]], order: int, history: tuple, w: int, alpha=F(2, 5)) -> F:
    """Stupid Backoff straight from its definition over brute-force counts."""
    grams, followed, total = reference_counts(rows, order)
    h = history[max(0, len(history) - (order - 1)) :] if order > 1 else ()
    top = len(h) + 1
    for m in range(top, 1, -1):
        ctx = h[len(h) - (m - 1) :]
        if grams[(*ctx, w)]:
            return alpha ** (top - m) * F(grams[(*ctx, w)], followed[ctx])
    if grams[(w,)]:
        return alpha ** (top - 1) * F(grams[(w,)], total)
    return alpha**top * F(1, 2) / max(total, 1)


streams = st.tuples(st.integers(1, 8), st.lists(st.integers(0, 4), max_size=64))
queries_st = st.lists(st.tuples(st.lists(st.integers(0, 5), max_size=6).map(tuple), st.integers(0, 5)),
                      min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(streams, queries_st, st.integers(1, 5))
def test_fast_counter_and_scores_agree_with_a_brute_force_reference(stream, queries, order):
    width, flat = stream
    n = len(flat) - len(flat) % width
    rows = [flat[i : i + width] for i in range(0, n, width)]
    arr = np.array(rows, dtype=np.uint16).reshape(-1, width)
    counter = NgramCounter(queries, order)
    counter.add(arr)
    snap = counter.snapshot()
    grams, followed, total = reference_counts(rows, order)
    assert snap.total == total
    for g, k in snap.index.items():
        assert (snap.occ[k], snap.followed[k]) == (grams[g], followed[g]), g
    sb = StupidBackoff(snap, order)
    for h, w in queries:
        assert sb.score(h, w) == reference_score(rows, order, h, w)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=80), st.integers(0, 80), queries_st)
def test_counts_add_up_across_calls(flat, cut, queries):
    a, b = NgramCounter(queries, 5), NgramCounter(queries, 5)
    a.add(np.array(flat, dtype=np.int64))
    b.add(np.array(flat[:cut], dtype=np.int64))
    b.add(np.array(flat[cut:], dtype=np.int64))
    grams, _, _ = reference_counts([flat[:cut], flat[cut:]], 5)
    sa, sb = a.snapshot(), b.snapshot()
    assert sa.total == sb.total == len(flat)
    assert all(sb.occ[k] == grams[g] for g, k in sb.index.items())  # no n-gram across the cut
    assert np.all(sb.occ <= sa.occ)


# --------------------------------------------------------------------------- the forced-choice rule
WORDS = ["Lily", "Tom", "laughed", "when", "she", "he", "smiled", "ate", "an", "a", "apple", "cat", "dog"]


def word_tokenizer(tmp_path: Path) -> Path:
    path = tmp_path / "tokenizer.json"
    build_word_tokenizer(WORDS, ["."]).save(str(path))
    return path


def battery_of(items: list[tuple]) -> object:
    lines = []
    for k, (family, condition, split, prefix, correct, distractor) in enumerate(items):
        lines.append(json.dumps({
            "family": family, "condition": condition, "probe": f"{family}.{condition}", "category": "test",
            "template_id": prefix.split()[-1], "split": split, "prefix": prefix, "correct": correct,
            "distractor": distractor, "chance": 0.5, "item_id": f"{family}.{condition}/{split}/{k}",
        }))
    return parse_battery("\n".join(lines).encode(), "test battery")


def test_argmax_rule_ties_multi_token_and_skipped_items(tmp_path):
    tok = TokenizerFile.load(word_tokenizer(tmp_path))
    ids = tok.encode
    # 6 + 5 + 5 = 16 tokens; counts: Lily 2, " ate" 2, "." 3, every other word once, " he" / " dog" never
    corpus = ids("Lily laughed when she smiled.") + ids("Tom ate an apple.") + ids("Lily ate a cat.")
    assert len(corpus) == 16
    battery = battery_of([
        ("pron", "conflict", "heldout", "Lily laughed when", " she", " he"),
        ("pron", "agree", "heldout", "Tom laughed when", " he", " she"),
        ("det", "conflict", "heldout", "Tom ate", " an apple", " a apple"),  # two tokens a side
        ("det", "agree", "heldout", "Lily ate", " dog", " cat"),
        ("det", "agree", "train", "Tom smiled", " dog", " dog."),  # equal first token, then a factor < 1
        ("pron", "conflict", "train", "Lily jumped", " she", " he"),  # unknown word: skipped
    ])
    bi = battery_ids(battery, tok)
    assert bi.skipped.tolist() == [False] * 5 + [True]
    scores = score_ids(StupidBackoff.fit(np.array(corpus), bi.queries(), order=3), battery, bi)
    a = F(2, 5)
    unseen = a**3 * F(1, 2) / 16  # every history here has 2+ tokens: top order 3
    expected = [
        (F(1), unseen),  # "laughed when she" 1/1 vs " he" never seen
        (unseen, F(1)),
        # " an" after "Tom ate" 1/1, " apple" after "ate an" 1/1; vs " a": "Tom ate a" unseen, "ate a"
        # 1 of 2 "ate" -> 0.4 * 1/2; then " apple" after "ate a" and "a" unseen -> 0.4^2 * 1/16
        (F(1), a * F(1, 2) * a**2 * F(1, 16)),
        (unseen, a**2 * F(1, 16)),  # " cat" backs off twice to count(cat)/total
        (unseen, unseen * a**2 * F(3, 16)),  # "." backs off twice to count(.)/total = 3/16
    ]
    for i, (c, d) in enumerate(expected):
        assert scores.logp_correct[i] == pytest.approx(math.log(c), rel=1e-12), i
        assert scores.logp_distractor[i] == pytest.approx(math.log(d), rel=1e-12), i
    assert scores.correct.tolist() == [True, False, True, False, True, False]
    assert scores.len_correct.tolist()[:5] == [1, 1, 2, 1, 1]
    assert scores.len_distractor.tolist()[:5] == [1, 1, 2, 1, 2]
    # both unseen: exactly equal scores, and a tie counts wrong
    tie = battery_of([("t", "conflict", "heldout", "Tom laughed when", " he", " dog")])
    tb = battery_ids(tie, tok)
    ts = score_ids(StupidBackoff.fit(np.array(corpus), tb.queries(), order=3), tie, tb)
    assert ts.logp_correct[0] == ts.logp_distractor[0]
    assert not ts.correct[0]


# --------------------------------------------------------------------------- a run's served stream
PERIOD = ["Lily laughed when she smiled."] * 3 + ["Tom laughed when he smiled."]  # 28 tokens with EOTs


def make_run(tmp_path: Path, phase_b: bool = False) -> Path:
    """A run folder (config.json, no checkpoints) over a periodic corpus: 200 steps of 2 x 17 tokens.

    With phase_b, steps >= 120 draw from a second corpus where every name takes the other pronoun."""
    tok = str(word_tokenizer(tmp_path))
    build_corpus(
        lambda: iter(PERIOD * 60), tmp_path / "corpus", BuildOptions(tokenizer=tok, shard_tokens=500), {}
    )
    sampler: dict = {"context": 16, "batch_size": 2, "steps": 200}
    if phase_b:
        swapped = [d.replace(" she", " HE").replace(" he", " she").replace(" HE", " he") for d in PERIOD]
        build_corpus(lambda: iter(swapped * 60), tmp_path / "b", BuildOptions(tokenizer=tok), {})
        sampler["phase_b"] = {"data": str(tmp_path / "b"), "switch_step": 120}
    cfg = parse_config({"model": {"preset": "tiny", "vocab_size": 64}, "sampler": sampler, "seed": 3})
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps(resolved_config(cfg, resolve_model(cfg), tmp_path / "corpus"))
    )
    return run


@pytest.fixture
def tiny_run(tmp_path):
    return make_run(tmp_path)


PRONOUN = [
    ("pronoun_gender_ref", "conflict", "heldout", "Lily laughed when", " she", " he"),
    ("pronoun_gender_ref", "agree", "heldout", "Tom laughed when", " he", " she"),
    ("pronoun_gender_ref", "conflict", "train", "Lily smiled when", " she", " he"),
    ("pronoun_gender_ref", "agree", "train", "Tom smiled when", " he", " she"),
]


@pytest.mark.parametrize("phase_b", [False, True])
def test_snapshots_equal_counting_each_served_prefix_separately(tmp_path, phase_b):
    tiny_run = make_run(tmp_path, phase_b)
    battery = battery_of(PRONOUN)
    steps = [0, 1, 5, 17, 40, 119, 120, 121, 200]
    rows = ngram_trajectory(tiny_run, battery, steps=steps, run_name="r")
    assert {r["run"] for r in rows} == {"r#ngram2", "r#ngram5"}
    run = read_served_run(tiny_run)
    tok = TokenizerFile.load(tiny_run.parent / "corpus" / "tokenizer.json")
    ids = battery_ids(battery, tok)
    # independent of the pass: the sampler's own per-window reads, counted afresh for each prefix
    windows = [
        np.stack([sampler.tokens(s, o) for s, o in zip(shards, offsets, strict=True)])
        for _, sampler, shards, offsets in served_windows(run.data, run.sampler, run.seed)
    ]
    assert len(windows) == 200 and windows[0].shape == (2, 17)
    if phase_b:  # the served stream switches corpus: "Lily laughed when he" appears only after step 120
        he = tuple(tok.encode("Lily laughed when he"))
        seen = [any(tuple(w[r, i : i + 4]) == he for r in range(2) for i in range(14)) for w in windows]
        assert not any(seen[:120]) and any(seen[120:])
    expected = []
    for step in steps:
        counter = NgramCounter(ids.queries(), 5)
        for w in windows[:step]:
            counter.add(w)
        assert counter.total == step * 2 * 17
        for n in (2, 5):
            expected += group_rows(
                f"r#ngram{n}", step, score_ids(StupidBackoff(counter.snapshot(), n), battery, ids)
            )
    key = lambda r: (r["run"], r["step"], r["family"], r["condition"], r["split"])  # noqa: E731
    assert sorted(rows, key=key) == sorted(expected, key=key)


def test_written_table_is_read_by_the_classifier(tiny_run, tmp_path, monkeypatch):
    battery = battery_of(PRONOUN)
    steps = [0, *range(100, 201, 10)]
    out = write_ngram(tiny_run, battery, steps=steps, out=tmp_path / "out" / "traj.ngram.parquet")
    store = TrajectoryStore(out)
    assert {r["run"] for r in store.rows} == {"run#ngram2", "run#ngram5"}  # the folder's name
    assert sorted({r["step"] for r in store.rows}) == steps
    records = {r["run"]: r for r in summarize(store.rows)}
    # 5-gram: "Lily laughed when" is always followed by " she" and "Tom laughed when" by " he"
    five = records["run#ngram5"]
    assert (five["fate"], five["agree_gate"], five["conflict_final"], five["agree_final"]) == \
        ("RECOVERED", "pass", 1.0, 1.0)
    # 2-gram: after " when", " she" is three times as frequent as " he": right for girls only
    two = records["run#ngram2"]
    assert (two["fate"], two["agree_gate"], two["conflict_final"], two["agree_final"]) == \
        ("RECOVERED", "fail", 1.0, 0.0)
    # step 0 has counted nothing: every item ties and counts wrong
    assert all(r["accuracy"] == 0.0 for r in store.rows if r["step"] == 0)

    # rows present are not recomputed; a new step is added without touching the others
    before = out.read_bytes()
    import ungrok.mech.ngram as ngram

    def no_pass(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("counted again")

    with monkeypatch.context() as m:
        m.setattr(ngram, "served_snapshots", no_pass)
        write_ngram(tiny_run, battery, steps=steps, out=out)
    assert out.read_bytes() == before
    write_ngram(tiny_run, battery, steps=[*steps, 50], out=out)
    again = TrajectoryStore(out).rows
    assert len(again) == len(store.rows) + 2 * 4
    assert [r for r in again if r["step"] != 50] == store.rows
    # another battery's rows for the same run are refused, not mixed
    other = battery_of([(*PRONOUN[0][:3], "Lily laughed when", " she", " smiled")])
    with pytest.raises(UngrokError, match="another battery"):
        write_ngram(tiny_run, other, steps=steps, out=out)


def test_run_errors_are_one_line(tiny_run, tmp_path):
    battery = battery_of(PRONOUN)
    with pytest.raises(UngrokError, match=r"steps must lie in 0\.\.200"):
        ngram_trajectory(tiny_run, battery, steps=[201])
    with pytest.raises(UngrokError, match="no checkpoints and no traj.parquet"):
        ngram_trajectory(tiny_run, battery)
    with pytest.raises(UngrokError, match="orders"):
        ngram_trajectory(tiny_run, battery, orders=(0,), steps=[1])
    with pytest.raises(UngrokError, match="not a training run folder"):
        ngram_trajectory(tmp_path, battery, steps=[1])
    manifest = tmp_path / "corpus" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"documents"', '"documents" ', 1))
    with pytest.raises(UngrokError, match="corpus manifest differs"):
        ngram_trajectory(tiny_run, battery, steps=[1])
