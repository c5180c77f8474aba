"""Contrast margin CM and prior pull PM of a rule at one checkpoint (docs/method.md §5.1).

CM = mean over the rule's CM prompts x of [log p(rule target | x) - log p(prior target | x)];
PM = mean over its neutral prompts of [log p(prior target) - log p(rule target)].
Prompts and targets come from the rule spec's `margin` section
(`ungrok.rules.margin_prompts`). A target may span several tokens; its log-probability
is then the sum over its tokens, read through the same shared-context scorer as the
battery. Unlike a battery item, a margin prompt or target that encodes to nothing is
an error: a margin averaged over a silently shrunken prompt set is not the margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ungrok.errors import UngrokError
from ungrok.hashing import sha256_json_spaced
from ungrok.probes.score import DEFAULT_BATCH_TOKENS, LogitsModel, PairPlan, TextTokenizer
from ungrok.rules.spec import RuleSpec


@dataclass(frozen=True)
class MarginPrompts:
    """A rule's margin prompts and targets; `sha256` identifies them in the margin table."""

    rule: str
    rule_target: str
    prior_target: str
    cm_prompts: tuple[str, ...]
    neutral_prompts: tuple[str, ...]

    @property
    def sha256(self) -> str:
        body = {
            "rule_target": self.rule_target,
            "prior_target": self.prior_target,
            "cm_prompts": list(self.cm_prompts),
            "neutral_prompts": list(self.neutral_prompts),
        }
        return sha256_json_spaced(body)


@dataclass(frozen=True)
class MarginScore:
    """One rule's CM and PM at one checkpoint."""

    rule: str
    cm: float
    pm: float | None  # None when the rule declares no neutral prompts
    n_cm: int
    n_pm: int
    prompts_sha256: str


def margin_prompt_set(spec: RuleSpec, rules_dir: str | Path | None = None) -> MarginPrompts:
    """The rule's CM and neutral prompts (an error if it declares no margin)."""
    from ungrok.rules.expand import margin_prompts
    from ungrok.rules.registry import lists_for

    if spec.margin is None:
        raise UngrokError(f"rule {spec.name!r} declares no margin section")
    cm, neutral = margin_prompts(spec, lists_for(spec, rules_dir))
    return MarginPrompts(spec.name, spec.margin.rule, spec.margin.prior, tuple(cm), tuple(neutral))


def margin_rules(
    families: Sequence[str], requested: Sequence[str] | None, rules_dir: str | Path | None = None
) -> list[MarginPrompts]:
    """Prompt sets to score: the requested rules, or every battery family whose rule has a margin."""
    from ungrok.rules.registry import get_rule, load_rules

    if requested is not None:
        return [margin_prompt_set(get_rule(r, rules_dir), rules_dir) for r in dict.fromkeys(requested)]
    known = load_rules(rules_dir)
    return [
        margin_prompt_set(known[f], rules_dir) for f in families if f in known and known[f].margin is not None
    ]


class MarginPlan:
    """Margin prompts of several rules tokenized once; `score(model)` gives one MarginScore per rule."""

    def __init__(
        self,
        prompt_sets: Sequence[MarginPrompts],
        tokenizer: TextTokenizer,
        prepend: Sequence[int] = (),
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
    ):
        self.prompt_sets = list(prompt_sets)
        triples: list[tuple[str, str, str]] = []
        self._spans: list[tuple[int, int, int]] = []  # per rule: start, n_cm, n_pm
        for ps in self.prompt_sets:
            start = len(triples)
            triples += [(x, ps.rule_target, ps.prior_target) for x in ps.cm_prompts]
            triples += [(x, ps.prior_target, ps.rule_target) for x in ps.neutral_prompts]
            self._spans.append((start, len(ps.cm_prompts), len(ps.neutral_prompts)))
        self.pairs = PairPlan(triples, tokenizer, prepend, batch_tokens)
        if self.pairs.skipped.any():
            i = int(np.flatnonzero(self.pairs.skipped)[0])
            rule = next(ps.rule for ps, (s, a, b) in zip(self.prompt_sets, self._spans, strict=True)
                        if s <= i < s + a + b)
            p, t1, t2 = triples[i]
            raise UngrokError(
                f"rule {rule!r}: margin prompt {p!r} or target {t1!r}/{t2!r} encodes to nothing "
                "(or to the unknown token) under this tokenizer"
            )

    def score(self, model: LogitsModel) -> list[MarginScore]:
        if not self.prompt_sets:
            return []
        a, b = self.pairs.logprobs(model)
        diff = a - b
        out = []
        for ps, (s, n_cm, n_pm) in zip(self.prompt_sets, self._spans, strict=True):
            cm = float(diff[s : s + n_cm].mean())
            pm = float(diff[s + n_cm : s + n_cm + n_pm].mean()) if n_pm else None
            out.append(MarginScore(ps.rule, cm, pm, n_cm, n_pm, ps.sha256))
        return out
