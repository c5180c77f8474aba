"""Cross-frame nearest-class-mean decodability: hand cases, chance at no signal, a slow reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ungrok.mech.decode import cue_decodability, nearest_mean_accuracy
from ungrok.model import GPT, ModelConfig

from .conftest import random_gpt

LABELS = ["cue", "cue", "control", "control"] * 2
FRAMES = ["a"] * 4 + ["b"] * 4


def test_separable_classes_score_one_and_swapped_frames_score_zero():
    sep = np.array([[1.0, 0], [1.1, 0], [-1, 0], [-1.2, 0]] * 2)
    assert nearest_mean_accuracy(sep, LABELS, FRAMES) == 1.0
    swapped = sep.copy()
    swapped[4:] *= -1  # frame b codes the classes the other way round
    assert nearest_mean_accuracy(swapped, LABELS, FRAMES) == 0.0


def test_no_signal_scores_exactly_one_half():
    same = np.ones((8, 3))
    assert nearest_mean_accuracy(same, LABELS, FRAMES) == 0.5


def test_one_wrong_prediction_in_eight():
    x = np.array([[1.0], [1.0], [-1], [-1], [1], [1], [-1], [0.5]])
    # frame b tested on frame a's means (+1 cue, -1 control): its last control point is nearer +1
    assert nearest_mean_accuracy(x, LABELS, FRAMES) == 7 / 8


def test_frames_without_every_class_elsewhere_are_not_tested():
    x = np.array([[1.0], [-1.0], [-0.9]])
    # frame a cannot be tested (frame b has no control prompt); frame b's cue lands nearer control
    assert nearest_mean_accuracy(x, ["cue", "control", "cue"], ["a", "a", "b"]) == 0.0
    assert math.isnan(
        nearest_mean_accuracy(x[:2], ["cue", "control"], ["a", "a"])
    )  # one frame: nothing to fit on


def test_untrained_model_is_at_chance_after_every_block(prompts, vocab):
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=vocab, n_layer=2, n_head=2, n_embd=32, context=32)).eval()
    assert cue_decodability(model, prompts).accuracy == (0.5, 0.5)


@torch.no_grad()
def _reference_accuracy(model, prompts, block: int) -> float:  # noqa: ANN001
    """One prompt at a time through GPT.forward, the residual caught by a hook, means by hand."""
    feats = []
    for ids in prompts.class_ids:
        seen = {}
        handle = model.blocks[block - 1].register_forward_hook(
            lambda _m, _a, out, seen=seen: seen.setdefault("x", out)
        )
        try:
            model(torch.tensor([ids]))
        finally:
            handle.remove()
        x = seen["x"][0, -1]
        feats.append(F.rms_norm(x, (x.numel(),)).double())
    right, n = 0.0, 0
    for f in set(prompts.class_frames):
        fit = [i for i, g in enumerate(prompts.class_frames) if g != f]
        means = {
            c: torch.stack([feats[i] for i in fit if prompts.class_labels[i] == c]).mean(0)
            for c in ("cue", "control")
        }
        for i, g in enumerate(prompts.class_frames):
            if g == f:
                d = {c: float(((feats[i] - m) ** 2).sum()) for c, m in means.items()}
                other = "control" if prompts.class_labels[i] == "cue" else "cue"
                right += 1.0 if d[prompts.class_labels[i]] < d[other] else 0.0  # no ties in a random model
                n += 1
    return right / n


def test_matches_a_one_prompt_at_a_time_reference(prompts, vocab):
    model = random_gpt(vocab, seed=5)
    got = cue_decodability(model, prompts)
    assert len(got.accuracy) == 3
    for k in (1, 2, 3):
        assert got.accuracy[k - 1] == pytest.approx(_reference_accuracy(model, prompts, k), abs=1e-12)
    rows = got.rows("r", 7, "rule", "sha")
    assert [(r["instrument"], r["component"], r["metric"]) for r in rows] == [
        ("decode", f"block{k}", "accuracy") for k in (1, 2, 3)
    ]
