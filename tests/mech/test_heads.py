"""Head attribution, zero-ablation and OV alignment against independent derivations."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

from ungrok.mech.decompose import decompose_gap
from ungrok.mech.heads import head_report, ov_cosines
from ungrok.mech.trace import Intervention, contrast_margin, trace
from ungrok.model import GPT, ModelConfig

from .conftest import random_gpt


def _without_head(model: GPT, layer: int, head: int) -> GPT:
    """A copy whose W_O columns for the head are zero: the same as zero-ablating its pre-W_O output."""
    out = copy.deepcopy(model)
    hd = model.config.head_dim
    with torch.no_grad():
        out.blocks[layer].attn.wo.weight[:, head * hd : (head + 1) * hd] = 0.0
    return out


@pytest.fixture(scope="module")
def model(vocab):
    return random_gpt(vocab, seed=2, n_layer=2, n_head=3, n_embd=36)


def test_share_and_top_head(model, prompts):
    rep = head_report(model, prompts)
    dec = decompose_gap(model, prompts)
    assert np.array_equal(rep.attribution, np.array(dec.heads))
    assert rep.share.sum() == pytest.approx(1.0)
    top = rep.top
    assert rep.share[top] == pytest.approx(np.abs(rep.attribution).max() / np.abs(rep.attribution).sum())
    assert rep.share[top] == rep.share.max()


def test_ablation_dcm_equals_the_cm_of_a_model_without_the_head(model, prompts):
    rep = head_report(model, prompts)
    for layer in range(2):
        for h in range(3):
            ref = contrast_margin(_without_head(model, layer, h), prompts) - rep.cm
            assert rep.ablation_dcm[layer, h] == pytest.approx(ref, abs=1e-5)
    assert np.abs(rep.ablation_dcm).max() > 1e-3  # ablations do something in a random model


def _one_prompt(prompts, i: int):  # noqa: ANN001, ANN202
    return dataclasses.replace(
        prompts, cm_prompts=prompts.cm_prompts[i : i + 1], cm_ids=prompts.cm_ids[i : i + 1]
    )


def _final_rms(model: GPT, prompts) -> float:  # noqa: ANN001
    idx, last = prompts.cm_batch()
    x = trace(model, idx, read=last).final[0, last[0]].double()
    return float((x.pow(2).mean() + torch.finfo(torch.float32).eps).sqrt())


def test_ablating_a_head_removes_exactly_its_direct_term(model, prompts):
    """Its own term vanishes; terms upstream of it (and beside it) keep their un-normalised value."""
    for layer, h in ((0, 1), (1, 2)):
        cut = _without_head(model, layer, h)
        for i in range(2):
            one = _one_prompt(prompts, i)
            dec, after = decompose_gap(model, one), decompose_gap(cut, one)
            scale = _final_rms(cut, one) / _final_rms(model, one)  # the realised rms moves with the ablation
            assert after.heads[layer][h] == 0.0
            assert after.embed * scale == pytest.approx(dec.embed, rel=1e-5)
            for other in range(3):
                if other != h:
                    assert after.heads[layer][other] * scale == pytest.approx(
                        dec.heads[layer][other], rel=1e-4
                    )
                if layer == 1:
                    assert after.heads[0][other] * scale == pytest.approx(dec.heads[0][other], rel=1e-4)


def test_ablating_a_last_layer_head_drops_the_gap_by_exactly_its_attribution(vocab, prompts):
    """Last layer, last MLP silenced: x_final loses exactly W_O,h y_h, so rms * gap drops by rms * attribution.

    Per prompt (a one-prompt set), since the attribution divides by that prompt's realised rms.
    """
    model = random_gpt(vocab, seed=6, n_layer=2, n_head=2)
    with torch.no_grad():
        model.blocks[-1].mlp.down.weight.zero_()
    for i in range(3):
        one = _one_prompt(prompts, i)
        idx, last = one.cm_batch()
        eps = torch.finfo(torch.float32).eps
        before, after = (
            trace(model, idx, read=last),
            trace(model, idx, Intervention(ablate=frozenset({(1, 0)})), last),
        )
        rms_b = float((before.final[0, last[0]].double().pow(2).mean() + eps).sqrt())
        rms_a = float((after.final[0, last[0]].double().pow(2).mean() + eps).sqrt())
        gap_b = decompose_gap(model, one)
        gap_a = float(after.logits_raw[0, one.rule_id] - after.logits_raw[0, one.prior_id])
        assert rms_a * gap_a == pytest.approx(rms_b * (gap_b.gap - gap_b.heads[1][0]), abs=1e-4)
        assert abs(gap_b.heads[1][0]) > 1e-3


def _reference_ov(model: GPT, cue_ids, rule_id, prior_id) -> np.ndarray:  # noqa: ANN001
    """Attention.forward itself on a one-token input (softmax over one key = 1, so y = v), one head at a time."""
    cfg = model.config
    out = np.zeros((cfg.n_layer, cfg.n_head))
    dw = (model.lm_head.weight[rule_id] - model.lm_head.weight[prior_id]).double()
    with torch.no_grad():
        for layer, block in enumerate(model.blocks):
            for h in range(cfg.n_head):
                attn = copy.deepcopy(block.attn)
                keep = torch.zeros_like(attn.wo.weight)
                keep[:, h * cfg.head_dim : (h + 1) * cfg.head_dim] = 1
                attn.wo.weight.mul_(keep)
                outs = []
                for c in cue_ids:
                    idx = torch.tensor([[c]])
                    x = torch.nn.functional.rms_norm(model.wte(idx), (cfg.n_embd,))
                    ve = model.value_embeds[str(layer)](idx) if str(layer) in model.value_embeds else None
                    outs.append(attn(x, ve, model.cos[:, :1], model.sin[:, :1])[0, 0].double())
                ov = torch.stack(outs).mean(0)
                out[layer, h] = float(ov @ dw / (ov.norm() * dw.norm()))
    return out


def test_ov_cosine_matches_the_attention_module_on_single_cue_tokens(model, prompts):
    assert len(prompts.cue_ids) > 10
    got = ov_cosines(model, prompts.cue_ids, prompts.rule_id, prompts.prior_id)
    ref = _reference_ov(model, prompts.cue_ids, prompts.rule_id, prompts.prior_id)
    assert np.allclose(got, ref, atol=1e-5)
    assert head_report(model, prompts).n_cue_tokens == len(prompts.cue_ids)


def test_undefined_values_are_nan(prompts, vocab):
    torch.manual_seed(0)
    fresh = GPT(ModelConfig(vocab_size=vocab, n_layer=2, n_head=2, n_embd=32, context=32)).eval()
    rep = head_report(fresh, prompts)
    assert np.isnan(rep.share).all() and np.isnan(rep.ov_cos).all()  # no attribution, W_O and head zero
    assert (rep.ablation_dcm == 0).all() and rep.cm == 0.0
    assert np.isnan(ov_cosines(random_gpt(vocab), [], prompts.rule_id, prompts.prior_id)).all()


def test_rows_use_the_store_vocabulary(model, prompts):
    rows = head_report(model, prompts).rows("r", 3, "rule", "sha")
    assert len(rows) == 2 * 3 * 4
    assert {r["instrument"] for r in rows} == {"heads"}
    assert {r["component"] for r in rows} == {f"L{l}H{h}" for l in range(2) for h in range(3)}  # noqa: E741
    assert {r["metric"] for r in rows} == {"attribution", "share", "ablation_dcm", "ov_cos"}
    assert not any(math.isnan(r["value"]) for r in rows)
