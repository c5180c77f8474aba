"""The one-pass kernel against a slow, obviously-correct reference (Hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ungrok.support.kernel import CHUNK, PlanBuilder, count_array

V = 12


def occurs_at(tokens, i, seq):
    return tuple(tokens[i : i + len(seq)]) == tuple(seq)


def ref_window(tokens, cues, rule, prior, window):
    """docs/method.md §6.1 literally: first rule start and first prior start after the cue's end."""
    counts = [0, 0, 0]
    n = len(tokens)
    for i in range(n):
        for cue in cues:
            if not occurs_at(tokens, i, cue):
                continue
            c = i + len(cue) - 1
            ns = next((j for j in range(c + 1, n) if any(occurs_at(tokens, j, s) for s in rule)), None)
            nh = next((j for j in range(c + 1, n) if any(occurs_at(tokens, j, s) for s in prior)), None)
            ds = ns - c if ns is not None else float("inf")
            dh = nh - c if nh is not None else float("inf")
            if ds <= window and ds < dh:
                counts[0] += 1
            elif dh <= window and dh < ds:
                counts[1] += 1
            else:
                counts[2] += 1
    return counts


def ref_lookahead(tokens, rule, prior, nxt):
    out = [0, 0]
    for i in range(len(tokens)):
        for kind, seqs in ((0, rule), (1, prior)):
            for s in seqs:
                j = i + len(s)
                if occurs_at(tokens, i, s) and j < len(tokens) and tokens[j] in nxt:
                    out[kind] += 1
    return out


seqs = st.lists(st.integers(0, V - 1), min_size=1, max_size=3).map(tuple)


@settings(max_examples=150, deadline=None)
@given(
    tokens=st.lists(st.integers(0, V - 1), min_size=0, max_size=200),
    cues=st.lists(seqs, min_size=1, max_size=3, unique=True),
    rule=st.lists(seqs, min_size=1, max_size=2, unique=True),
    prior=st.lists(seqs, min_size=1, max_size=2, unique=True),
    window=st.integers(1, 20),
    cut=st.integers(0, 200),
)
def test_window_matches_reference_across_a_boundary(tokens, cues, rule, prior, window, cut):
    b = PlanBuilder(V)
    k = b.window_class(cues, rule, prior, window)
    plan = b.build()
    arr = np.array(tokens, dtype=np.uint16)
    expected = ref_window(tokens, cues, rule, prior, window)
    whole = count_array(plan, arr)
    assert whole.window[k].tolist() == expected
    # split into two tasks: the first reads past its own range into the second
    cut = min(cut, len(tokens))
    first = count_array(plan, arr[: cut + plan.lookahead()], n_own=cut)
    second = count_array(plan, arr[cut:])
    assert (first + second).window[k].tolist() == expected


@settings(max_examples=100, deadline=None)
@given(
    tokens=st.lists(st.integers(0, V - 1), max_size=200),
    grams=st.lists(seqs, min_size=1, max_size=4, unique=True),
    rule=st.lists(seqs, min_size=1, max_size=2, unique=True),
    prior=st.lists(seqs, min_size=1, max_size=2, unique=True),
    nxt=st.sets(st.integers(0, V - 1), min_size=1),
)
def test_ngrams_and_lookahead_match_reference(tokens, grams, rule, prior, nxt):
    b = PlanBuilder(V)
    ids = [b.ngram(g) for g in grams]
    g = b.lookahead_group(rule, prior, np.array(sorted(nxt)))
    plan = b.build()
    got = count_array(plan, np.array(tokens, dtype=np.uint32))
    for pid, gram in zip(ids, grams, strict=True):
        assert got.occurrences[pid] == sum(occurs_at(tokens, i, gram) for i in range(len(tokens)))
    assert got.lookahead[g].tolist() == ref_lookahead(tokens, rule, prior, nxt)


def test_single_token_paper_counter_by_hand():
    # ids: 1 = girl cue, 2 = " she", 3 = " he", 0 = filler
    toks = np.array([1, 0, 2, 1, 3, 0, 2, 1, 0, 0, 0, 1], dtype=np.uint16)
    b = PlanBuilder(4)
    k = b.window_class([(1,)], [(2,)], [(3,)], window=2)
    got = count_array(b.build(), toks).window[k].tolist()
    # cue@0: she at +2 -> rule; cue@3: he at +1 -> prior; cue@7: nothing in 2 -> neither;
    # cue@11: end of stream -> neither
    assert got == [1, 1, 2]


@settings(max_examples=60, deadline=None)
@given(
    tokens=st.lists(st.integers(0, V + 2), max_size=200),  # ids past the vocabulary match nothing
    grams=st.lists(seqs, min_size=1, max_size=4, unique=True),
    rule=st.lists(seqs, min_size=1, max_size=2, unique=True),
    prior=st.lists(seqs, min_size=1, max_size=2, unique=True),
    nxt=st.sets(st.integers(0, V - 1), min_size=1),
)
def test_ids_past_the_vocabulary_match_nothing(tokens, grams, rule, prior, nxt):
    b = PlanBuilder(V)
    ids = [b.ngram(g) for g in grams]
    g = b.lookahead_group(rule, prior, np.array(sorted(nxt)))
    got = count_array(b.build(), np.array(tokens, dtype=np.uint16))
    for pid, gram in zip(ids, grams, strict=True):
        assert got.occurrences[pid] == sum(occurs_at(tokens, i, gram) for i in range(len(tokens)))
    assert got.lookahead[g].tolist() == ref_lookahead(tokens, rule, prior, nxt)


pool = st.lists(seqs, min_size=2, max_size=4, unique=True)


@settings(max_examples=100, deadline=None)
@given(
    tokens=st.lists(st.integers(0, V + 2), max_size=200),  # ids past the vocabulary match nothing
    targets=pool,
    classes=st.lists(
        st.tuples(
            st.lists(seqs, min_size=1, max_size=2, unique=True),  # cues
            st.lists(st.integers(0, 3), min_size=1, max_size=2, unique=True),  # rule targets (pool indices)
            st.lists(st.integers(0, 3), min_size=1, max_size=2, unique=True),  # prior targets
            st.integers(1, 6),  # window
        ),
        min_size=2,
        max_size=5,
    ),
    cut=st.integers(0, 200),
)
def test_classes_sharing_or_mirroring_targets_match_reference(tokens, targets, classes, cut):
    # Drawing targets from a small pool makes classes with the same or swapped target sets
    # (which the kernel resolves with one search per cue) common.
    b = PlanBuilder(V)
    expected, ks = [], []
    for cues, rule, prior, window in classes:
        rule = [targets[i % len(targets)] for i in rule]
        prior = [targets[i % len(targets)] for i in prior]
        ks.append(b.window_class(cues, rule, prior, window))
        expected.append(ref_window(tokens, cues, rule, prior, window))
    plan = b.build()
    arr = np.array(tokens, dtype=np.uint16)
    cut = min(cut, len(tokens))
    whole = count_array(plan, arr)
    split = count_array(plan, arr[: cut + plan.lookahead()], n_own=cut) + count_array(plan, arr[cut:])
    for k, exp in zip(ks, expected, strict=True):
        assert whole.window[k].tolist() == exp
        assert split.window[k].tolist() == exp


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_long_stream_across_chunks_matches_reference(seed):
    # Several of the kernel's chunks, with windows and tasks cut across chunk boundaries.
    rng = np.random.default_rng(seed)
    n = 3 * CHUNK + 77
    tokens = rng.integers(0, V, n).tolist()
    b = PlanBuilder(V)
    cues, rule, prior = [(1,), (2, 3)], [(4,), (5, 6)], [(7,), (4, 8, 9)]
    k = b.window_class(cues, rule, prior, 16)
    k2 = b.window_class([(3,)], prior, rule, 5)
    grams = [(0,), (10, 11), (1, 2, 3), (5, 6)]
    ids = [b.ngram(g) for g in grams]
    g = b.lookahead_group([(9,), (2, 2)], [(11,)], np.array([0, 3, 5]))
    plan = b.build()
    arr = np.array(tokens, dtype=np.uint32)
    cuts = [CHUNK - 1, CHUNK, 2 * CHUNK + 3, n - 5]
    parts = [count_array(plan, arr[a : z + plan.lookahead()], n_own=z - a)
             for a, z in zip([0, *cuts], [*cuts, n], strict=True)]
    for got in (count_array(plan, arr), sum(parts[1:], parts[0])):
        assert got.tokens == n
        assert got.window[k].tolist() == ref_window(tokens, cues, rule, prior, 16)
        assert got.window[k2].tolist() == ref_window(tokens, [(3,)], prior, rule, 5)
        for pid, gram in zip(ids, grams, strict=True):
            assert got.occurrences[pid] == sum(occurs_at(tokens, i, gram) for i in range(n))
        assert got.lookahead[g].tolist() == ref_lookahead(tokens, [(9,), (2, 2)], [(11,)], {0, 3, 5})


def test_window_ending_exactly_past_a_chunk_by_hand():
    # A longest cue starting on the last position of a chunk, its target exactly `window`
    # after the cue's end: the latest target the kernel must see beyond a chunk.
    n = 2 * CHUNK + 40
    toks = np.zeros(n, dtype=np.uint16)
    toks[[10, 11, 28]] = [1, 2, 4]  # cue ends at 11, rule target 17 later: neither
    toks[[CHUNK - 1, CHUNK, CHUNK + 16]] = [1, 2, 4]  # cue ends at CHUNK, rule target 16 later: rule
    toks[[2 * CHUNK - 1, 2 * CHUNK, 2 * CHUNK + 16, 2 * CHUNK + 17]] = [1, 2, 5, 4]  # prior first: prior
    b = PlanBuilder(8)
    k = b.window_class([(1, 2)], [(4,)], [(5,)], window=16)
    plan = b.build()
    assert count_array(plan, toks).window[k].tolist() == [1, 1, 1]
    for cut in (CHUNK - 1, CHUNK, 2 * CHUNK - 1):
        parts = count_array(plan, toks[: cut + plan.lookahead()], n_own=cut) + count_array(plan, toks[cut:])
        assert parts.window[k].tolist() == [1, 1, 1]
