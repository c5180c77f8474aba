"""The batched scorer against a slow per-item reference, ties, skipping and the vocabulary check."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ungrok.errors import UngrokError
from ungrok.probes.battery import Battery
from ungrok.probes.models import GPTLogits
from ungrok.probes.score import BatteryPlan, score_battery

from .conftest import battery_texts, item, tiny_gpt, word_tokenizer


def slow_logp(model, tok, prefix: str, cont: str) -> float:  # noqa: ANN001
    """One forward of prefix+continuation, no batching or sharing: sum of the continuation's log-probs."""
    p, c = tok.encode(prefix), tok.encode(cont)
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([p + c]))[0], dim=-1)
    return sum(float(lp[len(p) - 1 + j, t]) for j, t in enumerate(c))


def test_batched_scores_equal_the_per_item_reference(battery, tokenizer):
    model = tiny_gpt(tokenizer.vocab_size, seed=1)
    s = score_battery(GPTLogits(model), tokenizer, battery)
    ref_c = np.array([slow_logp(model, tokenizer, it["prefix"], it["correct"]) for it in battery.items])
    ref_d = np.array([slow_logp(model, tokenizer, it["prefix"], it["distractor"]) for it in battery.items])
    np.testing.assert_allclose(s.logp_correct, ref_c, atol=1e-5, rtol=0)
    np.testing.assert_allclose(s.logp_distractor, ref_d, atol=1e-5, rtol=0)
    assert list(s.correct) == list(ref_c > ref_d)
    lens = {it["correct"]: len(tokenizer.encode(it["correct"])) for it in battery.items}
    assert [lens[it["correct"]] for it in battery.items] == list(s.len_correct)
    # groups are plain means over their items
    for g in s.groups():
        idx = [i for i, it in enumerate(battery.items)
               if (it["family"], it["condition"], it["split"]) == (g.family, g.condition, g.split)]
        assert g.n_items == len(idx) and g.n_skipped == 0
        assert g.accuracy == pytest.approx(np.mean(ref_c[idx] > ref_d[idx]))
        assert g.mean_margin == pytest.approx(np.mean(ref_c[idx] - ref_d[idx]), abs=1e-5)
        norm = [ref_c[i] / lens[battery.items[i]["correct"]]
                - ref_d[i] / len(tokenizer.encode(battery.items[i]["distractor"])) for i in idx]
        assert g.mean_margin_norm == pytest.approx(np.mean(norm), abs=1e-5)
    assert sum(r["correct"] for r in s.item_rows()) == int(s.correct.sum())


def test_results_do_not_depend_on_the_batch_size(battery, tokenizer):
    model = GPTLogits(tiny_gpt(tokenizer.vocab_size, seed=2))
    a = BatteryPlan(battery, tokenizer, batch_tokens=1).score(model)
    b = BatteryPlan(battery, tokenizer, batch_tokens=10_000).score(model)
    np.testing.assert_allclose(a.logp_correct, b.logp_correct, atol=1e-5, rtol=0)
    np.testing.assert_allclose(a.logp_distractor, b.logp_distractor, atol=1e-5, rtol=0)


def test_untrained_model_ties_count_wrong(battery, tokenizer):
    """All-zero logits: every token has log-prob -log V, so equal-length choices tie (wrong)."""
    model = tiny_gpt(tokenizer.vocab_size, random_head=False)
    s = score_battery(GPTLogits(model), tokenizer, battery)
    log_v = math.log(tokenizer.vocab_size)
    np.testing.assert_allclose(s.margin, -(s.len_correct - s.len_distractor) * log_v, atol=1e-6)
    equal = s.len_correct == s.len_distractor
    assert equal.sum() > 0 and not s.correct[equal].any()
    assert (s.correct[~equal] == (s.len_correct < s.len_distractor)[~equal]).all()
    for g in s.groups():
        if g.family == "pron":
            assert g.accuracy == 0.0 and g.mean_margin == 0.0


class CountingModel:
    """Wraps an adapter and records every batch it is asked for."""

    def __init__(self, inner):  # noqa: ANN001
        self.inner = inner
        self.vocab_size, self.context, self.device = inner.vocab_size, inner.context, inner.device
        self.rows = 0
        self.shapes = []

    def logits(self, input_ids, attention_mask, positions=None):  # noqa: ANN001, ANN201
        self.rows += input_ids.shape[0]
        self.shapes.append(tuple(input_ids.shape))
        return self.inner.logits(input_ids, attention_mask, positions)


def test_single_token_items_need_one_row_per_unique_prefix(battery, tokenizer):
    pron = [it for it in battery.items if it["family"] == "pron"]
    flipped = [{**it, "correct": it["distractor"], "distractor": it["correct"], "item_id": it["item_id"] + "f"}
               for it in pron]  # same prefixes again
    pron = Battery(tuple(pron + flipped))
    counting = CountingModel(GPTLogits(tiny_gpt(tokenizer.vocab_size)))
    BatteryPlan(pron, tokenizer).score(counting)
    assert counting.rows == len({it["prefix"] for it in pron.items}) == len(pron) // 2


def test_multi_token_contexts_share_one_row_per_trie_leaf(tokenizer):
    # contexts P, P+an, P+a (egg/dog), P+an+old; P and P+an are prefixes of others -> leaves P+a, P+an+old
    b = Battery((item("d", "conflict", "train", "Lily ate", " an egg", " a egg", 0),
                 item("d", "agree", "train", "Lily ate", " a dog", " an old dog", 1)))
    counting = CountingModel(GPTLogits(tiny_gpt(tokenizer.vocab_size)))
    BatteryPlan(b, tokenizer).score(counting)
    assert counting.rows == 2
    assert sum(s[0] * s[1] for s in counting.shapes) <= 2 * 5


def test_items_that_encode_to_nothing_are_skipped_and_counted(battery):
    items = list(battery.items) + [
        item("pron", "conflict", "heldout", "", " she", " he", 900),  # empty prefix
        item("pron", "conflict", "heldout", "Lily laughed when", " zzz", " he", 901),  # unknown word
    ]
    b = Battery(tuple(items))
    tok = word_tokenizer(battery_texts(battery))
    s = score_battery(GPTLogits(tiny_gpt(tok.vocab_size)), tok, b)
    assert s.n_skipped == 2 and list(s.skipped[-2:]) == [True, True] and not s.correct[-2:].any()
    g = next(g for g in s.groups() if (g.family, g.condition, g.split) == ("pron", "conflict", "heldout"))
    assert g.n_skipped == 2 and g.n_items == 2


def test_a_tokenizer_larger_than_the_model_vocabulary_is_refused(battery, tokenizer):
    model = GPTLogits(tiny_gpt(tokenizer.vocab_size - 1))
    with pytest.raises(UngrokError, match="embeds only"):
        score_battery(model, tokenizer, battery)


def test_sequences_longer_than_the_context_are_refused(tokenizer):
    long = " ".join(["Lily"] * 40)
    b = Battery((item("p", "conflict", "train", long, " she", " he", 0),))
    with pytest.raises(UngrokError, match="more than the model's context of 32"):
        score_battery(GPTLogits(tiny_gpt(tokenizer.vocab_size)), tokenizer, b)
