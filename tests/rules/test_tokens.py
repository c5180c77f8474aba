"""Token resolution of cues, targets and kill flips, on a hand-checked word tokenizer and TS BPE."""

from __future__ import annotations

import pytest

from ungrok.corpus.tokenizer import build_word_tokenizer, load_tokenizer
from ungrok.errors import UngrokError
from ungrok.rules import get_rule, lists_for, load_rules, resolve_tokens
from ungrok.rules.spec import RuleSpec

from .conftest import reference_tokenizer_path


def _toy(words_f, words_m=("Tom",)) -> RuleSpec:
    return RuleSpec.model_validate(
        {
            "name": "toy",
            "cues": [
                {"name": "f", "words": list(words_f), "rule": [" she"], "prior": [" he"]},
                {"name": "m", "words": list(words_m), "rule": [" he"], "prior": [" she"], "role": "agree"},
            ],
            "event": {"kind": "window", "window": 16},
            "kill": {"flip": {" she": " he"}, "cue_classes": ["f"]},
        }
    )


@pytest.fixture
def word_tok():
    # Ids by the documented scheme: EOT 0, UNK 1, then the byte-level pieces sorted:
    # "." 2, "Sue" 3, "Tom" 4, "he" 5, "she" 6, "ĠSue" 7, "ĠTom" 8, "Ġhe" 9, "Ġshe" 10.
    return build_word_tokenizer(["Sue", "Tom", "she", "he"], ["."])


def test_word_tokenizer_ids(word_tok):
    rt = resolve_tokens(_toy(["Sue"]), {}, word_tok)
    f, m = rt.cues
    assert f.name == "f" and f.role == "conflict" and m.role == "agree"
    assert f.words == (("Sue", ((3,), (7,))),)
    assert m.words == (("Tom", ((4,), (8,))),)
    assert f.sequences == ((3,), (7,))
    assert (f.rule, f.prior) == (((10,),), ((9,),))
    assert (m.rule, m.prior) == (((9,),), ((10,),))
    assert (rt.rule, rt.prior) == (((10,),), ((9,),))
    assert rt.flips == (((10,), (9,)),)


def test_space_only_variant(word_tok):
    spec = _toy(["Sue"]).model_copy(deep=True)
    cue = spec.cues[0].model_copy(update={"variants": ["space"]})
    spec = spec.model_copy(update={"cues": [cue, spec.cues[1]]})
    assert resolve_tokens(spec, {}, word_tok).cues[0].words == (("Sue", ((7,),)),)


def test_cue_word_outside_vocab_is_an_error(word_tok):
    with pytest.raises(UngrokError) as info:
        resolve_tokens(_toy(["Sue", "Zed"]), {}, word_tok)
    msg = str(info.value)
    assert "'toy'" in msg and "'f'" in msg and "Zed" in msg and "\n" not in msg


def test_cue_that_encodes_to_nothing_is_an_error(word_tok):
    with pytest.raises(UngrokError, match="encodes to no tokens"):
        resolve_tokens(_toy([""]), {}, word_tok)


def test_target_outside_vocab_is_an_error(word_tok):
    spec = get_rule("reflexive_gender")
    tok = build_word_tokenizer(["she", "he"] + lists_for(spec)["GIRLS_V2"] + lists_for(spec)["BOYS_V2"])
    with pytest.raises(UngrokError, match="herself"):
        resolve_tokens(spec, lists_for(spec), tok)


def test_tinystories_pronoun_ids():
    tok = load_tokenizer(reference_tokenizer_path("tinystories-bpe8192.json"))
    spec = get_rule("pronoun_gender_ref")
    rt = resolve_tokens(spec, lists_for(spec), tok)
    girls, boys = rt.cues
    assert (girls.rule, girls.prior) == (((341,),), ((279,),))
    assert (boys.rule, boys.prior) == (((279,),), ((341,),))
    assert (rt.rule, rt.prior) == (((341,),), ((279,),))
    assert ((341,), (279,)) in rt.flips
    assert len(girls.words) == 18 and len(boys.words) == 18
    # Multi-token cues are kept as sequences: bare "Zoe" is two pieces on TS.
    zoe = dict(girls.words)["Zoe"]
    assert len(zoe[0]) == 2 and tok.decode(list(zoe[0])) == "Zoe"
    assert len(zoe[1]) == 1


def test_every_builtin_resolves_on_tinystories():
    tok = load_tokenizer(reference_tokenizer_path("tinystories-bpe8192.json"))
    for spec in load_rules().values():
        rt = resolve_tokens(spec, lists_for(spec), tok)
        assert rt.rule and rt.prior, spec.name
    an = resolve_tokens(get_rule("det_an_choice"), {}, tok)
    assert tok.encode(" an").ids[0] == an.rule[0][0]
    neg = get_rule("negation_bare_verb")
    rt = resolve_tokens(neg, lists_for(neg), tok)
    assert len(rt.rule) == len(rt.prior) == 8  # the derived " not want" ... bigrams
