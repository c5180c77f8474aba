"""The traced forward equals GPT.forward, and its interventions equal the same edits made by hooks."""

from __future__ import annotations

import pytest
import torch

from ungrok.mech.prompts import pad
from ungrok.mech.trace import Intervention, TracedLogits, cached_components, contrast_margin, trace
from ungrok.probes.margins import MarginPlan, margin_prompt_set
from ungrok.probes.models import GPTLogits
from ungrok.probes.score import BatteryPlan
from ungrok.rules.registry import get_rule

from .conftest import RULE, random_gpt


@pytest.fixture(scope="module")
def model(vocab):
    return random_gpt(vocab, seed=1)  # 3 layers: layers 0 and 2 carry value embeddings


@pytest.fixture(scope="module")
def batch(prompts):
    return pad(prompts.cm_ids + prompts.class_ids)


def test_logits_match_gpt_forward(model, batch):
    idx, _ = batch
    assert model.config.has_value_embedding(0) and not model.config.has_value_embedding(1)
    ref = model(idx)
    got = trace(model, idx).logits
    assert torch.allclose(got, ref, atol=1e-6, rtol=0)


def test_read_positions_gather_the_full_logits(model, batch):
    idx, last = batch
    full = trace(model, idx).logits
    assert torch.equal(trace(model, idx, read=last).logits, full[torch.arange(idx.shape[0]), last])
    rows = torch.arange(idx.shape[0])
    pairs = torch.stack([torch.cat([rows, rows]), torch.cat([last, torch.zeros_like(last)])], 1)
    got = trace(model, idx, read=pairs).logits  # [2B, V]: every row's last position, then its first
    assert torch.allclose(got[: len(rows)], full[rows, last], atol=1e-6)
    assert torch.allclose(got[len(rows) :], full[:, 0], atol=1e-6)


def test_residual_is_the_sum_of_its_parts_and_heads_sum_to_attention(model, batch):
    idx, _ = batch
    tr = trace(model, idx)
    total = tr.embed + sum(tr.attn) + sum(tr.mlp)
    assert torch.allclose(tr.final, total, atol=1e-5)
    cfg = model.config
    for layer, block in enumerate(model.blocks):
        wo = block.attn.wo.weight.view(cfg.n_embd, cfg.n_head, cfg.head_dim)
        by_head = torch.einsum("bthk,dhk->btd", tr.heads[layer], wo)
        assert torch.allclose(by_head, tr.attn[layer], atol=1e-5)


def test_contrast_margin_equals_the_probes_margin(model, prompts, tokenizer):
    ref = MarginPlan([margin_prompt_set(get_rule(RULE))], tokenizer).score(GPTLogits(model))[0].cm
    assert contrast_margin(model, prompts) == pytest.approx(ref, abs=1e-5)


def test_traced_adapter_scores_like_the_model_adapter(model, prompts):
    plan = BatteryPlan(prompts.other_battery, prompts.tokenizer)
    a = plan.score(TracedLogits(model)).margin
    b = plan.score(GPTLogits(model)).margin
    assert torch.allclose(torch.from_numpy(a), torch.from_numpy(b), atol=1e-5)


def _hooked_logits(model, idx, hook_module, hook):  # noqa: ANN001, ANN202
    handle = hook_module.register_forward_hook(hook) if hook is not None else None
    try:
        return model(idx)
    finally:
        if handle is not None:
            handle.remove()


def test_ablation_equals_zeroing_the_heads_wo_input_by_hook(model, batch):
    idx, _ = batch
    layer, head, hd = 1, 1, model.config.head_dim

    def zero(_m, args):  # noqa: ANN001, ANN202
        y = args[0].clone()
        y[..., head * hd : (head + 1) * hd] = 0
        return (y,)

    handle = model.blocks[layer].attn.wo.register_forward_pre_hook(zero)
    try:
        ref = model(idx)
    finally:
        handle.remove()
    got = trace(model, idx, Intervention(ablate=frozenset({(layer, head)}))).logits
    assert torch.allclose(got, ref, atol=1e-6)


def test_projection_equals_projecting_the_block_output_by_hook(model, batch):
    idx, _ = batch
    torch.manual_seed(3)
    u = torch.randn(model.config.n_embd)
    u = u / u.norm()

    def project(_m, _args, out):  # noqa: ANN001, ANN202
        return out - (out @ u).unsqueeze(-1) * u

    for k in (1, 3):
        ref = _hooked_logits(model, idx, model.blocks[k - 1], project)
        tr = trace(model, idx, Intervention(project=(k, u)))
        assert torch.allclose(tr.logits, ref, atol=1e-5)
        assert float((tr.resid[k - 1] @ u).abs().max()) < 1e-5  # nothing left along u after block k


def test_patching_own_components_changes_nothing(model, batch):
    idx, _ = batch
    tr = trace(model, idx)
    again = trace(model, idx, Intervention(patch=cached_components(tr)))
    assert torch.equal(again.logits, tr.logits)


def test_instruments_are_bit_identical_across_fresh_models(prompts, vocab):
    from ungrok.mech.decode import cue_decodability
    from ungrok.mech.heads import head_report

    def rows(model):  # noqa: ANN001, ANN202
        return head_report(model, prompts).rows("r", 1, "x", "s") + cue_decodability(model, prompts).rows(
            "r", 1, "x", "s"
        )

    a, b = rows(random_gpt(vocab, seed=11)), rows(random_gpt(vocab, seed=11))
    assert [r["value"] for r in a] == [r["value"] for r in b]
