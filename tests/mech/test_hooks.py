"""Hook sites as the instruments use them: what each holds, identity patches, and hooks that never stay."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ungrok.mech.prompts import pad
from ungrok.mech.trace import (
    EMBED,
    FINAL,
    LOGITS_RAW,
    Intervention,
    attn_site,
    heads_site,
    hooked,
    mlp_site,
    resid_site,
    trace,
)
from ungrok.model.gpt import HookPoint

from .conftest import random_gpt


@pytest.fixture(scope="module")
def model(vocab):
    return random_gpt(vocab, seed=3)  # 3 layers, value embeddings on layers 0 and 2


@pytest.fixture(scope="module")
def idx(prompts):
    return pad(prompts.cm_ids + prompts.class_ids)[0]


def _sites(model) -> list[str]:  # noqa: ANN001
    n = model.config.n_layer
    return [EMBED, FINAL, *(f(i) for i in range(n) for f in (heads_site, attn_site, mlp_site, resid_site))]


def test_the_named_sites_are_the_models_hook_points(model):
    points = {n for n, m in model.named_modules() if isinstance(m, HookPoint)}
    assert points == set(_sites(model))


@torch.no_grad()
def test_each_site_holds_what_its_neighbours_compute(model, idx):
    """Bit for bit: the embedding stream, each head's input to W_O, the attention and MLP module outputs,
    the residual after each block, and the normed state the head consumes."""
    seen: dict[str, torch.Tensor] = {}
    spy = [model.lm_head.register_forward_pre_hook(lambda _m, a: seen.setdefault("head_in", a[0]))]
    for i, b in enumerate(model.blocks):
        spy += [b.attn.wo.register_forward_pre_hook(lambda _m, a, i=i: seen.setdefault(f"wo_in{i}", a[0])),
                b.attn.register_forward_hook(lambda _m, _a, o, i=i: seen.setdefault(f"attn{i}", o)),
                b.mlp.register_forward_hook(lambda _m, _a, o, i=i: seen.setdefault(f"mlp{i}", o)),
                b.register_forward_hook(lambda _m, _a, o, i=i: seen.setdefault(f"block{i}", o))]
    try:
        with hooked(model, keep=[*_sites(model), LOGITS_RAW]) as got:
            out = model(idx)
    finally:
        for h in spy:
            h.remove()
    d = model.config.n_embd
    assert torch.equal(got[EMBED], F.rms_norm(model.wte(idx), (d,)))
    x = got[EMBED]
    for i in range(model.config.n_layer):
        assert torch.equal(got[heads_site(i)].reshape(*idx.shape, d), seen[f"wo_in{i}"])
        assert torch.equal(got[attn_site(i)], seen[f"attn{i}"])
        assert torch.equal(got[mlp_site(i)], seen[f"mlp{i}"])
        assert torch.equal(got[resid_site(i)], seen[f"block{i}"])
        x = x + got[attn_site(i)] + got[mlp_site(i)]
        assert torch.equal(got[resid_site(i)], x)  # the residual is exactly the running sum of its parts
    assert torch.equal(got[FINAL], seen["head_in"])
    assert torch.equal(got[FINAL], F.rms_norm(x, (d,)))
    cap = model.config.softcap
    assert torch.equal(out, cap * torch.tanh(got[LOGITS_RAW] / cap))


@torch.no_grad()
def test_patching_any_site_with_its_own_value_changes_no_logit_bit(model, idx):
    with hooked(model, keep=_sites(model)) as got:
        ref = model(idx)
    for site in _sites(model):
        own = got[site].clone()
        with hooked(model, {site: [lambda _x, own=own: own]}):
            assert torch.equal(model(idx), ref), site


@torch.no_grad()
def test_an_edit_moves_what_is_downstream_only(model, idx):
    """Zeroing the last MLP's output changes the logits and the last residual, not the earlier sites."""
    with hooked(model, keep=_sites(model)) as before:
        ref = model(idx)
    last = model.config.n_layer - 1
    with hooked(model, {mlp_site(last): [torch.zeros_like]}, keep=_sites(model)) as after:
        moved = model(idx)
    assert not torch.equal(moved, ref)
    assert not after[mlp_site(last)].any()  # what is kept is the edited value
    assert torch.equal(after[resid_site(last)], before[resid_site(last - 1)] + before[attn_site(last)])
    for site in (EMBED, heads_site(last), attn_site(last), resid_site(last - 1)):
        assert torch.equal(after[site], before[site]), site


def test_hooks_are_removed_even_when_the_forward_fails(model, idx):
    def hooks() -> int:
        return sum(len(m._forward_hooks) for m in model.modules())

    def boom(_x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")

    assert hooks() == 0
    with pytest.raises(RuntimeError, match="boom"), hooked(model, {EMBED: [boom]}, keep=[FINAL]):
        model(idx)
    assert hooks() == 0
    with pytest.raises(ValueError, match="no hook site 'blocks.9.hook_mlp_out'"), hooked(model, keep=[EMBED, mlp_site(9)]):
        pass
    assert hooks() == 0


def test_the_trace_is_the_models_own_forward_under_an_intervention(model, idx):
    """Ablation through the site equals zeroing the head's W_O columns, bit for bit in the trace's logits."""
    iv = Intervention(ablate=frozenset({(1, 0)}))
    hd = model.config.head_dim
    saved = model.blocks[1].attn.wo.weight.detach().clone()
    with torch.no_grad():
        model.blocks[1].attn.wo.weight[:, :hd] = 0.0
        try:
            cut = model(idx)
        finally:
            model.blocks[1].attn.wo.weight.copy_(saved)
    assert torch.allclose(trace(model, idx, iv).logits, cut, atol=1e-6)
    assert torch.equal(trace(model, idx).logits, model(idx))
