"""GPT-NeoX decomposition by hooks, on tiny random models built here (parallel and sequential residual)."""

from __future__ import annotations

import pytest
import torch

from ungrok.errors import UngrokError
from ungrok.mech.neox import decompose_neox
from ungrok.mech.prompts import pad


def _neox(vocab: int, parallel: bool, bias: bool = True, seed: int = 0):  # noqa: ANN202
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, use_parallel_residual=parallel,
                        attention_bias=bias)
    model = GPTNeoXForCausalLM(cfg).eval()
    with torch.no_grad():  # every weight, bias and LayerNorm gain/bias random and non-trivial
        for _, p in model.named_parameters():
            p.normal_(0.0, 0.3)
    return model


def _model_gap(model, prompts) -> torch.Tensor:  # noqa: ANN001
    idx, last = pad(prompts.cm_ids)
    mask = (torch.arange(idx.shape[1])[None] <= last[:, None]).long()
    with torch.no_grad():
        logits = model(input_ids=idx, attention_mask=mask).logits[torch.arange(idx.shape[0]), last].double()
    return logits[:, prompts.rule_id] - logits[:, prompts.prior_id]


@pytest.mark.parametrize("parallel", [True, False])
def test_parts_reconstruct_the_models_own_gap(prompts, vocab, parallel):
    model = _neox(vocab, parallel)
    dec = decompose_neox(model, prompts)
    gap = _model_gap(model, prompts)
    assert float(gap.abs().mean()) > 0.1
    assert dec.gap == pytest.approx(float(gap.mean()), abs=1e-5)
    assert dec.embed + dec.ctx + dec.bias == pytest.approx(dec.gap, abs=1e-5)
    assert dec.error < 1e-4
    for layer in range(2):
        assert sum(dec.heads[layer]) == pytest.approx(dec.attn[layer], abs=1e-9)
    rows = dec.rows("EleutherAI/pythia-70m", 1000, "rule", "sha")
    assert "bias" in {r["component"] for r in rows} and len(rows) == 1 + 2 * (1 + 4 + 1) + 1 + 3


def test_without_biases_the_bias_term_is_the_final_layernorms(prompts, vocab):
    model = _neox(vocab, parallel=True, bias=False, seed=1)
    with torch.no_grad():
        for layer in model.gpt_neox.layers:
            layer.mlp.dense_4h_to_h.bias.zero_()
    dec = decompose_neox(model, prompts)
    head = model.get_output_embeddings().weight.detach().double()
    ln_bias = float(
        model.gpt_neox.final_layer_norm.bias.detach().double()
        @ (head[prompts.rule_id] - head[prompts.prior_id])
    )
    assert dec.bias == pytest.approx(ln_bias, abs=1e-9)
    assert dec.embed + dec.ctx + dec.bias == pytest.approx(float(_model_gap(model, prompts).mean()), abs=1e-5)


def test_wrong_models_are_errors(prompts, vocab):
    from transformers import GPT2Config, GPT2LMHeadModel

    with pytest.raises(UngrokError, match="not a GPT-NeoX"):
        decompose_neox(GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=16, n_layer=1, n_head=2)), prompts)
    with pytest.raises(UngrokError, match="float32"):
        decompose_neox(_neox(vocab, True).to(torch.bfloat16), prompts)
