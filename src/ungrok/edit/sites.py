"""Eligible kill sites, compiled once per (rule, tokenizer, cue list) and found chunk by chunk.

A kill site is one token that, flipped to its prior form, turns rule events into prior
events, and each site carries a weight: how many of the events the support counter
scores would change if it flips. The editor sums the weights of the sites it flips,
so the post-edit support is known exactly before the counter re-measures it.

- window rules (docs/method.md §8.1): per flip channel (" she" -> " he", " She" -> " He"), the
  first channel source after a kill cue, if it lies within the window and before the
  first channel target; targets shared by several cues are one site. The weight of a
  position is the number of counted cues (the rule's conflict classes) whose first rule
  target is that position.
- lookahead rules (§8.2): a flip source followed by a token the rule's `next_regex`
  accepts (" an" before " apple"); weight 1 if that is a counted rule event.
- n-gram rules: the flip source inside an occurrence of a rule pattern whose flipped
  form is a prior pattern (" not want" -> " not wanted"); weight = such occurrences.

Chunks read a little context around their own range (`before`, `after`), so sites
whose window crosses a chunk or shard boundary are found exactly once.

Exactness. The post-edit support is S - F rule and C + F prior events exactly when a flip
changes nothing the counter scores except the events it weighs: every flip either turns a
counted rule target into a counted prior target or is invisible to the counter (its source
and target play the same part in every counted class, pattern or lookahead context), and
no flip touches a counted cue, a multi-token target, the lookahead's next-token test or an
n-gram pattern other than the one it converts. `KillPlan.inexact` is None for such a plan
(every built-in kill under its own tokenizers), else the first flip that breaks it and how:
such a flip also creates or destroys events elsewhere (another cue's first target, an
overlapping n-gram), which the corpus's local contexts decide, not F.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
from tokenizers import Tokenizer

from ungrok.corpus.tokenizer import UNK, eot_id
from ungrok.edit.seqmatch import Seq, SeqMatcher
from ungrok.errors import UngrokError
from ungrok.rules.spec import LookaheadEvent, NgramEvent, RuleSpec, WindowEvent
from ungrok.rules.tokens import RuleTokens, next_token_ids, resolve_tokens


@dataclass(frozen=True)
class Channel:
    """One flip: a single source token becomes a single target token."""

    src: int
    dst: int
    src_text: str
    dst_text: str


@dataclass
class ChunkSites:
    """Sites found in one chunk's own range (positions relative to the chunk start)."""

    pos: np.ndarray  # int64, sorted, unique
    channel: np.ndarray  # int64, per site
    weight: np.ndarray  # int64, counted rule events that become prior events if the site flips
    counted: int  # counted rule events whose target (window) or start lies in the range


@dataclass
class KillPlan:
    """Everything the editor needs to find and flip sites for one rule."""

    rule: str
    kind: str  # window | lookahead | ngram
    vocab_size: int
    eot: int
    channels: list[Channel]
    cue_source: dict[str, Any]
    window: int = 0
    kill_cues: SeqMatcher | None = None
    count_cues: list[SeqMatcher] = field(default_factory=list)
    count_rule: np.ndarray | None = None  # bool [G, V]
    count_prior: np.ndarray | None = None  # bool [G, V]
    next_mask: np.ndarray | None = None  # bool [V]
    rule_patterns: SeqMatcher | None = None
    killable: list[tuple[int, int]] = field(default_factory=list)  # (rule pattern id, flip offset)
    inexact: str | None = None  # why S - F, C + F may miss the post-edit counts; None: exact (module doc)

    def _lut(self, pairs: Iterable[tuple[int, int]]) -> np.ndarray:
        """token id -> value for each (token, value) pair (a later pair wins), -1 elsewhere."""
        lut = np.full(self.vocab_size, -1, dtype=np.int64)
        for t, v in pairs:
            lut[t] = v
        return lut

    @functools.cached_property
    def src_lut(self) -> np.ndarray:
        return self._lut((c.src, k) for k, c in enumerate(self.channels))

    @functools.cached_property
    def dst_lut(self) -> np.ndarray:
        return self._lut((c.dst, k) for k, c in enumerate(self.channels))

    def _split(self, m: SeqMatcher) -> tuple[np.ndarray, SeqMatcher | None]:
        """One-token patterns as a lookup table (what numba reads per token); longer ones kept for matching."""
        lut = np.zeros(self.vocab_size, dtype=np.bool_)
        multi = []
        for seq in m.seqs:
            if len(seq) == 1:
                if seq[0] < self.vocab_size:
                    lut[seq[0]] = True
            else:
                multi.append(seq)
        return lut, (SeqMatcher(multi) if multi else None)

    @functools.cached_property
    def _kill_split(self) -> tuple[np.ndarray, SeqMatcher | None]:
        return self._split(self.kill_cues)  # type: ignore[arg-type]

    @functools.cached_property
    def _count_split(self) -> tuple[np.ndarray, list[SeqMatcher | None]]:
        parts = [self._split(m) for m in self.count_cues]
        return np.stack([p[0] for p in parts]), [p[1] for p in parts]

    @functools.cached_property
    def _rule_split(self) -> tuple[np.ndarray, SeqMatcher | None]:
        return self._split(self.rule_patterns)  # type: ignore[arg-type]

    @property
    def flip_lut(self) -> np.ndarray:
        """token id -> the id it becomes when flipped, or -1."""
        return self._lut((c.src, c.dst) for c in self.channels)

    @property
    def dst_ids(self) -> np.ndarray:
        return np.array([c.dst for c in self.channels], dtype=np.int64)

    def before(self) -> int:
        """Context tokens a chunk must read before its own range."""
        if self.kind == "window":
            longest = max([self.kill_cues.max_len if self.kill_cues else 1]
                          + [m.max_len for m in self.count_cues])
            return self.window + longest - 1
        if self.kind == "ngram":
            return max(self.rule_patterns.max_len - 1, 0) if self.rule_patterns else 0
        return 0

    def after(self) -> int:
        """Context tokens a chunk must read after its own range."""
        if self.kind == "lookahead":
            return (self.rule_patterns.max_len if self.rule_patterns else 1) + 1
        if self.kind == "ngram":
            return max(self.rule_patterns.max_len - 1, 0) if self.rule_patterns else 0
        return 0

    def sites(self, tokens: np.ndarray, lo: int, hi: int) -> ChunkSites:
        """Sites at positions [lo, hi) of `tokens` (which holds the context around them)."""
        if self.kind == "window":
            return self._window_sites(tokens, lo, hi)
        if self.kind == "lookahead":
            return self._lookahead_sites(tokens, lo, hi)
        return self._ngram_sites(tokens, lo, hi)

    # ------------------------------------------------------------------ window
    @staticmethod
    def _cue_end_mask(matcher: SeqMatcher | None, tokens: np.ndarray, hi: int) -> np.ndarray:
        """Where multi-token cues end (a length-1 dummy when there are none)."""
        if matcher is None:
            return np.zeros(1, dtype=np.bool_)
        mask = np.zeros(tokens.size, dtype=np.bool_)
        pos, pid = matcher.find(tokens, 0, hi)
        if pos.size:
            lens = np.array([len(s) for s in matcher.seqs], dtype=np.int64)
            ends = pos + lens[pid] - 1
            mask[ends[ends < tokens.size]] = True
        return mask

    def _window_sites(self, tokens: np.ndarray, lo: int, hi: int) -> ChunkSites:
        toks = np.ascontiguousarray(tokens[:hi])
        n = toks.size
        kill_lut, kill_multi = self._kill_split
        count_lut, count_multi = self._count_split
        kill_end = self._cue_end_mask(kill_multi, toks, n)
        G = len(self.count_cues)
        width = max([n if m is not None else 1 for m in count_multi])
        count_end = np.zeros((G, width), dtype=np.bool_)
        for g, m in enumerate(count_multi):
            if m is not None:
                count_end[g] = self._cue_end_mask(m, toks, n)
        use_count_end = np.array([m is not None for m in count_multi], dtype=np.bool_)
        site_ch = np.full(n, -1, dtype=np.int8)
        weight = np.zeros(n, dtype=np.int32)
        _window_scan(toks, self.window, kill_lut, kill_end, kill_multi is not None, self.src_lut, self.dst_lut,
                     len(self.channels), count_lut, count_end, use_count_end, self.count_rule, self.count_prior,
                     site_ch, weight)
        pos = np.flatnonzero(site_ch[lo:hi] >= 0) + lo
        return ChunkSites(
            pos, site_ch[pos].astype(np.int64), weight[pos].astype(np.int64), int(weight[lo:hi].sum())
        )

    # ------------------------------------------------------------------ lookahead
    def _lookahead_sites(self, tokens: np.ndarray, lo: int, hi: int) -> ChunkSites:
        toks = np.ascontiguousarray(tokens)
        rule_lut, rule_multi = self._rule_split
        pos = np.empty(hi - lo, dtype=np.int64)
        ch = np.empty(hi - lo, dtype=np.int64)
        w = np.empty(hi - lo, dtype=np.int64)
        k, counted = _lookahead_scan(toks, lo, hi, self.src_lut, self.next_mask, rule_lut, pos, ch, w)
        if rule_multi is not None:  # rule targets longer than one token: counted, never flipped
            starts, pid = rule_multi.find(toks, lo, hi)
            lens = np.array([len(s) for s in rule_multi.seqs], dtype=np.int64)
            nxt = starts + lens[pid]
            nxt = nxt[nxt < toks.size].astype(np.int64)
            V = self.vocab_size
            t = toks[nxt].astype(np.int64)
            counted += int(np.count_nonzero((t < V) & self.next_mask[np.minimum(t, V - 1)]))  # type: ignore[index]
        return ChunkSites(pos[:k], ch[:k], w[:k], int(counted))

    # ------------------------------------------------------------------ ngram
    def _ngram_sites(self, tokens: np.ndarray, lo: int, hi: int) -> ChunkSites:
        toks = np.asarray(tokens)
        rp = self.rule_patterns
        reach = rp.max_len - 1  # type: ignore[union-attr]
        starts, pid = rp.find(toks, max(lo - reach, 0), hi)  # type: ignore[union-attr]
        counted = int(np.count_nonzero(starts >= lo))
        cand_pos = []
        for p, j in self.killable:
            sel = starts[pid == p] + j
            cand_pos.append(sel[(sel >= lo) & (sel < hi)])
        allpos = np.concatenate(cand_pos) if cand_pos else np.zeros(0, dtype=np.int64)
        pos, n_occ = np.unique(allpos, return_counts=True)
        ch = self.src_lut[toks[pos].astype(np.int64)] if pos.size else np.zeros(0, dtype=np.int64)
        return ChunkSites(pos.astype(np.int64), ch, n_occ.astype(np.int64), counted)


@numba.njit(cache=True, nogil=True)
def _window_scan(tokens, W, kill_lut, kill_end, use_kill_end, src_ch, dst_ch, n_ch, count_lut, count_end,
                 use_count_end, count_rule, count_prior, site_ch, weight):
    """One backward pass: at each cue end, the first source/target after it is already known.

    A position is a cue end if its token is a one-token cue (lookup table) or a longer cue
    ends there (`*_end` masks, only read when the rule has such cues).
    """
    n = tokens.shape[0]
    V = src_ch.shape[0]
    G = count_lut.shape[0]
    far = np.int64(1) << np.int64(62)
    next_src = np.full(n_ch, far, dtype=np.int64)
    next_dst = np.full(n_ch, far, dtype=np.int64)
    next_r = np.full(G, far, dtype=np.int64)
    next_p = np.full(G, far, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        t = tokens[i]
        inv = t < V
        if (inv and kill_lut[t]) or (use_kill_end and kill_end[i]):
            for k in range(n_ch):
                s = next_src[k]
                if s - i <= W and s < next_dst[k]:
                    site_ch[s] = k
        for g in range(G):
            if (inv and count_lut[g, t]) or (use_count_end[g] and count_end[g, i]):
                r = next_r[g]
                if r - i <= W and r < next_p[g]:
                    weight[r] += 1
        if inv:
            k = src_ch[t]
            if k >= 0:
                next_src[k] = i
            k = dst_ch[t]
            if k >= 0:
                next_dst[k] = i
            for g in range(G):
                if count_rule[g, t]:
                    next_r[g] = i
                if count_prior[g, t]:
                    next_p[g] = i


@numba.njit(cache=True, nogil=True)
def _lookahead_scan(tokens, lo, hi, src_ch, next_mask, rule_lut, pos, ch, w):
    """Sites (a flip source before an accepted token) and counted one-token rule events in [lo, hi)."""
    n = tokens.shape[0]
    V = src_ch.shape[0]
    k = 0
    counted = 0
    for i in range(lo, hi):
        if i + 1 >= n:
            break
        t = tokens[i]
        if t >= V:
            continue
        u = tokens[i + 1]
        if u >= V or not next_mask[u]:
            continue
        if rule_lut[t]:
            counted += 1
        c = src_ch[t]
        if c >= 0:
            pos[k] = i
            ch[k] = c
            w[k] = 1 if rule_lut[t] else 0
            k += 1
    return k, counted


# ---------------------------------------------------------------------- exactness
def _flip_role(ch: Channel, rule: Any, prior: Any) -> str | None:
    """How one flip reads to a counter whose rule / prior targets are the sets `rule` / `prior`:
    None when it converts a rule target into a prior target or is invisible, else why not."""
    rs, ps, rd, pd = ch.src in rule, ch.src in prior, ch.dst in rule, ch.dst in prior
    if (rs and not ps and pd and not rd) or (rs == rd and ps == pd):
        return None
    if not rs and pd:
        return f"{ch.dst_text!r} is a counted prior target but {ch.src_text!r} no counted rule target (creates events)"
    if not rs and rd:
        return f"{ch.dst_text!r} is a counted rule target but {ch.src_text!r} is not (creates events)"
    return f"{ch.src_text!r} and {ch.dst_text!r} play different parts for the counter (creates or destroys events)"


def _window_inexact(channels: list[Channel], count_rule: np.ndarray, count_prior: np.ndarray,
                    cue_seqs: list[list[Seq]]) -> str | None:
    cue_tokens = {t for seqs in cue_seqs for seq in seqs for t in seq}
    for ch in channels:
        if ch.src in cue_tokens or ch.dst in cue_tokens:
            return f"kill flip {ch.src_text!r} -> {ch.dst_text!r} changes a counted cue token"
        for g in range(count_rule.shape[0]):
            why = _flip_role(ch, set(np.flatnonzero(count_rule[g]).tolist()),
                             set(np.flatnonzero(count_prior[g]).tolist()))
            if why:
                return f"kill flip {ch.src_text!r} -> {ch.dst_text!r}: {why}"
    return None


def _lookahead_inexact(channels: list[Channel], rule: tuple[Seq, ...], prior: tuple[Seq, ...],
                       next_mask: np.ndarray) -> str | None:
    rule1 = {s[0] for s in rule if len(s) == 1}
    prior1 = {s[0] for s in prior if len(s) == 1}
    multi = {t for s in (*rule, *prior) if len(s) > 1 for t in s}
    for ch in channels:
        if ch.src in multi or ch.dst in multi:
            return f"kill flip {ch.src_text!r} -> {ch.dst_text!r} touches a multi-token target"
        if bool(next_mask[ch.src]) != bool(next_mask[ch.dst]):
            return (f"kill flip {ch.src_text!r} -> {ch.dst_text!r} changes whether the token before it "
                    "counts (the rule's next_regex accepts one and not the other)")
        why = _flip_role(ch, rule1, prior1)
        if why:
            return f"kill flip {ch.src_text!r} -> {ch.dst_text!r}: {why}"
    return None


def _ngram_inexact(channels: list[Channel], rule: tuple[Seq, ...], prior: tuple[Seq, ...],
                   killable: list[tuple[int, int]], tok: Tokenizer) -> str | None:
    fwd = {c.src: c.dst for c in channels}
    back = {c.dst: c.src for c in channels}
    kill, rules = set(killable), set(rule)
    for p, seq in enumerate(rule):
        text = repr(tok.decode(list(seq)))
        if any(t in back for t in seq):
            return f"rule pattern {text} holds a kill target (a flip can create it)"
        at = [j for j, t in enumerate(seq) if t in fwd]
        if len(at) > 1:
            return f"rule pattern {text} holds {len(at)} kill sources (flips inside it overlap)"
        if at and (p, at[0]) not in kill:
            return f"rule pattern {text}: its flip is no prior pattern (a flip destroys it uncounted)"
    for seq in prior:
        text = repr(tok.decode(list(seq)))
        if any(t in fwd for t in seq):
            return f"prior pattern {text} holds a kill source (a flip can destroy it)"
        at = [j for j, t in enumerate(seq) if t in back]
        if len(at) > 1:
            return f"prior pattern {text} holds {len(at)} kill targets (flips can build it uncounted)"
        if at and seq[: at[0]] + (back[seq[at[0]]],) + seq[at[0] + 1 :] not in rules:
            return f"prior pattern {text} is not the flip of a rule pattern (a flip can create it uncounted)"
    return None


# ---------------------------------------------------------------------- compile
def _single(seq: Seq, what: str, rule: str, tok: Tokenizer) -> int:
    if len(seq) != 1:
        text = tok.decode(list(seq))
        raise UngrokError(
            f"rule {rule!r}: {what} {text!r} is {len(seq)} tokens under this tokenizer; "
            "a kill flips one token into one token"
        )
    return int(seq[0])


def encode_words(tok: Tokenizer, words: list[str]) -> list[Seq]:
    """Token sequences of each word as "Word" and " Word"; forms that need the unknown token are dropped."""
    unk = tok.token_to_id(UNK)
    out: list[Seq] = []
    for w in words:
        for text in (w, " " + w):
            ids = tuple(tok.encode(text, add_special_tokens=False).ids)
            if ids and (unk is None or unk not in ids):
                out.append(ids)
    return list(dict.fromkeys(out))


def _channels(spec: RuleSpec, rt: RuleTokens, tok: Tokenizer, eot: int) -> list[Channel]:
    channels = []
    for (a, b), (ta, tb) in zip(rt.flips, spec.kill.flip.items(), strict=True):  # type: ignore[union-attr]
        src = _single(a, "kill source", spec.name, tok)
        dst = _single(b, "kill target", spec.name, tok)
        if eot in (src, dst):
            raise UngrokError(f"rule {spec.name!r}: a kill may not flip the end-of-text token")
        channels.append(Channel(src, dst, ta, tb))
    srcs = [c.src for c in channels]
    if len(set(srcs)) != len(srcs) or set(srcs) & {c.dst for c in channels}:
        raise UngrokError(f"rule {spec.name!r}: kill flips must have distinct sources that are never targets")
    return channels


def _lut(vocab: int, seqs: tuple[Seq, ...], rule: str, tok: Tokenizer, what: str) -> np.ndarray:
    m = np.zeros(vocab, dtype=np.bool_)
    for s in seqs:
        m[_single(s, what, rule, tok)] = True
    return m


def build_kill_plan(
    spec: RuleSpec,
    lists: dict[str, list[Any]],
    tok: Tokenizer,
    vocab_size: int,
    cues: list[Seq] | None = None,
    cue_source: dict[str, Any] | None = None,
) -> KillPlan:
    """Compile a rule's kill under a tokenizer; `cues` replaces the spec's kill cue classes (window rules)."""
    if spec.kill is None:
        raise UngrokError(f"rule {spec.name!r} has no kill spec; it cannot be killed")
    rt = resolve_tokens(spec, lists, tok, with_kill=True)
    V = max(vocab_size, tok.get_vocab_size())
    eot = eot_id(tok)
    channels = _channels(spec, rt, tok, eot)
    ev = spec.event
    if isinstance(ev, WindowEvent):
        counted = [c for c in rt.cues if c.role == "conflict"] or list(rt.cues)
        if cues is None:
            names = spec.kill.cue_classes or [c.name for c in counted]
            cues = [s for c in rt.cues if c.name in names for s in c.sequences]
            cue_source = {"mode": "spec", "cue_classes": list(names)}
        if not cues:
            raise UngrokError(f"rule {spec.name!r}: the kill has no cue sequences")
        count_rule = np.stack([_lut(V, c.rule, spec.name, tok, "counted rule target") for c in counted])
        count_prior = np.stack([_lut(V, c.prior, spec.name, tok, "counted prior target") for c in counted])
        for ch in channels:  # a flip that removes a counted rule event must add a counted prior event
            for g in range(len(counted)):
                if count_rule[g, ch.src] and not count_prior[g, ch.dst]:
                    raise UngrokError(
                        f"rule {spec.name!r}: kill flip {ch.src_text!r} -> {ch.dst_text!r} does not turn "
                        f"a rule event of cue class {counted[g].name!r} into a prior event"
                    )
        return KillPlan(
            rule=spec.name, kind="window", vocab_size=V, eot=eot, channels=channels,
            cue_source={**(cue_source or {}), "cue_sequences": len(cues)}, window=ev.window,
            kill_cues=SeqMatcher(cues), count_cues=[SeqMatcher(c.sequences) for c in counted],
            count_rule=count_rule, count_prior=count_prior,
            inexact=_window_inexact(channels, count_rule, count_prior, [list(c.sequences) for c in counted]),
        )
    if cues is not None:
        raise UngrokError(f"rule {spec.name!r} is a {ev.kind} rule; a cue list applies to window rules only")
    if isinstance(ev, LookaheadEvent):
        rule_single = {s[0] for s in rt.rule if len(s) == 1}
        prior_single = {s[0] for s in rt.prior if len(s) == 1}
        for ch in channels:
            if ch.src in rule_single and ch.dst not in prior_single:
                raise UngrokError(
                    f"rule {spec.name!r}: kill flip {ch.src_text!r} -> {ch.dst_text!r} does not turn "
                    "a rule event into a prior event"
                )
        next_mask = np.zeros(V, dtype=np.bool_)
        next_mask[next_token_ids(tok, ev.next_regex)] = True
        return KillPlan(
            rule=spec.name, kind="lookahead", vocab_size=V, eot=eot, channels=channels,
            cue_source={"mode": "none"}, next_mask=next_mask, rule_patterns=SeqMatcher(rt.rule),
            inexact=_lookahead_inexact(channels, rt.rule, rt.prior, next_mask),
        )
    assert isinstance(ev, NgramEvent)
    flip = {c.src: c.dst for c in channels}
    prior = set(rt.prior)
    killable = []
    for p, seq in enumerate(rt.rule):
        for j, t in enumerate(seq):
            if t in flip and (seq[:j] + (flip[t],) + seq[j + 1 :]) in prior:
                killable.append((p, j))
    if not killable:
        raise UngrokError(
            f"rule {spec.name!r}: no rule pattern turns into a prior pattern under its kill flips"
        )
    return KillPlan(
        rule=spec.name, kind="ngram", vocab_size=V, eot=eot, channels=channels,
        cue_source={"mode": "none", "killable_patterns": len({p for p, _ in killable})},
        rule_patterns=SeqMatcher(rt.rule), killable=killable,
        inexact=_ngram_inexact(channels, rt.rule, rt.prior, killable, tok),
    )
