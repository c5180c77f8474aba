"""Direction removal: its three effects against the same projection done by a hook on GPT.forward."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ungrok.errors import UngrokError
from ungrok.mech.direction import (
    bits_per_byte,
    bytes_per_token,
    class_directions,
    direction_specificity,
    first_windows,
)
from ungrok.model import GPT, ModelConfig
from ungrok.probes.margins import MarginPlan, margin_prompt_set
from ungrok.probes.models import GPTLogits
from ungrok.probes.score import BatteryPlan
from ungrok.rules.registry import get_rule

from .conftest import RULE, random_gpt


@pytest.fixture(scope="module")
def model(vocab):
    return random_gpt(vocab, seed=9, n_layer=2, n_head=2)


@pytest.fixture(scope="module")
def windows(vocab):
    g = torch.Generator().manual_seed(0)
    return first_windows(torch.randint(2, vocab, (16 * 33 + 5,), generator=g).numpy(), length=33)


def test_first_windows_are_consecutive_and_too_short_streams_are_errors():
    w = first_windows(np.arange(100), length=6, n=3)
    assert w.tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11], [12, 13, 14, 15, 16, 17]]
    with pytest.raises(UngrokError, match="fewer than 16 windows"):
        first_windows(np.arange(100), length=7)


def test_bytes_per_token_counts_utf8_bytes_of_the_predicted_tokens():
    w = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert bytes_per_token(w, lambda ids: "é" * len(ids)) == 2.0  # é is 2 bytes in UTF-8
    with pytest.raises(UngrokError, match="no text"):
        bytes_per_token(w, lambda ids: "")


def test_bits_per_byte_matches_the_models_own_loss(model, windows):
    with torch.no_grad():
        _, loss = model(windows[:, :-1], windows[:, 1:])  # mean CE over every predicted token
    expected = float(loss) / math.log(2) / 3.0
    assert bits_per_byte(model, windows, 3.0) == pytest.approx(expected, rel=1e-5)


def test_directions_are_the_class_mean_differences(model, prompts):
    dirs = class_directions(model, prompts)
    assert len(dirs) == 2
    idx, last = prompts.class_batch()
    for k, d in enumerate(dirs, 1):
        seen = {}
        handle = model.blocks[k - 1].register_forward_hook(
            lambda _m, _a, out, seen=seen: seen.setdefault("x", out)
        )
        try:
            with torch.no_grad():
                model(idx)
        finally:
            handle.remove()
        feats = F.rms_norm(seen["x"][torch.arange(idx.shape[0]), last], (model.config.n_embd,))
        cue = [i for i, c in enumerate(prompts.class_labels) if c == "cue"]
        ctl = [i for i, c in enumerate(prompts.class_labels) if c == "control"]
        assert torch.allclose(d, feats[cue].mean(0) - feats[ctl].mean(0), atol=1e-6)


def _projected(model: GPT, k: int, u: torch.Tensor):  # noqa: ANN202
    def hook(_m, _a, out):  # noqa: ANN001, ANN202
        return out - (out @ u).unsqueeze(-1) * u

    return model.blocks[k - 1].register_forward_hook(hook)


def test_effects_match_a_hooked_reference(model, prompts, windows, tokenizer):
    res = direction_specificity(model, prompts, windows, 3.0)
    margins = MarginPlan([margin_prompt_set(get_rule(RULE))], tokenizer)
    other = BatteryPlan(prompts.other_battery, tokenizer)

    def measure() -> tuple[float, dict[str, float], float]:
        cm = margins.score(GPTLogits(model))[0].cm
        fams = {g.family: g.mean_margin_norm for g in other.score(GPTLogits(model)).groups()}
        with torch.no_grad():
            _, loss = model(windows[:, :-1], windows[:, 1:])
        return cm, fams, float(loss) / math.log(2) / 3.0

    cm0, fam0, bpb0 = measure()
    assert res.cm == pytest.approx(cm0, abs=1e-5) and res.bpb == pytest.approx(bpb0, rel=1e-5)
    for k, d in enumerate(class_directions(model, prompts), 1):
        handle = _projected(model, k, d / d.norm())
        try:
            cm1, fam1, bpb1 = measure()
        finally:
            handle.remove()
        assert res.d_norm[k - 1] == pytest.approx(float(d.norm()), rel=1e-6)
        assert res.dcm[k - 1] == pytest.approx(cm1 - cm0, abs=1e-5)
        assert res.other_abs_delta[k - 1] == pytest.approx(
            np.mean([abs(fam1[f] - fam0[f]) for f in fam0]), abs=1e-5
        )
        assert res.dbpb[k - 1] == pytest.approx(bpb1 - bpb0, abs=1e-5)
        assert abs(res.dcm[k - 1]) > 1e-4  # the projection does something
    rows = res.rows("r", 800, "rule", "sha")
    assert [(r["component"], r["metric"]) for r in rows] == [
        (f"block{k}", m) for k in (1, 2) for m in ("dcm", "other_abs_delta", "dbpb")
    ]
    assert {r["instrument"] for r in rows} == {"direction"}


def test_no_class_difference_means_no_direction(prompts, vocab, windows):
    torch.manual_seed(0)
    fresh = GPT(ModelConfig(vocab_size=vocab, n_layer=2, n_head=2, n_embd=32, context=32)).eval()
    res = direction_specificity(fresh, prompts, windows, 3.0)
    assert res.d_norm == (0.0, 0.0)
    assert all(math.isnan(v) for v in res.dcm + res.other_abs_delta + res.dbpb)
