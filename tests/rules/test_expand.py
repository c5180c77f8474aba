"""Battery expansion, derived bigram patterns and margin prompts against hand-written values."""

from __future__ import annotations

import pytest

from ungrok.errors import UngrokError
from ungrok.rules import (
    derived_ngram_patterns,
    expand_probes,
    get_rule,
    lists_for,
    margin_prompts,
    ngram_patterns,
)
from ungrok.rules.spec import RuleSpec, resolve_list

GIRLS = ["Lily", "Mia", "Anna", "Emma", "Sue", "Jane"]


def _spec(**kw) -> RuleSpec:
    base = {"name": "toy", "event": {"kind": "ngram"}}
    return RuleSpec.model_validate({**base, **kw})


def test_negation_bigram_patterns():
    spec = get_rule("negation_bare_verb")
    rule, prior = derived_ngram_patterns(spec, lists_for(spec))
    assert rule == [
        " not want",
        " not play",
        " not jump",
        " not help",
        " not find",
        " not open",
        " not reach",
        " not stop",
    ]
    assert prior == [
        " not wanted",
        " not played",
        " not jumped",
        " not helped",
        " not found",
        " not opened",
        " not reached",
        " not stoped",
    ]


def test_pronoun_bigram_patterns_use_only_conflict_items():
    spec = get_rule("pronoun_gender_ref")
    rule, prior = derived_ngram_patterns(spec, lists_for(spec))
    assert rule == [" because she", " when she"]
    assert prior == [" because he", " when he"]


def test_plural_bigram_patterns():
    spec = get_rule("plural_was_were")
    rule, prior = derived_ngram_patterns(spec, lists_for(spec))
    nouns = ["dogs", "cats", "birds", "frogs", "boys", "girls", "toys", "ducks"]
    assert sorted(rule) == sorted(f" {n} were" for n in nouns)
    assert sorted(prior) == sorted(f" {n} was" for n in nouns)


def test_listed_ngram_patterns_win_over_derived():
    spec = _spec(
        event={"kind": "ngram", "rule": [" x y"], "prior": [" x z"]},
        probes=[
            {
                "id": "t",
                "split": "train",
                "condition": "conflict",
                "prefix": "a b",
                "correct": " c",
                "distractor": " d",
            }
        ],
    )
    assert ngram_patterns(spec, {}) == ([" x y"], [" x z"])
    assert derived_ngram_patterns(spec, {}) == ([" b c"], [" b d"])


def test_margin_prompts_of_the_focal_rule():
    spec = get_rule("pronoun_gender_ref")
    cm, neutral = margin_prompts(spec, lists_for(spec))
    assert cm == [f"{n} laughed when" for n in GIRLS] + [f"{n} cried because" for n in GIRLS]
    subjects = [
        "The child",
        "The friend",
        "The teacher",
        "The student",
        "The neighbor",
        "The baby",
        "The doctor",
        "The farmer",
    ]
    frames = ["smiled because", "was happy because", "laughed when", "cried because"]
    assert len(neutral) == 32 and len(set(neutral)) == 32
    assert set(neutral) == {f"{s} {f}" for s in subjects for f in frames}


def test_margin_prompts_need_a_margin():
    spec = get_rule("det_an_choice")
    with pytest.raises(UngrokError, match="no margin"):
        margin_prompts(spec, lists_for(spec))


def test_expansion_order_records_and_numbering():
    spec = _spec(
        lists={"V": [{"base": "go", "past": "went"}, {"base": "run", "past": "ran"}]},
        probes=[
            {
                "id": "{v.base}",
                "split": "train",
                "condition": "conflict",
                "prefix": "{n} then",
                "correct": " {v.past}",
                "distractor": " {v.base}ed",
                "slots": {"v": "@V", "n": ["Al", "Bo"]},
            },
            {
                "id": "k",
                "split": "heldout",
                "condition": "conflict",
                "prefix": "Cy",
                "correct": " a",
                "distractor": " b",
            },
            {
                "id": "k",
                "split": "train",
                "condition": "agree",
                "prefix": "Cy",
                "correct": " a",
                "distractor": " b",
            },
        ],
    )
    items = expand_probes(spec, spec.lists)
    got = [(i["item_id"], i["template_id"], i["prefix"], i["correct"], i["distractor"]) for i in items]
    assert got == [
        ("toy.conflict/train/0000", "go", "Al then", " went", " goed"),
        ("toy.conflict/train/0001", "go", "Bo then", " went", " goed"),
        ("toy.conflict/train/0002", "run", "Al then", " ran", " runed"),
        ("toy.conflict/train/0003", "run", "Bo then", " ran", " runed"),
        ("toy.conflict/heldout/0000", "k", "Cy", " a", " b"),
        ("toy.agree/train/0000", "k", "Cy", " a", " b"),
    ]


def test_slices_of_named_lists():
    lists = {"G": ["a", "b", "c", "d"]}
    assert resolve_list("@G[:2]", lists) == ["a", "b"]
    assert resolve_list("@G[1:3]", lists) == ["b", "c"]
    assert resolve_list("@G[-1:]", lists) == ["d"]
    assert resolve_list("@G", lists) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError):
        resolve_list("@G[x]", lists)
    with pytest.raises(KeyError):
        resolve_list("@H[:2]", lists)
