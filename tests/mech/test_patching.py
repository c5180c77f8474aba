"""Activation patching: identity patches, full recovery, and a last-layer head patch derived by hand."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from ungrok.errors import UngrokError
from ungrok.mech.patching import component_names, patch_components, recovery_fraction
from ungrok.mech.trace import contrast_margin, trace

from .conftest import random_gpt


@pytest.fixture(scope="module")
def src(vocab):
    return random_gpt(vocab, seed=7, n_layer=2, n_head=2)


@pytest.fixture(scope="module")
def dst(src):
    """src with everything upstream of W_O and the unembedding changed (W_O and lm_head shared)."""
    out = copy.deepcopy(src)
    torch.manual_seed(8)
    with torch.no_grad():
        for name, p in out.named_parameters():
            if not (name == "lm_head.weight" or name.endswith(".wo.weight")):
                p.add_(0.3 * torch.randn_like(p) * p.std())
    return out


def test_patching_a_checkpoint_onto_itself_changes_nothing(src, prompts):
    res = patch_components(src, copy.deepcopy(src), prompts, "peak_to_final")
    assert res.cm_src == res.cm_dst
    assert all(v == res.cm_dst for v in res.cm_patch.values())
    assert all(math.isnan(v) for v in res.recovery.values())  # nothing to recover


def test_patching_every_component_recovers_one(src, dst, prompts):
    res = patch_components(src, dst, prompts, "final_to_peak")
    assert abs(res.cm_src - res.cm_dst) > 0.05
    assert res.cm_patch["all"] == pytest.approx(res.cm_src, abs=1e-5)
    assert res.recovery["all"] == pytest.approx(1.0, abs=1e-4)
    assert list(res.recovery) == [*component_names(src.config), "all"]
    assert len(res.recovery) == 1 + 2 * 2 + 2 + 1


def test_a_last_layer_head_patch_equals_the_hand_derived_margin(src, dst, prompts):
    """dst's forward up to its last attention, head h's pre-W_O output swapped for src's, then the modules."""
    cfg = dst.config
    idx, last = prompts.cm_batch()
    t_src, t_dst = trace(src, idx), trace(dst, idx)
    layer, h = cfg.n_layer - 1, 1
    y = t_dst.heads[layer].clone()
    y[:, :, h] = t_src.heads[layer][:, :, h]
    block = dst.blocks[layer]
    with torch.no_grad():
        x = t_dst.resid[layer - 1] + block.attn.wo(y.reshape(*idx.shape, -1))
        x = x + block.mlp(F.rms_norm(x, (cfg.n_embd,)))
        raw = dst.lm_head(F.rms_norm(x, (cfg.n_embd,)))[torch.arange(idx.shape[0]), last]
    lp = torch.log_softmax(cfg.softcap * torch.tanh(raw / cfg.softcap), -1)
    expected = float((lp[:, prompts.rule_id] - lp[:, prompts.prior_id]).double().mean())
    res = patch_components(src, dst, prompts, "peak_to_final")
    assert res.cm_patch[f"L{layer}H{h}"] == pytest.approx(expected, abs=1e-5)
    assert res.cm_dst == pytest.approx(contrast_margin(dst, prompts)) and expected != pytest.approx(
        res.cm_dst
    )


def test_recovery_fraction():
    assert recovery_fraction(1.5, 2.0, 1.0) == 0.5
    assert recovery_fraction(0.0, 2.0, 1.0) == -1.0
    assert math.isnan(recovery_fraction(1.0, 1.0 + 1e-9, 1.0))


def test_rows_carry_the_direction_label(src, dst, prompts):
    rows = patch_components(src, dst, prompts, "final_to_peak").rows("r", 500, "rule", "sha")
    assert {r["metric"] for r in rows} == {"recovery_final_to_peak"}
    assert [r["component"] for r in rows] == [
        "embed",
        "L0H0",
        "L0H1",
        "mlp:L0",
        "L1H0",
        "L1H1",
        "mlp:L1",
        "all",
    ]
    assert {r["instrument"] for r in rows} == {"patch"} and {r["step"] for r in rows} == {500}


def test_bad_label_or_shapes_are_errors(src, prompts, vocab):
    with pytest.raises(UngrokError, match="patch label"):
        patch_components(src, src, prompts, "sideways")
    with pytest.raises(UngrokError, match="different shapes"):
        patch_components(src, random_gpt(vocab, n_layer=3), prompts, "peak_to_final")
