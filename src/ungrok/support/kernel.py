"""The support kernel: one pass over a token array counts every selected rule's events.

Every cue, target and n-gram of every rule is one pattern (a token sequence) with roles.
Events are anchored at the position where their first pattern starts; a task counts the
anchors inside [0, n_own) of its array and may read up to `lookahead()` tokens past it,
so windows carry across shard boundaries exactly.

Event kinds (docs/method.md §6):
- window: at each cue occurrence ending at c, the first rule target and the first
  prior target starting after c; a rule event if the rule target starts first and
  within `window` positions of c, a prior event likewise, otherwise neither.
- ngram: exact occurrences of each pattern.
- lookahead: a target pattern followed by a token from a given set (a/an before a vowel).

Why it is fast. About one token in six starts a pattern (" a", " he", " she", names):
too many, and too irregular, for a per-token branch to predict. So the pass over the
tokens (pass A) does not branch: a per-token flag byte says whether the token starts a
target, a cue, a lookahead target or a pattern of 2+ tokens, the entry `position, flags`
is written to a per-chunk queue unconditionally, and the queue's end advances when the
flags are not zero; one-token occurrences come from a token histogram. Pass B splits the
queue by flag the same way and does the rare work per short queue: patterns of 2+ tokens
through a hash of their first two tokens, target bits per target position, lookahead
tallies, and cues. A cue needs the first target after it: a backward sweep over the
chunk's target positions gives, per search, the next position holding one of its
targets, so each cue is resolved with a few loads instead of a rescan of its window.
Window classes with the same two target sets and window (the pronoun families share
" she"/" he", some with rule and prior swapped) share one such search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

# Target bits: search s owns bits 2*(s % 16) (its first target set) and 2*(s % 16) + 1
# (its second) of word s // 16.
SEARCHES_PER_WORD = 16
# Per-token flag bits: t starts a target / a cue / a lookahead target / a pattern of 2+ tokens.
STARTS_TARGET, STARTS_CUE, STARTS_LOOKAHEAD, STARTS_LONGER = 1, 2, 4, 8
# Per-pattern role bits, equal to the flag bits: a token's flags hold the roles of the patterns it starts.
HAS_TARGET, HAS_CUE, HAS_LOOKAHEAD = STARTS_TARGET, STARTS_CUE, STARTS_LOOKAHEAD
# Positions per chunk: a chunk's queues stay in L1 while they are drained.
CHUNK = 4096


@dataclass
class Tables:
    """Lookup tables the kernel reads, derived from a plan's patterns and roles.

    Per-token tables have V + 1 rows: row V stands for every id past the vocabulary and
    starts nothing. A *search* is a distinct (first target set, second target set,
    window): every window class is one search, with its rule targets as the first or the
    second set (`cls_swap`), and a cue runs each of its searches once.
    """

    tok_flags: np.ndarray  # uint8 [V+1]: STARTS_TARGET | STARTS_CUE | STARTS_LOOKAHEAD | STARTS_LONGER
    tok_longer: np.ndarray  # uint8 [V+1]: roles (HAS_*) of the patterns of 2+ tokens starting with t
    tok_one: np.ndarray  # int64 [V+1]: the one-token pattern (t,), or -1
    tok_tbits: np.ndarray  # uint32 [V+1, W]: target bits of (t,)
    one_idx: np.ndarray  # int64: the one-token patterns
    pat_role: np.ndarray  # uint8 [P]: HAS_TARGET | HAS_CUE | HAS_LOOKAHEAD
    pat_tbits: np.ndarray  # uint32 [P, W]: target bits set where pattern p starts
    # patterns of 2+ tokens by their first two tokens (a, b): an open-addressing hash table
    # from a * (V + 1) + b to the range long_idx[pair_lo:pair_hi]
    long_idx: np.ndarray  # int64
    pair_keys: np.ndarray  # int64 [H], H a power of two; -1 marks an empty slot
    pair_lo: np.ndarray  # int64 [H]
    pair_hi: np.ndarray  # int64 [H]
    # searches: those of cue pattern p are cs_search[cs_ptr[p]:cs_ptr[p+1]]
    cs_ptr: np.ndarray  # int64 [P+1]
    cs_search: np.ndarray  # int64
    cls_search: np.ndarray  # int64 [K]
    cls_swap: np.ndarray  # int64 [K]: 1 if the class's rule targets are its search's second set
    search_window: np.ndarray  # int64 [S]
    # one-token lookahead targets are tallied by (slot, code of the next token)
    la_slot: np.ndarray  # int64 [V+1]: slot of (t,) if it is a lookahead target, else -1
    la_slot_pat: np.ndarray  # int64 [slots]: the pattern of each slot
    la_code: np.ndarray  # int64 [V+1]: code of u: which groups' sets hold u
    la_code_ok: np.ndarray  # bool [codes, G]


def _searches(P: int, tgt: list[tuple[int, int, int]], windows: list[int]):  # noqa: ANN202
    """Window classes -> searches; target bits of every pattern."""
    K = len(windows)
    sets: list[tuple[set, set]] = [(set(), set()) for _ in range(K)]
    for p, k, kind in tgt:
        sets[k][kind].add(p)
    ids: dict[tuple, int] = {}
    cls_search = np.zeros(K, dtype=np.int64)
    cls_swap = np.zeros(K, dtype=np.int64)
    for k, (rule, prior) in enumerate(sets):
        a, b = tuple(sorted(rule)), tuple(sorted(prior))
        cls_swap[k] = int(b < a)
        cls_search[k] = ids.setdefault((min(a, b), max(a, b), windows[k]), len(ids))
    W = max(1, -(-len(ids) // SEARCHES_PER_WORD))
    pat_tbits = np.zeros((P, W), dtype=np.uint32)
    for (first, second, _), s in ids.items():
        for bit, pats in ((0, first), (1, second)):
            for p in pats:
                pat_tbits[p, s // SEARCHES_PER_WORD] |= np.uint32(1 << (2 * (s % SEARCHES_PER_WORD) + bit))
    search_window = np.array([w for _, _, w in ids], dtype=np.int64)
    return cls_search, cls_swap, search_window, pat_tbits


def _pair_table(V: int, longer: np.ndarray, seconds: np.ndarray, firsts: np.ndarray):  # noqa: ANN202
    """Hash table from the first two tokens of the patterns of 2+ tokens to their range."""
    pair = firsts[longer] * (V + 1) + seconds
    order = np.argsort(pair, kind="stable")
    longer, pair = longer[order], pair[order]
    keys, lo = np.unique(pair, return_index=True)
    hi = np.append(lo[1:], pair.size)[: keys.size]
    H = max(16, 1 << (2 * keys.size - 1).bit_length())  # a power of two, at most half full
    pair_keys = np.full(H, -1, dtype=np.int64)
    pair_lo = np.zeros(H, dtype=np.int64)
    pair_hi = np.zeros(H, dtype=np.int64)
    for key, a, b in zip(keys.tolist(), lo.tolist(), hi.tolist(), strict=True):
        h = _pair_slot(key, H - 1)
        while pair_keys[h] >= 0:
            h = (h + 1) & (H - 1)
        pair_keys[h], pair_lo[h], pair_hi[h] = key, a, b
    return longer.astype(np.int64), pair_keys, pair_lo, pair_hi


def _row_ptr(rows: list[int], n: int) -> np.ndarray:
    """CSR pointers over n rows: the entries of row r (sorted by row) are [ptr[r], ptr[r+1])."""
    return np.cumsum(np.bincount(np.array(rows, dtype=np.int64) + 1, minlength=n + 1))


def _tables(V, lens, starts, toks, firsts, cue, tgt, la, windows, la_next) -> Tables:  # noqa: ANN001
    P = lens.size
    cls_search, cls_swap, search_window, pat_tbits = _searches(P, tgt, windows)
    pat_role = np.zeros(P, dtype=np.uint8)
    for entries, role in ((tgt, HAS_TARGET), (cue, HAS_CUE), (la, HAS_LOOKAHEAD)):
        pat_role[[e[0] for e in entries]] |= role
    pairs = sorted({(p, int(cls_search[k])) for p, k in cue})

    one = np.flatnonzero(lens == 1)
    tok_one = np.full(V + 1, -1, dtype=np.int64)
    tok_one[firsts[one]] = one
    tok_tbits = np.zeros((V + 1, pat_tbits.shape[1]), dtype=np.uint32)
    tok_tbits[firsts[one]] = pat_tbits[one]
    tok_flags = np.zeros(V + 1, dtype=np.uint8)
    np.bitwise_or.at(tok_flags, firsts, pat_role)
    longer = np.flatnonzero(lens > 1)
    tok_flags[firsts[longer]] |= STARTS_LONGER
    tok_longer = np.zeros(V + 1, dtype=np.uint8)
    np.bitwise_or.at(tok_longer, firsts[longer], pat_role[longer])

    la_one = one[(pat_role[one] & HAS_LOOKAHEAD) != 0]
    la_slot = np.full(V + 1, -1, dtype=np.int64)
    la_slot[firsts[la_one]] = np.arange(la_one.size)
    accepts = np.zeros((V + 1, la_next.shape[0]), dtype=np.bool_)  # row u: the groups whose set holds u
    accepts[:V] = la_next.T
    la_code_ok, la_code = np.unique(accepts, axis=0, return_inverse=True)
    long_idx, pair_keys, pair_lo, pair_hi = _pair_table(V, longer, toks[starts[longer] + 1], firsts)
    return Tables(
        tok_flags=tok_flags,
        tok_longer=tok_longer,
        tok_one=tok_one,
        tok_tbits=tok_tbits,
        one_idx=one.astype(np.int64),
        pat_role=pat_role,
        pat_tbits=pat_tbits,
        long_idx=long_idx,
        pair_keys=pair_keys,
        pair_lo=pair_lo,
        pair_hi=pair_hi,
        cs_ptr=_row_ptr([p for p, _ in pairs], P),
        cs_search=np.array([s for _, s in pairs], dtype=np.int64),
        cls_search=cls_search,
        cls_swap=cls_swap,
        search_window=search_window,
        la_slot=la_slot,
        la_slot_pat=la_one.astype(np.int64),
        la_code=la_code.reshape(-1).astype(np.int64),
        la_code_ok=la_code_ok,
    )


@dataclass
class Plan:
    """A compiled set of rules: flat patterns, their roles, and the kernel's tables.

    Build it with `PlanBuilder`.
    """

    vocab_size: int
    pat_tokens: np.ndarray  # int64, all patterns' tokens concatenated
    pat_start: np.ndarray  # int64 [P]
    pat_len: np.ndarray  # int64 [P]
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
    tables: Tables

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
        self._cue += [(self.pattern(s), k) for s in cues]
        self._tgt += [(self.pattern(s), k, 0) for s in rule_targets]
        self._tgt += [(self.pattern(s), k, 1) for s in prior_targets]
        return k

    def ngram(self, seq) -> int:
        return self.pattern(seq)

    def lookahead_group(self, rule_targets, prior_targets, next_tokens: np.ndarray) -> int:
        g = len(self._la_next)
        mask = np.zeros(self.vocab_size, dtype=np.bool_)
        mask[np.asarray(next_tokens, dtype=np.int64)] = True
        self._la_next.append(mask)
        self._la += [(self.pattern(s), g, 0) for s in rule_targets]
        self._la += [(self.pattern(s), g, 1) for s in prior_targets]
        return g

    def build(self) -> Plan:
        seqs = sorted(self._pats, key=self._pats.__getitem__)
        P = len(seqs)
        V = self.vocab_size
        lens = np.array([len(s) for s in seqs], dtype=np.int64)
        starts = np.cumsum(lens) - lens
        toks = np.array([t for s in seqs for t in s], dtype=np.int64)
        firsts = np.array([s[0] for s in seqs], dtype=np.int64)

        def csr(pairs: list[tuple], width: int) -> list[np.ndarray]:
            pairs = sorted(pairs)
            cols = [np.array([q[i] for q in pairs], dtype=np.int64) for i in range(1, width)]
            return [_row_ptr([q[0] for q in pairs], P), *cols]

        cue_ptr, cue_cls = csr(self._cue, 2)
        tgt_ptr, tgt_cls, tgt_kind = csr(self._tgt, 3)
        la_ptr, la_grp, la_kind = csr(self._la, 3)
        la_next = np.stack(self._la_next) if self._la_next else np.zeros((0, V), dtype=np.bool_)
        return Plan(
            vocab_size=V,
            pat_tokens=toks,
            pat_start=starts,
            pat_len=lens,
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
            tables=_tables(
                V, lens, starts, toks, firsts, self._cue, self._tgt, self._la, self._windows, la_next
            ),
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


_JIT = {"cache": True, "nogil": True, "boundscheck": False}
# Helpers are inlined by numba: a call that is not passes every array field by field.
_INLINE = {**_JIT, "inline": "always"}


@numba.njit(**_INLINE)
def _pair_slot(key, mask):
    """Home slot of a first-two-tokens key (multiplicative hashing)."""
    return ((key * 0x2545F4914F6CDD1D) >> 32) & mask


@numba.njit(**_INLINE)
def _longer_at(tokens, n, j, V, pair_keys, pair_lo, pair_hi):
    """long_idx range of the patterns of 2+ tokens whose first two tokens are those at j."""
    if j + 1 >= n:
        return 0, 0
    t1 = np.int64(tokens[j + 1])
    if t1 >= V:
        return 0, 0
    key = np.int64(tokens[j]) * (V + 1) + t1
    mask = pair_keys.shape[0] - 1
    h = _pair_slot(key, mask)
    while True:
        k = pair_keys[h]
        if k == key:
            return pair_lo[h], pair_hi[h]
        if k < 0:
            return 0, 0
        h = (h + 1) & mask


@numba.njit(**_INLINE)
def _rest_matches(tokens, n, i, pat_tokens, start, length):
    """Whether the pattern occurs at i, given that its first two tokens do."""
    if i + length > n:
        return False
    for q in range(2, length):  # noqa: SIM110 - numba compiles the plain loop
        if tokens[i + q] != pat_tokens[start + q]:
            return False
    return True


@numba.njit(**_INLINE)
def _queue(tokens, lo, hi, hx, V, tok_flags, hist, use_hist, ev):
    """Pass A over [lo, hx): `position << 4 | flags` of each position whose token starts
    something (past hi only targets count). No branches: the entry is always written and
    the queue's end advances by flags != 0. Returns the number of entries."""
    ne = 0
    if use_hist:
        for j in range(lo, hi):
            t = min(np.int64(tokens[j]), V)
            f = np.int64(tok_flags[t])
            hist[t] += 1
            ev[ne] = (j << 4) | f
            ne += f != 0
    else:  # the same loop without the histogram
        for j in range(lo, hi):
            f = np.int64(tok_flags[min(np.int64(tokens[j]), V)])
            ev[ne] = (j << 4) | f
            ne += f != 0
    for j in range(hi, hx):
        f = np.int64(tok_flags[min(np.int64(tokens[j]), V)]) & STARTS_TARGET
        ev[ne] = (j << 4) | f
        ne += f != 0
    return ne


@numba.njit(**_INLINE)
def _target_bits(tokens, n, V, qt, nt, tok_longer, tok_tbits, long_idx, pair_keys, pair_lo, pair_hi,
                 pat_tokens, pat_start, pat_len, pat_role, pat_tbits, tbits, nxt):
    """Target bits of each queued target start, and, per search s, nxt[s, y]: the first
    entry from y on with a target of s. Entry nt is a sentinel that is never in a window."""
    W = tbits.shape[1]
    qt[nt] = np.int64(1) << 62
    for w in range(W):
        tbits[nt, w] = 0
    for s in range(nxt.shape[0]):
        nxt[s, nt] = nt
    for y in range(nt - 1, -1, -1):
        j = qt[y]
        t = tokens[j]
        for w in range(W):
            tbits[y, w] = tok_tbits[t, w]
        if tok_longer[t] & HAS_TARGET:
            a0, a1 = _longer_at(tokens, n, j, V, pair_keys, pair_lo, pair_hi)
            for a in range(a0, a1):
                q = long_idx[a]
                if pat_role[q] & HAS_TARGET and _rest_matches(tokens, n, j, pat_tokens, pat_start[q],
                                                              pat_len[q]):
                    for w in range(W):
                        tbits[y, w] |= pat_tbits[q, w]
        for s in range(nxt.shape[0]):
            hit = (np.int64(tbits[y, s // SEARCHES_PER_WORD]) >> (2 * (s % SEARCHES_PER_WORD))) & 3
            nxt[s, y] = y if hit != 0 else nxt[s, y + 1]


# Outcome of a search from the two target bits of its first hit: none -> neither (2),
# first set -> 0, second set -> 1, both -> neither; as 4-bit fields of one constant.
_OUTCOME = 2 | 0 << 4 | 1 << 8 | 2 << 12


@numba.njit(**_INLINE)
def _cue_event(c, q, y, qt, tbits, nxt, cs_ptr, cs_search, search_window, tally):
    """Cue q ends at c and qt[y] is the first queued target start after c: tally the
    outcome of each of its searches, without branches."""
    for e in range(cs_ptr[q], cs_ptr[q + 1]):
        s = cs_search[e]
        z = nxt[s, y]
        b = (np.int64(tbits[z, s // SEARCHES_PER_WORD]) >> (2 * (s % SEARCHES_PER_WORD))) & 3
        b *= qt[z] <= c + search_window[s]
        tally[e, (_OUTCOME >> (4 * b)) & 15] += 1


@numba.njit(**_JIT)
def _count(tokens, n_own, ext, pat_tokens, pat_start, pat_len, cue_ptr, cue_cls, la_ptr, la_grp, la_kind,
           la_next, tok_flags, tok_longer, tok_one, tok_tbits, one_idx, pat_role, pat_tbits, long_idx,
           pair_keys, pair_lo, pair_hi, cs_ptr, cs_search, cls_search, cls_swap, search_window, la_slot,
           la_slot_pat, la_code, la_code_ok, occ, win, la):
    """Chunk by chunk: pass A queues positions by what starts there; pass B drains the queues."""
    n = tokens.shape[0]
    V = tok_flags.shape[0] - 1
    # one-token occurrences come from a histogram of the owned tokens, unless zeroing it
    # would cost more than counting them one by one (short arrays, large vocabularies)
    use_hist = n_own >= V
    hist = np.zeros(V + 1 if use_hist else 1, dtype=np.int64)
    la_hits = np.zeros((la_slot_pat.shape[0], la_code_ok.shape[0]), dtype=np.int64)  # (slot, code)
    tally = np.zeros((cs_search.shape[0], 3), dtype=np.int64)  # (cue pattern, search) -> outcome
    m = min(CHUNK, n_own) + ext + 2
    ev = np.empty(m, dtype=np.int64)
    qt = np.empty(m, dtype=np.int64)  # target starts, in order, up to the lookahead
    tbits = np.empty((m, pat_tbits.shape[1]), dtype=np.uint32)  # their target bits
    nxt = np.empty((search_window.shape[0], m), dtype=np.int64)
    qc = np.empty(m, dtype=np.int64)  # owned positions where a cue may start
    qy = np.empty(m, dtype=np.int64)  # ... and the first target entry after each
    ql = np.empty(m, dtype=np.int64)  # ... a lookahead target
    qm = np.empty(m, dtype=np.int64)  # ... a pattern of two or more tokens
    for lo in range(0, n_own, CHUNK):
        hi = min(lo + CHUNK, n_own)
        hx = min(hi + ext, n)  # targets are needed up to the last owned cue's window end
        ne = _queue(tokens, lo, hi, hx, V, tok_flags, hist, use_hist, ev)
        # split the entries into one queue per flag, again without branches
        nt = 0
        nc = 0
        nl = 0
        nm = 0
        for x in range(ne):
            e = ev[x]
            j = e >> 4
            qt[nt] = j
            nt += e & STARTS_TARGET
            qc[nc] = j
            qy[nc] = nt
            nc += (e >> 1) & 1
            ql[nl] = j
            nl += (e >> 2) & 1
            qm[nm] = j
            nm += (e >> 3) & 1

        # pass B: the rare work, one queue at a time
        for x in range(nm):  # occurrences of longer patterns
            j = qm[x]
            a0, a1 = _longer_at(tokens, n, j, V, pair_keys, pair_lo, pair_hi)
            for a in range(a0, a1):
                q = long_idx[a]
                if _rest_matches(tokens, n, j, pat_tokens, pat_start[q], pat_len[q]):
                    occ[q] += 1
        _target_bits(tokens, n, V, qt, nt, tok_longer, tok_tbits, long_idx, pair_keys, pair_lo, pair_hi,
                     pat_tokens, pat_start, pat_len, pat_role, pat_tbits, tbits, nxt)
        for x in range(nl):  # lookahead targets: is the next token in the group's set?
            j = ql[x]
            t = tokens[j]
            if la_slot[t] >= 0 and j + 1 < n:  # one-token target: tally (slot, next token's code)
                la_hits[la_slot[t], la_code[min(np.int64(tokens[j + 1]), V)]] += 1
            if tok_longer[t] & HAS_LOOKAHEAD:
                a0, a1 = _longer_at(tokens, n, j, V, pair_keys, pair_lo, pair_hi)
                for a in range(a0, a1):
                    q = long_idx[a]
                    L = pat_len[q]
                    if (pat_role[q] & HAS_LOOKAHEAD and j + L < n and tokens[j + L] < V
                            and _rest_matches(tokens, n, j, pat_tokens, pat_start[q], L)):
                        for e in range(la_ptr[q], la_ptr[q + 1]):
                            la[la_grp[e], la_kind[e]] += la_next[la_grp[e], tokens[j + L]]
        for x in range(nc):  # cues
            j = qc[x]
            t = tokens[j]
            q = tok_one[t]
            if q >= 0 and pat_role[q] & HAS_CUE:
                _cue_event(j, q, qy[x], qt, tbits, nxt, cs_ptr, cs_search, search_window, tally)
            if tok_longer[t] & HAS_CUE:
                a0, a1 = _longer_at(tokens, n, j, V, pair_keys, pair_lo, pair_hi)
                for a in range(a0, a1):
                    q = long_idx[a]
                    c = j + pat_len[q] - 1
                    if pat_role[q] & HAS_CUE and _rest_matches(tokens, n, j, pat_tokens, pat_start[q],
                                                               pat_len[q]):
                        y = qy[x]
                        while qt[y] <= c:  # targets must start after the cue's last token
                            y += 1
                        _cue_event(c, q, y, qt, tbits, nxt, cs_ptr, cs_search, search_window, tally)

    # fold histogram and tallies into the per-pattern, per-group and per-class counts
    if use_hist:
        for q in one_idx:
            occ[q] += hist[pat_tokens[pat_start[q]]]
    else:
        for j in range(n_own):
            q = tok_one[min(np.int64(tokens[j]), V)]
            if q >= 0:
                occ[q] += 1
    for s in range(la_slot_pat.shape[0]):
        q = la_slot_pat[s]
        for e in range(la_ptr[q], la_ptr[q + 1]):
            for code in range(la_code_ok.shape[0]):
                if la_code_ok[code, la_grp[e]]:
                    la[la_grp[e], la_kind[e]] += la_hits[s, code]
    for q in range(cs_ptr.shape[0] - 1):
        for e in range(cs_ptr[q], cs_ptr[q + 1]):
            for f in range(cue_ptr[q], cue_ptr[q + 1]):
                k = cue_cls[f]
                if cls_search[k] == cs_search[e]:
                    win[k, cls_swap[k]] += tally[e, 0]
                    win[k, 1 - cls_swap[k]] += tally[e, 1]
                    win[k, 2] += tally[e, 2]


def count_array(plan: Plan, tokens: np.ndarray, n_own: int | None = None) -> Counts:
    """Count events anchored in tokens[:n_own]; tokens past n_own are context only."""
    n_own = tokens.shape[0] if n_own is None else int(n_own)
    out = Counts.zeros(plan)
    out.tokens = n_own
    if plan.n_patterns == 0 or n_own == 0:
        return out
    k = plan.tables
    _count(
        tokens, n_own, plan.max_len - 1 + plan.max_window, plan.pat_tokens, plan.pat_start, plan.pat_len,
        plan.cue_ptr, plan.cue_cls, plan.la_ptr, plan.la_grp, plan.la_kind, plan.la_next, k.tok_flags,
        k.tok_longer, k.tok_one, k.tok_tbits, k.one_idx, k.pat_role, k.pat_tbits, k.long_idx, k.pair_keys,
        k.pair_lo, k.pair_hi, k.cs_ptr, k.cs_search, k.cls_search, k.cls_swap, k.search_window, k.la_slot,
        k.la_slot_pat, k.la_code, k.la_code_ok, out.occurrences, out.window, out.lookahead,
    )
    return out
