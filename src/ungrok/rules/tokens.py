"""A rule's strings as token-id sequences under one tokenizer.

Counting, killing and margins all run on token ids, so the strings in a spec are
encoded once here, and a cue or target that a tokenizer cannot represent (encodes to
nothing, or to the unknown token) is refused before any counting starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from ungrok.corpus.tokenizer import UNK
from ungrok.errors import UngrokError
from ungrok.rules.expand import ngram_patterns
from ungrok.rules.spec import LookaheadEvent, NgramEvent, RuleSpec, resolve_list

Seq = tuple[int, ...]
_VARIANT_TEXT = {"bare": "{}", "space": " {}"}


@dataclass(frozen=True)
class CueTokens:
    """One cue class: each word's variant sequences, and the class's rule/prior targets."""

    name: str
    role: str
    words: tuple[tuple[str, tuple[Seq, ...]], ...]  # (word, one sequence per variant)
    rule: tuple[Seq, ...]
    prior: tuple[Seq, ...]

    @property
    def sequences(self) -> tuple[Seq, ...]:
        """Every distinct cue sequence of the class, in word order."""
        return tuple(dict.fromkeys(s for _, seqs in self.words for s in seqs))


@dataclass(frozen=True)
class RuleTokens:
    """Token ids for a rule's event, cues and kill flips.

    `rule`/`prior` are the event's targets: the lookahead tokens, the ngram patterns,
    or (window rules) the targets of the conflict-role cue classes.
    """

    rule_name: str
    cues: tuple[CueTokens, ...]
    rule: tuple[Seq, ...]
    prior: tuple[Seq, ...]
    flips: tuple[tuple[Seq, Seq], ...] = ()


class _Encoder:
    def __init__(self, tok: Tokenizer, rule_name: str) -> None:
        self.tok = tok
        self.rule_name = rule_name
        self.unk = tok.token_to_id(UNK)

    def __call__(self, text: str, what: str) -> Seq:
        ids = tuple(self.tok.encode(text, add_special_tokens=False).ids)
        if not ids:
            raise UngrokError(f"rule {self.rule_name!r}: {what} {text!r} encodes to no tokens")
        if self.unk is not None and self.unk in ids:
            raise UngrokError(f"rule {self.rule_name!r}: {what} {text!r} encodes to the unknown token {UNK}")
        return ids


def _unique(seqs: list[Seq]) -> tuple[Seq, ...]:
    return tuple(dict.fromkeys(seqs))


def resolve_tokens(
    spec: RuleSpec, lists: dict[str, list[Any]], tokenizer: Tokenizer, with_kill: bool = True
) -> RuleTokens:
    """Encode a rule's cues, targets and (with_kill) kill flips with `tokenizer` (no special tokens).

    Counting support needs no kill flips, so it passes with_kill=False and a tokenizer
    that lacks, say, " She" can still count the rule.
    """
    enc = _Encoder(tokenizer, spec.name)
    cues: list[CueTokens] = []
    for cue in spec.cues:
        try:
            words = resolve_list(cue.words, lists)
        except (KeyError, ValueError) as e:
            raise UngrokError(f"rule {spec.name!r}, cue class {cue.name!r}: {e.args[0]}") from None
        where = f"cue class {cue.name!r}"
        entries = tuple(
            (
                str(w),
                tuple(enc(_VARIANT_TEXT[v].format(w), f"{where} word") for v in cue.variants),
            )
            for w in words
        )
        cues.append(
            CueTokens(
                name=cue.name,
                role=cue.role,
                words=entries,
                rule=_unique([enc(t, f"{where} rule target") for t in cue.rule]),
                prior=_unique([enc(t, f"{where} prior target") for t in cue.prior]),
            )
        )
    ev = spec.event
    if isinstance(ev, LookaheadEvent):
        rule_txt, prior_txt = list(ev.rule), list(ev.prior)
    elif isinstance(ev, NgramEvent):
        rule_txt, prior_txt = ngram_patterns(spec, lists)
    else:
        conflict = [c for c in spec.cues if c.role == "conflict"] or list(spec.cues)
        rule_txt = [t for c in conflict for t in c.rule]
        prior_txt = [t for c in conflict for t in c.prior]
    flips = ()
    if spec.kill is not None and with_kill:
        flips = tuple((enc(a, "kill source"), enc(b, "kill target")) for a, b in spec.kill.flip.items())
    return RuleTokens(
        rule_name=spec.name,
        cues=tuple(cues),
        rule=_unique([enc(t, "rule target") for t in rule_txt]),
        prior=_unique([enc(t, "prior target") for t in prior_txt]),
        flips=flips,
    )


def next_token_ids(tok: Tokenizer, pattern: str) -> np.ndarray:
    """Ids (int64, ascending) whose decoded text matches a lookahead event's `next_regex`:
    the one reading of that regex, for the support counter and the kill alike."""
    rx = re.compile(pattern)
    return np.array([i for i in range(tok.get_vocab_size()) if rx.search(tok.decode([i]) or "")], dtype=np.int64)
