"""The logit-gap decomposition reconstructs the model's own pre-softcap gap."""

from __future__ import annotations

import math

import pytest
import torch

from ungrok.errors import UngrokError
from ungrok.mech.decompose import decompose_gap
from ungrok.mech.prompts import pad
from ungrok.model import GPT, ModelConfig

from .conftest import random_gpt


@torch.no_grad()
def _pre_softcap_gap(model, prompts) -> float:  # noqa: ANN001
    """The model's own mean gap, read off lm_head's output inside GPT.forward by a hook."""
    seen = {}
    handle = model.lm_head.register_forward_hook(lambda _m, _a, out: seen.setdefault("raw", out))
    idx, last = pad(prompts.cm_ids)
    try:
        model(idx)
    finally:
        handle.remove()
    raw = seen["raw"][torch.arange(idx.shape[0]), last].double()
    return float((raw[:, prompts.rule_id] - raw[:, prompts.prior_id]).mean())


@pytest.mark.parametrize(("seed", "n_layer", "n_head"), [(0, 3, 2), (1, 2, 4), (2, 1, 1)])
def test_parts_reconstruct_the_models_own_gap_on_random_models(prompts, vocab, seed, n_layer, n_head):
    model = random_gpt(vocab, seed=seed, n_layer=n_layer, n_head=n_head)
    dec = decompose_gap(model, prompts)
    gap = _pre_softcap_gap(model, prompts)
    assert abs(gap) > 0.1  # a random model has a real gap to explain
    assert dec.gap == pytest.approx(gap, abs=1e-5)
    assert dec.embed + dec.ctx == pytest.approx(gap, abs=1e-4)
    assert dec.error < 1e-4
    for layer in range(n_layer):
        assert sum(dec.heads[layer]) == pytest.approx(dec.attn[layer], abs=1e-5)
    assert dec.n_prompts == len(prompts.cm_prompts)


def test_embedding_term_is_the_direct_path(prompts, vocab):
    """With every block silenced (wo and down zero) the embedding stream is all there is."""
    model = random_gpt(vocab, seed=4)
    with torch.no_grad():
        for b in model.blocks:
            b.attn.wo.weight.zero_()
            b.mlp.down.weight.zero_()
    dec = decompose_gap(model, prompts)
    assert dec.ctx == 0.0
    assert dec.embed == pytest.approx(_pre_softcap_gap(model, prompts), abs=1e-5)


def test_untrained_model_decomposes_to_zero(prompts, vocab):
    torch.manual_seed(0)
    dec = decompose_gap(
        GPT(ModelConfig(vocab_size=vocab, n_layer=2, n_head=2, n_embd=32, context=32)), prompts
    )
    assert dec.gap == 0.0 and dec.embed == 0.0 and dec.ctx == 0.0 and dec.error == 0.0


def test_an_unmet_tolerance_raises(prompts, vocab):
    with pytest.raises(UngrokError, match="misses its own gap"):
        decompose_gap(random_gpt(vocab, seed=0), prompts, tol=1e-12)


def test_rows_use_the_store_vocabulary(prompts, vocab):
    dec = decompose_gap(random_gpt(vocab, seed=0, n_layer=2, n_head=2), prompts)
    rows = dec.rows("r", 100, "rule", "sha")
    comps = [r["component"] for r in rows]
    assert comps == ["embed", "attn:L0", "attn:L0H0", "attn:L0H1", "mlp:L0",
                     "attn:L1", "attn:L1H0", "attn:L1H1", "mlp:L1", "ctx", "gap", "error"]
    assert {r["instrument"] for r in rows} == {"decomp"} and {r["metric"] for r in rows} == {"nats"}
    assert all(r["step"] == 100 and r["prompts_sha256"] == "sha" and r["run"] == "r" for r in rows)
    by = {r["component"]: r["value"] for r in rows}
    assert by["gap"] == dec.gap and by["ctx"] == dec.ctx and not math.isnan(by["error"])
