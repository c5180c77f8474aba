"""Prompt sets: what each instrument reads, single-token targets, and the identifying hash."""

from __future__ import annotations

import pytest
import torch

from ungrok.errors import UngrokError
from ungrok.mech.prompts import CONTROL, CUE, build_prompts, pad, same_rule
from ungrok.probes.battery import Battery
from ungrok.probes.margins import margin_prompt_set
from ungrok.rules.registry import get_rule

from .conftest import RULE


def test_cm_prompts_are_the_rules_margin_prompts(prompts, tokenizer):
    margin = margin_prompt_set(get_rule(RULE))
    assert prompts.cm_prompts == margin.cm_prompts
    assert [list(i) for i in prompts.cm_ids] == [tokenizer.encode(p) for p in margin.cm_prompts]
    assert prompts.rule_id == tokenizer.encode(" she")[0] and prompts.prior_id == tokenizer.encode(" he")[0]


def test_class_prompts_are_heldout_conflict_and_agree_prefixes_with_their_frames(prompts, battery):
    expected = {}
    for it in battery.items:
        if it["family"] == RULE and it["split"] == "heldout":
            expected[it["prefix"]] = (CUE if it["condition"] == "conflict" else CONTROL, it["template_id"])
    got = {p: (c, f) for p, c, f in zip(prompts.class_prompts, prompts.class_labels, prompts.class_frames,
                                         strict=True)}
    assert got == expected
    assert prompts.class_labels.count(CUE) == 12 and prompts.class_labels.count(CONTROL) == 12
    assert set(prompts.class_frames) == {"laughed", "cried"}


def test_other_families_exclude_the_rule_and_its_versions(prompts):
    assert prompts.other_battery is not None
    fams = set(prompts.other_battery.families)
    assert fams == {"plural_was_were", "comparative_er"}
    assert all(
        it["condition"] == "conflict" and it["split"] == "heldout" for it in prompts.other_battery.items
    )
    assert same_rule("pronoun_gender_ref", "pronoun_gender_ref_v2") and not same_rule(
        "reflexive_gender", RULE
    )


def test_cue_tokens_are_the_single_token_forms_of_the_conflict_cue_words(prompts, tokenizer):
    # the word tokenizer knows every battery word in both bare and space-prefixed form
    assert "Lily" in prompts.cue_words and " Lily" in prompts.cue_words
    assert "Tom" not in prompts.cue_words  # boy names are the agree (control) cue class
    for w, i in zip(prompts.cue_words, prompts.cue_ids, strict=True):
        assert tokenizer.encode(w) == [i]


def test_hash_is_stable_and_follows_the_texts(prompts, battery, tokenizer):
    again = build_prompts(RULE, battery, tokenizer)
    assert again.sha256 == prompts.sha256 and len(prompts.sha256) == 64
    fewer = Battery(tuple(it for it in battery.items if it["family"] != "comparative_er"))
    assert build_prompts(RULE, fewer, tokenizer).sha256 != prompts.sha256


class _SplitShe:
    """A tokenizer that spells ' she' as two tokens."""

    def __init__(self, inner):  # noqa: ANN001
        self.inner, self.vocab_size, self.unk_id = inner, inner.vocab_size, inner.unk_id

    def encode(self, text: str) -> list[int]:
        return [5, 6] if text == " she" else self.inner.encode(text)


def test_a_multi_token_target_is_an_error_naming_word_and_count(battery, tokenizer):
    with pytest.raises(UngrokError, match=r"' she' is 2 tokens"):
        build_prompts(RULE, battery, _SplitShe(tokenizer))


def test_a_rule_without_margin_or_without_heldout_items_is_an_error(battery, tokenizer):
    with pytest.raises(UngrokError, match="no margin"):
        build_prompts("plural_was_were", battery, tokenizer)
    no_agree = Battery(
        tuple(it for it in battery.items if not (it["family"] == RULE and it["condition"] == "agree"))
    )
    with pytest.raises(UngrokError, match="no held-out agree items"):
        build_prompts(RULE, no_agree, tokenizer)


def test_pad_right_pads_and_names_last_positions():
    ids, last = pad([(3, 4, 5), (7,), (1, 2)])
    assert ids.tolist() == [[3, 4, 5], [7, 0, 0], [1, 2, 0]]
    assert last.tolist() == [2, 0, 1]
    assert ids.dtype == torch.long
