"""The support kernel: one pass over a token array counts every selected rule's events.

Every cue, target and n-gram of every rule is compiled into one pattern table indexed
by its first token, so the pass costs one table lookup per token plus work only where
a pattern starts. Events are anchored at the position where their first pattern
starts; a task counts the anchors inside [0, n_own) of its array and may read up to
`lookahead()` tokens past it, so windows carry across shard boundaries exactly.

Event kinds (METHOD §6):
- window: at each cue occurrence ending at c, the first rule target and the first
  prior target starting after c; a rule event if the rule target starts first and
  within `window` positions of c, a prior event likewise, otherwise neither.
- ngram: exact occurrences of each pattern.
- lookahead: a target pattern followed by a token from a given set (a/an before a vowel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

# Pattern roles (bit flags: one pattern may play several roles for different rules).
CUE, RULE_T, PRIOR_T = 1, 2, 4


@dataclass
class Plan:
    """A compiled set of rules: flat patterns and the role tables the kernel reads.

    Build it with `PlanBuilder`; the arrays are what numba sees.
    """

    vocab_size: int
    pat_tokens: np.ndarray  # int64, all patterns' tokens concatenated
    pat_start: np.ndarray  # int64 [P]
    pat_len: np.ndarray  # int64 [P]
    first_ptr: np.ndarray  # int64 [V+1]: patterns whose first token is t are first_idx[ptr[t]:ptr[t+1]]
    first_idx: np.ndarray  # int64
    # window classes
    cue_ptr: np.ndarray  # int64 [P+1]: window classes for which pattern p is a cue
    cue_cls: np.ndarray  # int64
    cls_window: np.ndarray  # int64 [K]
    tgt_ptr: np.ndarray  # int64 [P+1]: (class, kind) pairs for which p is a target
    tgt_cls: np.ndarray  # int64
    tgt_kind: np.ndarray  # int64: 0 rule, 1 prior
    # lookahead groups
    la_ptr: np.ndarray  # int64 [P+1]: (group, kind) pairs for which p is a lookahead target
    la_grp: np.ndarray  # int64
    la_kind: np.ndarray  # int64
    la_next: np.ndarray  # bool [G, V]: tokens that may follow
    max_len: int
    max_window: int

    @property
    def n_patterns(self) -> int:
        return int(self.pat_len.size)

    @property
    def n_classes(self) -> int:
        return int(self.cls_window.size)

    @property
    def n_groups(self) -> int:
        return int(self.la_next.shape[0])

    def lookahead(self) -> int:
        """Tokens past a task's own range it must be able to read."""
        return self.max_len + self.max_window + self.max_len


class PlanBuilder:
    """Collects patterns and roles, then compiles a `Plan`."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self._pats: dict[tuple[int, ...], int] = {}
        self._cue: list[tuple[int, int]] = []
        self._tgt: list[tuple[int, int, int]] = []
        self._la: list[tuple[int, int, int]] = []
        self._windows: list[int] = []
        self._la_next: list[np.ndarray] = []

    def pattern(self, seq: tuple[int, ...] | list[int]) -> int:
        seq = tuple(int(t) for t in seq)
        if not seq:
            raise ValueError("empty pattern")
        if max(seq) >= self.vocab_size or min(seq) < 0:
            raise ValueError(f"pattern {seq} has ids outside the vocabulary")
        return self._pats.setdefault(seq, len(self._pats))

    def window_class(self, cues, rule_targets, prior_targets, window: int) -> int:
        k = len(self._windows)
        self._windows.append(int(window))
        for s in cues:
            self._cue.append((self.pattern(s), k))
        for s in rule_targets:
            self._tgt.append((self.pattern(s), k, 0))
        for s in prior_targets:
            self._tgt.append((self.pattern(s), k, 1))
        return k

    def ngram(self, seq) -> int:
        return self.pattern(seq)

    def lookahead_group(self, rule_targets, prior_targets, next_tokens: np.ndarray) -> int:
        g = len(self._la_next)
        mask = np.zeros(self.vocab_size, dtype=np.bool_)
        mask[np.asarray(next_tokens, dtype=np.int64)] = True
        self._la_next.append(mask)
        for s in rule_targets:
            self._la.append((self.pattern(s), g, 0))
        for s in prior_targets:
            self._la.append((self.pattern(s), g, 1))
        return g

    def build(self) -> Plan:
        seqs = sorted(self._pats, key=self._pats.__getitem__)
        P = len(seqs)
        lens = np.array([len(s) for s in seqs], dtype=np.int64)
        starts = np.zeros(P, dtype=np.int64)
        if P:
            starts[1:] = np.cumsum(lens)[:-1]
        toks = np.array([t for s in seqs for t in s], dtype=np.int64)
        firsts = np.array([s[0] for s in seqs], dtype=np.int64)
        order = np.argsort(firsts, kind="stable")
        first_ptr = np.zeros(self.vocab_size + 1, dtype=np.int64)
        np.add.at(first_ptr, firsts + 1, 1)
        first_ptr = np.cumsum(first_ptr)

        def csr(pairs: list[tuple], width: int) -> list[np.ndarray]:
            pairs = sorted(pairs)
            ptr = np.zeros(P + 1, dtype=np.int64)
            for p, *_ in pairs:
                ptr[p + 1] += 1
            ptr = np.cumsum(ptr)
            cols = [np.array([q[i] for q in pairs], dtype=np.int64) for i in range(1, width)]
            return [ptr, *cols]

        cue_ptr, cue_cls = csr(self._cue, 2)
        tgt_ptr, tgt_cls, tgt_kind = csr(self._tgt, 3)
        la_ptr, la_grp, la_kind = csr(self._la, 3)
        la_next = np.stack(self._la_next) if self._la_next else np.zeros((0, self.vocab_size), dtype=np.bool_)
        return Plan(
            vocab_size=self.vocab_size,
            pat_tokens=toks,
            pat_start=starts,
            pat_len=lens,
            first_ptr=first_ptr,
            first_idx=order.astype(np.int64),
            cue_ptr=cue_ptr,
            cue_cls=cue_cls,
            cls_window=np.array(self._windows, dtype=np.int64),
            tgt_ptr=tgt_ptr,
            tgt_cls=tgt_cls,
            tgt_kind=tgt_kind,
            la_ptr=la_ptr,
            la_grp=la_grp,
            la_kind=la_kind,
            la_next=la_next,
            max_len=int(lens.max()) if P else 1,
            max_window=int(max(self._windows, default=0)),
        )


@dataclass
class Counts:
    """Raw counts from one task; they reduce by addition."""

    tokens: int
    occurrences: np.ndarray  # int64 [P]: pattern occurrences anchored in range
    window: np.ndarray  # int64 [K, 3]: rule, prior, neither
    lookahead: np.ndarray  # int64 [G, 2]: rule, prior

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.tokens + other.tokens,
            self.occurrences + other.occurrences,
            self.window + other.window,
            self.lookahead + other.lookahead,
        )

    @staticmethod
    def zeros(plan: Plan) -> Counts:
        return Counts(
            0,
            np.zeros(plan.n_patterns, dtype=np.int64),
            np.zeros((plan.n_classes, 3), dtype=np.int64),
            np.zeros((plan.n_groups, 2), dtype=np.int64),
        )


@numba.njit(cache=True, nogil=True)
def _matches(tokens, n, i, pat_tokens, start, length):
    if i + length > n:
        return False
    for q in range(1, length):  # noqa: SIM110 - numba compiles the plain loop
        if tokens[i + q] != pat_tokens[start + q]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _first_target(tokens, n, c, k, window, first_ptr, first_idx, pat_tokens, pat_start,
                  pat_len, tgt_ptr, tgt_cls, tgt_kind, V):  # fmt: skip
    """Scan positions c+1 .. c+window; return 0 (rule), 1 (prior) or 2 (neither)."""
    end = min(n, c + window + 1)
    for j in range(c + 1, end):
        t = tokens[j]
        if t >= V:
            continue
        found_rule = False
        found_prior = False
        for a in range(first_ptr[t], first_ptr[t + 1]):
            p = first_idx[a]
            if tgt_ptr[p] == tgt_ptr[p + 1]:
                continue
            if not _matches(tokens, n, j, pat_tokens, pat_start[p], pat_len[p]):
                continue
            for b in range(tgt_ptr[p], tgt_ptr[p + 1]):
                if tgt_cls[b] == k:
                    if tgt_kind[b] == 0:
                        found_rule = True
                    else:
                        found_prior = True
        if found_rule and not found_prior:
            return 0
        if found_prior and not found_rule:
            return 1
        if found_rule and found_prior:
            return 2  # both start here: no order between them
    return 2


@numba.njit(cache=True, nogil=True)
def _count(tokens, n_own, first_ptr, first_idx, pat_tokens, pat_start, pat_len, cue_ptr, cue_cls,
           cls_window, tgt_ptr, tgt_cls, tgt_kind, la_ptr, la_grp, la_kind, la_next,
           occ, win, la):  # fmt: skip
    n = tokens.shape[0]
    V = first_ptr.shape[0] - 1
    for i in range(n_own):
        t = tokens[i]
        if t >= V:
            continue
        lo = first_ptr[t]
        hi = first_ptr[t + 1]
        if lo == hi:
            continue
        for a in range(lo, hi):
            p = first_idx[a]
            L = pat_len[p]
            if not _matches(tokens, n, i, pat_tokens, pat_start[p], L):
                continue
            occ[p] += 1
            c = i + L - 1
            for b in range(cue_ptr[p], cue_ptr[p + 1]):
                k = cue_cls[b]
                r = _first_target(tokens, n, c, k, cls_window[k], first_ptr, first_idx, pat_tokens,
                                  pat_start, pat_len, tgt_ptr, tgt_cls, tgt_kind, V)  # fmt: skip
                win[k, r] += 1
            for b in range(la_ptr[p], la_ptr[p + 1]):
                nxt = i + L
                if nxt < n:
                    u = tokens[nxt]
                    if u < V and la_next[la_grp[b], u]:
                        la[la_grp[b], la_kind[b]] += 1


def count_array(plan: Plan, tokens: np.ndarray, n_own: int | None = None) -> Counts:
    """Count events anchored in tokens[:n_own]; tokens past n_own are context only."""
    n_own = tokens.shape[0] if n_own is None else int(n_own)
    out = Counts.zeros(plan)
    if plan.n_patterns == 0 or n_own == 0:
        out.tokens = n_own
        return out
    _count(
        tokens, n_own, plan.first_ptr, plan.first_idx, plan.pat_tokens, plan.pat_start, plan.pat_len,
        plan.cue_ptr, plan.cue_cls, plan.cls_window, plan.tgt_ptr, plan.tgt_cls, plan.tgt_kind,
        plan.la_ptr, plan.la_grp, plan.la_kind, plan.la_next, out.occurrences, out.window, out.lookahead,
    )  # fmt: skip
    out.tokens = n_own
    return out
