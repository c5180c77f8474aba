"""Compile rule specs into one kernel plan, and turn raw counts back into per-rule rows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from tokenizers import Tokenizer

from ungrok.errors import UngrokError
from ungrok.rules.registry import lists_for
from ungrok.rules.spec import LookaheadEvent, NgramEvent, RuleSpec
from ungrok.rules.tokens import RuleTokens, next_token_ids, resolve_tokens
from ungrok.support.kernel import Counts, Plan, PlanBuilder


@dataclass
class RuleSlots:
    """Where one rule's counts live in the plan's count arrays."""

    name: str
    mode: str  # window | ngram | lookahead
    classes: list[tuple[str, str, int]] = field(default_factory=list)  # (cue class, role, k)
    rule_patterns: list[int] = field(default_factory=list)
    prior_patterns: list[int] = field(default_factory=list)
    group: int = -1


@dataclass
class CompiledRules:
    plan: Plan
    slots: list[RuleSlots]
    skipped: dict[str, str]  # rule -> why nothing is counted for it

    def key(self) -> str:
        """A hash of everything that determines the counts (for resume markers)."""
        h = hashlib.sha256()
        p = self.plan
        for a in (p.pat_tokens, p.pat_start, p.pat_len, p.cue_ptr, p.cue_cls, p.cls_window, p.tgt_ptr,
                  p.tgt_cls, p.tgt_kind, p.la_ptr, p.la_grp, p.la_kind, p.la_next):
            h.update(np.ascontiguousarray(a).tobytes())
            h.update(b"|")
        return h.hexdigest()[:16]


def compile_rules(specs: list[RuleSpec], tok: Tokenizer, rules_dir=None) -> CompiledRules:  # noqa: ANN001
    """One plan for all rules. A rule the tokenizer cannot represent is skipped, with the reason."""
    b = PlanBuilder(tok.get_vocab_size())
    slots: list[RuleSlots] = []
    skipped: dict[str, str] = {}
    next_cache: dict[str, np.ndarray] = {}
    for spec in specs:
        try:
            rt: RuleTokens = resolve_tokens(spec, lists_for(spec, rules_dir), tok, with_kill=False)
        except UngrokError as e:
            skipped[spec.name] = str(e)
            continue
        ev = spec.event
        s = RuleSlots(spec.name, ev.kind)
        if isinstance(ev, LookaheadEvent):
            if ev.next_regex not in next_cache:
                next_cache[ev.next_regex] = next_token_ids(tok, ev.next_regex)
            s.group = b.lookahead_group(rt.rule, rt.prior, next_cache[ev.next_regex])
        elif isinstance(ev, NgramEvent):
            s.rule_patterns = [b.ngram(p) for p in rt.rule]
            s.prior_patterns = [b.ngram(p) for p in rt.prior]
        else:
            for c in rt.cues:
                k = b.window_class(c.sequences, c.rule, c.prior, ev.window)
                s.classes.append((c.name, c.role, k))
        slots.append(s)
    return CompiledRules(b.build(), slots, skipped)


def rows_from_counts(compiled: CompiledRules, counts: Counts, mode: str) -> dict[str, dict]:
    """Per-rule rows: rule/prior/neither events, ratio (r+1)/(p+1), frequency per token."""
    out: dict[str, dict] = {}
    n = max(counts.tokens, 1)

    def row(rule: int, prior: int, neither: int | None) -> dict:
        return {
            "rule_events": int(rule),
            "prior_events": int(prior),
            "neither": None if neither is None else int(neither),
            "ratio": (rule + 1) / (prior + 1),
            "frequency": rule / n,
            "mode": mode,
        }

    for s in compiled.slots:
        if s.mode == "window":
            per_class = {name: row(*counts.window[k].tolist()) for name, _, k in s.classes}
            conflict = [k for _, role, k in s.classes if role == "conflict"] or [k for *_, k in s.classes]
            r = row(*counts.window[conflict].sum(axis=0).tolist())
            r["classes"] = per_class
        elif s.mode == "ngram":
            r = row(int(counts.occurrences[s.rule_patterns].sum()), int(counts.occurrences[s.prior_patterns].sum()),
                    None)
        else:
            r = row(*counts.lookahead[s.group].tolist(), None)
        r["event"] = s.mode
        out[s.name] = r
    return out
