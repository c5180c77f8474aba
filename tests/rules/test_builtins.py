"""Every built-in rule loads and declares what docs/method.md §3, §6 and §8 say it should."""

from __future__ import annotations

from collections import Counter
from importlib.resources import files

import pytest

from ungrok.rules import expand_probes, get_rule, lists_for, load_rules, resolve_list
from ungrok.rules.spec import LookaheadEvent, NgramEvent, WindowEvent

BUILTINS = {
    "pronoun_gender_ref",
    "pronoun_gender_ref_v2",
    "pronoun_gender_noun",
    "reflexive_gender",
    "reflexive_gender_v2",
    "det_an_choice",
    "a_an_adjective",
    "irregular_past",
    "irregular_past_v2",
    "negation_bare_verb",
    "negation_bare_verb_v2",
    "plural_was_were",
    "modal_agreement",
    "modal_agreement_v2",
    "comparative_er",
}

# Items per (condition, split) from docs/method.md §3.3, written out by hand:
# family: (conflict train, conflict heldout, agree train, agree heldout)
COUNTS = {
    "pronoun_gender_ref": (12, 12, 12, 12),
    "reflexive_gender": (24, 24, 24, 24),
    "det_an_choice": (96, 96, 96, 96),
    "a_an_adjective": (48, 48, 48, 48),
    "irregular_past": (54, 108, 36, 72),
    "plural_was_were": (24, 24, 16, 16),
    "negation_bare_verb": (48, 48, 24, 24),
    "comparative_er": (24, 24, 12, 12),
    "modal_agreement": (96, 96, 96, 96),
    "modal_agreement_v2": (96, 96, 96, 96),
    "irregular_past_v2": (54, 108, 36, 72),
    "negation_bare_verb_v2": (48, 48, 48, 48),
    "pronoun_gender_ref_v2": (72, 72, 72, 72),
    "reflexive_gender_v2": (72, 72, 72, 72),
    "pronoun_gender_noun": (16, 16, 16, 16),
}

GIRLS_V2 = {
    "Lily",
    "Mia",
    "Anna",
    "Emma",
    "Sue",
    "Jane",
    "Lucy",
    "Ella",
    "Rose",
    "Grace",
    "Amy",
    "Kate",
    "Sara",
    "Beth",
    "Daisy",
    "Molly",
    "Ruby",
    "Zoe",
}
BOYS_V2 = {
    "Tom",
    "Ben",
    "Max",
    "Sam",
    "Jack",
    "Tim",
    "Leo",
    "Jake",
    "Adam",
    "Mark",
    "Paul",
    "Pete",
    "Nick",
    "John",
    "Finn",
    "Billy",
    "Fred",
    "Joe",
}
FEM = {"girl", "woman", "mom", "queen", "princess", "sister", "grandma", "aunt"}
MASC = {"boy", "man", "dad", "king", "prince", "brother", "grandpa", "uncle"}
AN_FLIP = {" an": " a", " An": " A", "an": "a", "An": "A"}


def test_all_builtins_load():
    assert set(load_rules()) == BUILTINS


def test_builtin_files_are_named_after_their_rule():
    root = files("ungrok.rules").joinpath("builtin")
    stems = {
        e.name[: -len(".yaml")]
        for e in root.iterdir()
        if e.name.endswith(".yaml") and not e.name.startswith("_")
    }
    assert stems == BUILTINS


def test_flags_and_descriptions():
    rules = load_rules()
    assert [n for n, s in rules.items() if s.focal] == ["pronoun_gender_ref"]
    assert [n for n, s in rules.items() if s.exploratory] == ["comparative_er"]
    for spec in rules.values():
        assert len(spec.description) > 80, spec.name


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_item_counts_match_method(name):
    spec = get_rule(name)
    c = Counter((it["condition"], it["split"]) for it in expand_probes(spec, lists_for(spec)))
    got = (c["conflict", "train"], c["conflict", "heldout"], c["agree", "train"], c["agree", "heldout"])
    assert got == COUNTS[name]


@pytest.mark.parametrize(
    "name, girls, boys, rule",
    [
        ("pronoun_gender_ref", GIRLS_V2, BOYS_V2, " she"),
        ("pronoun_gender_ref_v2", GIRLS_V2, BOYS_V2, " she"),
        ("pronoun_gender_noun", FEM, MASC, " she"),
        ("reflexive_gender", GIRLS_V2, BOYS_V2, " herself"),
        ("reflexive_gender_v2", GIRLS_V2, BOYS_V2, " herself"),
    ],
)
def test_gender_families_count_with_a_16_token_window(name, girls, boys, rule):
    spec = get_rule(name)
    lists = lists_for(spec)
    assert isinstance(spec.event, WindowEvent) and spec.event.window == 16
    fem, masc = spec.cues
    assert (fem.role, masc.role) == ("conflict", "agree")
    assert set(resolve_list(fem.words, lists)) == girls
    assert set(resolve_list(masc.words, lists)) == boys
    other = " he" if rule == " she" else " himself"
    assert (fem.rule, fem.prior) == ([rule], [other])
    assert (masc.rule, masc.prior) == ([other], [rule])
    assert spec.kill is not None and spec.kill.cue_classes == [fem.name]
    assert spec.kill.flip[rule] == other


def test_pronoun_kill_flips_both_case_channels():
    for name in ("pronoun_gender_ref", "pronoun_gender_ref_v2", "pronoun_gender_noun"):
        assert get_rule(name).kill.flip == {" she": " he", " She": " He"}


@pytest.mark.parametrize("name", ["det_an_choice", "a_an_adjective"])
def test_a_an_families_use_lookahead_and_four_channel_kill(name):
    spec = get_rule(name)
    ev = spec.event
    assert isinstance(ev, LookaheadEvent)
    assert ev.rule == [" an", " An", "an", "An"] and ev.prior == [" a", " A", "a", "A"]
    assert ev.next_regex == "^ [aeiouAEIOU]"
    assert spec.kill.flip == AN_FLIP


@pytest.mark.parametrize(
    "name",
    [
        "irregular_past",
        "irregular_past_v2",
        "negation_bare_verb",
        "negation_bare_verb_v2",
        "plural_was_were",
        "modal_agreement",
        "modal_agreement_v2",
        "comparative_er",
    ],
)
def test_other_families_count_derived_bigrams(name):
    ev = get_rule(name).event
    assert isinstance(ev, NgramEvent) and ev.rule == [] and ev.prior == []


def test_ngram_kills_turn_conflict_correct_into_distractor():
    assert get_rule("plural_was_were").kill.flip == {" were": " was"}
    assert get_rule("modal_agreement").kill.flip[" swim"] == " swims"
    assert get_rule("negation_bare_verb").kill.flip[" find"] == " found"
    for name in ("irregular_past", "irregular_past_v2", "comparative_er"):
        assert get_rule(name).kill is None


def test_rescue_names_frames_and_disjointness():
    for name in ("pronoun_gender_ref", "pronoun_gender_ref_v2"):
        spec = get_rule(name)
        lists = lists_for(spec)
        r = spec.rescue
        assert (r.rule_class.pronoun, r.control_class.pronoun) == ("she", "he")
        girls = resolve_list(r.rule_class.names, lists)
        boys = resolve_list(r.control_class.names, lists)
        assert len(girls) == len(boys) == 12
        assert "Mary" in girls and "David" in boys
        # docs/method.md §8.5 D1: rescue names share nothing with any battery cue list.
        assert not (set(girls) | set(boys)) & (GIRLS_V2 | BOYS_V2 | FEM | MASC)
        frames = resolve_list(r.frames, lists)
        assert len(frames) == 12 and r.sentences_per_doc == 4
        assert frames[0] == "{n} opened the door, and then {p} walked outside."
    others = BUILTINS - {"pronoun_gender_ref", "pronoun_gender_ref_v2"}
    assert all(get_rule(n).rescue is None for n in others)


def test_only_the_focal_rules_declare_a_margin():
    m = get_rule("pronoun_gender_ref").margin
    assert (m.rule, m.prior, m.split) == (" she", " he", "heldout")
    # the focal rule and its 72-item v2 inventory (the demo's focal family) read the same margin
    assert sorted(n for n in BUILTINS if get_rule(n).margin is not None) == ["pronoun_gender_ref", "pronoun_gender_ref_v2"]
    assert get_rule("pronoun_gender_ref_v2").margin == m
