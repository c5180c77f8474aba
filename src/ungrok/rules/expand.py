"""Instruments derived from a rule spec: battery items, bigram patterns, margin prompts.

Everything here is a pure function of (spec, lists), so the battery, the support
counter and the margin read exactly the same strings and are reproducible.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

from ungrok.errors import UngrokError
from ungrok.limits import MAX_EXPANDED_ITEMS
from ungrok.rules.spec import NgramEvent, ProbeTemplate, RuleSpec, fill, resolve_list

CATEGORY = "rule_vs_prior"
CHANCE = 0.5
ITEM_FIELDS = (
    "family",
    "condition",
    "probe",
    "category",
    "template_id",
    "split",
    "prefix",
    "correct",
    "distractor",
    "chance",
    "item_id",
)

Lists = dict[str, list[Any]]


def expand_template(t: ProbeTemplate, lists: Lists) -> Iterator[tuple[str, str, str, str]]:
    """Yield (template_id, prefix, correct, distractor) over the cartesian product of slots.

    The first declared slot varies slowest, so the order follows the YAML file.
    """
    names = list(t.slots)
    pools = [resolve_list(t.slots[n], lists) for n in names]
    count = math.prod(len(p) for p in pools)
    if count > MAX_EXPANDED_ITEMS:
        sizes = " x ".join(f"{n} {len(p):,}" for n, p in zip(names, pools, strict=True))
        raise ValueError(
            f"its slots multiply to {count:,} items ({sizes}), more than the {MAX_EXPANDED_ITEMS:,} "
            "a battery may hold; use shorter lists"
        )
    for combo in itertools.product(*pools):
        values = dict(zip(names, combo, strict=True))
        yield (
            fill(t.id, values),
            fill(t.prefix, values),
            fill(t.correct, values),
            fill(t.distractor, values),
        )


def expand_probes(spec: RuleSpec, lists: Lists) -> list[dict[str, Any]]:
    """The rule's battery items, in the reference schema, numbered per (probe, split)."""
    items: list[dict[str, Any]] = []
    counters: dict[tuple[str, str], int] = {}
    for t in spec.probes:
        probe = f"{spec.name}.{t.condition}"
        try:
            rows = list(expand_template(t, lists))
        except (KeyError, ValueError) as e:
            msg = e.args[0] if e.args else type(e).__name__
            raise UngrokError(f"rule {spec.name!r}, template {t.id!r}: {msg}") from None
        for template_id, prefix, correct, distractor in rows:
            index = counters.get((probe, t.split), 0)
            counters[(probe, t.split)] = index + 1
            items.append(
                {
                    "family": spec.name,
                    "condition": t.condition,
                    "probe": probe,
                    "category": CATEGORY,
                    "template_id": template_id,
                    "split": t.split,
                    "prefix": prefix,
                    "correct": correct,
                    "distractor": distractor,
                    "chance": CHANCE,
                    "item_id": f"{probe}/{t.split}/{index:04d}",
                }
            )
    return items


def _unique(xs: list[str]) -> list[str]:
    return list(dict.fromkeys(xs))


def derived_ngram_patterns(spec: RuleSpec, lists: Lists) -> tuple[list[str], list[str]]:
    """The bigram counter's patterns (docs/method.md §6.2): " " + last prefix word + continuation.

    Built from the unique conflict items of both splits: rule patterns from `correct`,
    prior patterns from `distractor`, each deduplicated in first-seen order.
    """
    seen: dict[tuple[str, str, str], None] = {}
    for it in expand_probes(spec, lists):
        if it["condition"] == "conflict":
            seen.setdefault((it["prefix"], it["correct"], it["distractor"]), None)
    rule, prior = [], []
    for prefix, correct, distractor in seen:
        words = prefix.split()
        last = " " + words[-1] if words else ""
        rule.append(last + correct)
        prior.append(last + distractor)
    return _unique(rule), _unique(prior)


def ngram_patterns(spec: RuleSpec, lists: Lists) -> tuple[list[str], list[str]]:
    """Patterns an ngram rule counts: the listed ones where given, else the derived ones."""
    ev = spec.event
    listed_rule = list(ev.rule) if isinstance(ev, NgramEvent) else []
    listed_prior = list(ev.prior) if isinstance(ev, NgramEvent) else []
    if listed_rule and listed_prior:
        return listed_rule, listed_prior
    rule, prior = derived_ngram_patterns(spec, lists)
    return listed_rule or rule, listed_prior or prior


def margin_prompts(spec: RuleSpec, lists: Lists) -> tuple[list[str], list[str]]:
    """(CM prompts, neutral prompts) of docs/method.md §5.1.

    CM prompts are the unique conflict prefixes of the margin split in first-seen
    order; neutral prompts are every frame filled with every subject (frame-major).
    """
    m = spec.margin
    if m is None:
        raise UngrokError(f"rule {spec.name!r} declares no margin")
    cm = _unique(
        [
            it["prefix"]
            for it in expand_probes(spec, lists)
            if it["condition"] == "conflict" and it["split"] == m.split
        ]
    )
    try:
        subjects = resolve_list(m.neutral_subjects, lists)
        neutral = [fill(f, {"n": s}) for f in m.neutral_frames for s in subjects]
    except (KeyError, ValueError) as e:
        raise UngrokError(f"rule {spec.name!r}, margin: {e.args[0]}") from None
    return cm, neutral
