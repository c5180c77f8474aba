"""The built-in rules regenerate the paper's rvp3.1 and rvp4.1 batteries item for item."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from ungrok.rules import ITEM_FIELDS, expand_probes, get_rule, lists_for

from .conftest import reference_battery

RVP3 = [
    "pronoun_gender_ref",
    "reflexive_gender",
    "det_an_choice",
    "a_an_adjective",
    "irregular_past",
    "plural_was_were",
    "negation_bare_verb",
    "comparative_er",
    "modal_agreement",
    "modal_agreement_v2",
    "irregular_past_v2",
    "negation_bare_verb_v2",
]
RVP4 = RVP3 + ["pronoun_gender_ref_v2", "reflexive_gender_v2", "pronoun_gender_noun"]
KEY = ("prefix", "correct", "distractor", "family", "condition", "split", "template_id")


def _expand(families: list[str]) -> list[dict]:
    out = []
    for name in families:
        spec = get_rule(name)
        out.extend(expand_probes(spec, lists_for(spec)))
    return out


def _keys(items: list[dict]) -> Counter:
    return Counter(tuple(it[k] for k in KEY) for it in items)


@pytest.mark.parametrize("version, families", [("rvp3", RVP3), ("rvp4", RVP4)])
def test_expansion_reproduces_reference_battery(version, families):
    ref = reference_battery(version)
    assert {it["family"] for it in ref} == set(families)
    mine = _expand(families)
    assert len(mine) == len(ref)
    assert set(_keys(mine)) == set(_keys(ref))
    assert _keys(mine) == _keys(ref)  # multiset: comparative_er held-out repeats items


def test_reference_has_the_duplicates_we_reproduce():
    ref = reference_battery("rvp3")
    dups = {k: n for k, n in _keys(ref).items() if n > 1}
    assert dups and all(k[3] == "comparative_er" and k[5] == "heldout" for k in dups)
    assert set(dups.values()) == {6}


def test_items_have_exactly_the_reference_fields():
    ref = reference_battery("rvp3")
    for it in _expand(RVP4):
        assert tuple(it) == ITEM_FIELDS
        assert set(it) == set(ref[0])
        assert it["probe"] == f"{it['family']}.{it['condition']}"
        assert it["category"] == "rule_vs_prior" and it["chance"] == 0.5


def test_item_ids_number_within_probe_and_split():
    items = _expand(RVP4)
    assert len({it["item_id"] for it in items}) == len(items)
    per: Counter = Counter()
    for it in items:
        m = re.fullmatch(r"(.+)/(train|heldout)/(\d{4})", it["item_id"])
        assert m and m.group(1) == it["probe"] and m.group(2) == it["split"]
        assert int(m.group(3)) == per[it["probe"], it["split"]]
        per[it["probe"], it["split"]] += 1


def test_expansion_is_deterministic():
    assert _expand(RVP4) == _expand(RVP4)
