"""The multi-pattern matcher against a brute-force scan on random token arrays."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ungrok.edit.seqmatch import SeqMatcher


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    tokens=st.lists(st.integers(0, 6), min_size=0, max_size=300),
    patterns=st.lists(st.lists(st.integers(0, 6), min_size=1, max_size=4), min_size=1, max_size=8),
    lo=st.integers(0, 50),
)
def test_find_equals_brute_force(tokens, patterns, lo):
    toks = np.array(tokens, dtype=np.uint16)
    m = SeqMatcher(patterns)
    pos, pid = m.find(toks, lo)
    first_id = {}
    for i, p in enumerate(patterns):
        first_id.setdefault(tuple(p), i)
    want = sorted(
        (i, first_id[tuple(p)])
        for i in range(lo, len(tokens))
        for p in {tuple(p) for p in patterns}
        if tuple(tokens[i : i + len(p)]) == p
    )
    assert list(zip(pos.tolist(), pid.tolist(), strict=True)) == want


def test_large_ids():
    toks = np.array([70000, 5, 70000, 70001, 9], dtype=np.uint32)
    m = SeqMatcher([(70000, 70001), (9,), (123456,)])
    pos, pid = m.find(toks)
    assert (pos.tolist(), pid.tolist()) == ([2, 4], [0, 1])
    assert m.find(np.array([1, 2, 3], dtype=np.uint32))[0].size == 0
