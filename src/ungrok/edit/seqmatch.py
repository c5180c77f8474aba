"""Find many token sequences in a token array at once: one rolling hash per distinct length.

The disjointness gate looks for hundreds of battery prefixes in millions of injected
tokens, and the n-gram kill needs every occurrence of its bigrams. A per-pattern scan
costs patterns x tokens; hashing every L-gram once per distinct length L and looking
the hashes up costs lengths x tokens, and every hash hit is then confirmed token by
token, so a collision can never report a false match.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Seq = tuple[int, ...]
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier; arithmetic wraps mod 2**64


def _hash_rows(rows: np.ndarray) -> np.ndarray:
    """Hash each row of a (k, L) uint64 matrix the same way `_hash_windows` hashes windows."""
    h = np.zeros(rows.shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows.shape[1]):
            h = h * _BASE + rows[:, j]
    return h


def _hash_windows(tokens: np.ndarray, length: int) -> np.ndarray:
    """Hash of tokens[i : i + length] for every start i that fits."""
    n = tokens.size - length + 1
    h = np.zeros(max(n, 0), dtype=np.uint64)
    if n <= 0:
        return h
    with np.errstate(over="ignore"):
        for j in range(length):
            h = h * _BASE + tokens[j : j + n]
    return h


class SeqMatcher:
    """Occurrences of a fixed set of token sequences (patterns keep their input order as ids)."""

    def __init__(self, seqs: Sequence[Sequence[int]]):
        self.seqs: list[Seq] = [tuple(int(t) for t in s) for s in seqs]
        if any(len(s) == 0 for s in self.seqs):
            raise ValueError("empty token sequence")
        self.max_len = max((len(s) for s in self.seqs), default=0)
        self._groups: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._one: np.ndarray | None = None  # one-token patterns: token id -> pattern id (or -1)
        by_len: dict[int, list[int]] = {}
        for i, s in enumerate(self.seqs):
            by_len.setdefault(len(s), []).append(i)
        if 1 in by_len:
            ones = by_len.pop(1)
            lut = np.full(max(self.seqs[i][0] for i in ones) + 1, -1, dtype=np.int64)
            for i in reversed(ones):  # the first id wins for a repeated token
                lut[self.seqs[i][0]] = i
            self._one = lut
        for length, ids in by_len.items():
            rows = np.array([self.seqs[i] for i in ids], dtype=np.uint64).reshape(len(ids), length)
            hashes = _hash_rows(rows)
            order = np.argsort(hashes, kind="stable")
            # equal sequences share a hash; keep the first id for each distinct sequence
            hashes, rows, ids_arr = hashes[order], rows[order], np.array(ids, dtype=np.int64)[order]
            keep = np.ones(hashes.size, dtype=bool)
            keep[1:] = hashes[1:] != hashes[:-1]
            dup = ~keep
            if dup.any() and not all(
                np.array_equal(rows[i], rows[i - 1]) for i in np.flatnonzero(dup)
            ):  # two different sequences with one hash: astronomically rare, but never silent
                raise ValueError("hash collision between two different patterns")
            self._groups[length] = (hashes[keep], rows[keep], ids_arr[keep])

    def __len__(self) -> int:
        return len(self.seqs)

    def find(
        self, tokens: np.ndarray, start_lo: int = 0, start_hi: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(start positions, pattern ids) of every occurrence starting in [start_lo, start_hi).

        A pattern listed twice is reported once (under its first id). Sorted by position,
        then pattern id.
        """
        raw = np.asarray(tokens)
        hi = raw.size if start_hi is None else min(int(start_hi), raw.size)
        pos_parts, id_parts = [], []
        if self._one is not None and hi > start_lo:
            t = raw[start_lo:hi]
            top = self._one.size - 1
            hit = np.where(t <= top, self._one[np.minimum(t, top)], -1)
            where = np.flatnonzero(hit >= 0)
            pos_parts.append(where + start_lo)
            id_parts.append(hit[where])
        toks = raw.astype(np.uint64, copy=False) if self._groups else raw
        for length, (hashes, rows, ids) in self._groups.items():
            h = _hash_windows(toks, length)[start_lo:hi]
            if h.size == 0:
                continue
            slot = np.searchsorted(hashes, h)
            slot = np.minimum(slot, hashes.size - 1)
            cand = np.flatnonzero(hashes[slot] == h)
            if cand.size == 0:
                continue
            slot = slot[cand]
            starts = cand + start_lo
            ok = np.ones(cand.size, dtype=bool)
            for j in range(length):  # confirm token by token
                ok &= toks[starts + j] == rows[slot, j]
            pos_parts.append(starts[ok])
            id_parts.append(ids[slot[ok]])
        if not pos_parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        pos = np.concatenate(pos_parts).astype(np.int64)
        pid = np.concatenate(id_parts)
        order = np.lexsort((pid, pos))
        return pos[order], pid[order]
