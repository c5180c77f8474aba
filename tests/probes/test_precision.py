"""bf16 scoring (`precision="bf16"`: autocast matmuls, fp32 weights and log-softmax) against fp32.

A tiny GPT trained for a few hundred steps on a small storyworld corpus is scored on the
built-in battery both ways. bf16 moves per-item margins (measured: largest 0.57 nats on
this model, 2.1 nats on a 300-step demo model, always on items with margins of several
nats), so the test pins what a verdict reads instead: per-item right/wrong and the group
accuracies agree except on items within NEAR_TIE of a tie in fp32, and no margin moves
by more than MARGIN_BOUND.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from ungrok.errors import UngrokError
from ungrok.probes.battery import Battery, build_battery
from ungrok.probes.margins import MarginPlan, margin_rules
from ungrok.probes.models import GPTLogits, HFLogits, TokenizerFile, load_hf, resolve_precision
from ungrok.probes.score import BatteryPlan, BatteryScores

from .conftest import HUB_REVISIONS

# Measured on this fixture (AMD EPYC, avx512_bf16): largest |margin difference| 0.57 nats (mean
# 0.04), 5 of 3,156 items flip, all at |fp32 margin| <= 0.006; largest CM difference 0.006 nats.
# (A 300-step demo model: 2.1 nats, flips at <= 0.071, CM 0.09.) Headroom for other CPUs' kernels.
MARGIN_BOUND = 1.0  # nats, any item
NEAR_TIE = 0.1  # nats: items this close to a tie in fp32 may change side under bf16
CM_BOUND = 0.25  # nats, a rule's contrast margin (a mean over its prompts)


@dataclass
class Trained:
    model: torch.nn.Module
    battery: Battery
    plan: BatteryPlan
    tokenizer: TokenizerFile


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A tiny GPT after 300 steps on a 200k-token storyworld (seconds on one thread)."""
    from ungrok.corpus.shards import Corpus
    from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld
    from ungrok.model import load_checkpoint
    from ungrok.probes.models import run_checkpoints
    from ungrok.train.config import parse_config
    from ungrok.train.loop import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("bf16")
        build_storyworld(root / "sw", StoryworldConfig(tokens=200_000, seed=0))
        cfg = parse_config({
            "model": {"preset": "tiny"}, "sampler": {"context": 64, "batch_size": 16, "steps": 300},
            "checkpoints": {"rules": [{"start": 300, "every": 300}]}, "seed": 7,
        })
        train(cfg, root / "sw", root / "run", progress=False, device="cpu")
        model = load_checkpoint(run_checkpoints(root / "run")[-1], device="cpu").model
        tok = TokenizerFile.load(Corpus(root / "sw").tokenizer_path)
        battery = build_battery()
        return Trained(model, battery, BatteryPlan(battery, tok), tok)
    finally:
        torch.set_num_threads(threads)


def near_tie_flips(fp32: BatteryScores, bf16: BatteryScores) -> tuple[np.ndarray, np.ndarray]:
    """(items whose right/wrong differs, items within NEAR_TIE of a tie in fp32)."""
    return fp32.correct != bf16.correct, np.abs(np.nan_to_num(fp32.margin)) <= NEAR_TIE


def test_bf16_agrees_with_fp32_on_a_trained_model(trained: Trained) -> None:
    fp32 = trained.plan.score(GPTLogits(trained.model))
    bf16 = trained.plan.score(GPTLogits(trained.model, "bf16"))
    assert fp32.n_skipped == bf16.n_skipped < len(trained.battery) // 2
    kept = ~fp32.skipped
    diff = np.abs(fp32.margin - bf16.margin)[kept]
    assert 0 < diff.max() < MARGIN_BOUND, f"largest margin difference {diff.max():.3f} nats"
    flipped, tie = near_tie_flips(fp32, bf16)
    assert not (flipped & ~tie).any(), np.abs(fp32.margin[flipped]).max()
    near = {k: 0 for k in map(trained.battery.group_key, range(len(trained.battery)))}
    for i in np.flatnonzero(tie & kept):
        near[trained.battery.group_key(i)] += 1
    for a, b in zip(fp32.groups(), bf16.groups(), strict=True):
        key = (a.family, a.condition, a.split)
        assert key == (b.family, b.condition, b.split) and a.n_items == b.n_items
        if a.n_items:
            assert abs(a.accuracy - b.accuracy) <= near[key] / a.n_items + 1e-12, key


def test_bf16_rule_margins_stay_close(trained: Trained) -> None:
    sets = margin_rules(trained.battery.families, None)
    plan = MarginPlan(sets, trained.tokenizer)
    fp32 = plan.score(GPTLogits(trained.model))
    bf16 = plan.score(GPTLogits(trained.model, "bf16"))
    assert fp32 and [m.rule for m in fp32] == [m.rule for m in bf16]
    worst = max(abs(a.cm - b.cm) for a, b in zip(fp32, bf16, strict=True))
    assert worst < CM_BOUND, worst


def test_bf16_autocasts_the_matmuls_and_returns_fp32_logits(trained: Trained) -> None:
    seen: list[torch.dtype] = []
    handle = trained.model.lm_head.register_forward_hook(lambda _m, _a, out: seen.append(out.dtype))
    try:
        ids = torch.tensor([[1, 2, 3, 4]])
        out = GPTLogits(trained.model, "bf16").logits(ids, torch.ones_like(ids), torch.tensor([[0, 1], [0, 3]]))
        ref = GPTLogits(trained.model).logits(ids, torch.ones_like(ids), torch.tensor([[0, 1], [0, 3]]))
    finally:
        handle.remove()
    assert seen == [torch.bfloat16, torch.float32] and out.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in trained.model.parameters())  # weights untouched
    assert not torch.equal(out, ref)
    assert torch.allclose(out.log_softmax(-1), ref.log_softmax(-1), atol=MARGIN_BOUND)


def test_compiled_bf16_scoring_repeats_and_follows_eager(trained: Trained) -> None:
    """`compile=True`: bit-identical on a repeat, close to the eager bf16 scores (only near-tie items
    may change side), and one dynamic-shape graph serves a second plan (other batch shapes) and
    a second model instance (another checkpoint) without compiling again."""
    from torch._dynamo.utils import counters

    eager = trained.plan.score(GPTLogits(trained.model, "bf16"))
    adapter = GPTLogits(trained.model, "bf16", compile=True)
    before = counters["stats"]["unique_graphs"]
    a, b = trained.plan.score(adapter), trained.plan.score(adapter)
    assert counters["stats"]["unique_graphs"] > before  # it did compile
    np.testing.assert_array_equal(a.logp_correct, b.logp_correct)
    np.testing.assert_array_equal(a.logp_distractor, b.logp_distractor)
    kept = ~eager.skipped
    assert np.abs(a.margin - eager.margin)[kept].max() < MARGIN_BOUND
    flipped, tie = near_tie_flips(eager, a)
    assert not (flipped & ~tie).any()

    graphs = counters["stats"]["unique_graphs"]
    other = copy.deepcopy(trained.model)
    with torch.no_grad():
        other.lm_head.weight.mul_(0.5)
    margins = MarginPlan(margin_rules(trained.battery.families, None), trained.tokenizer)
    compiled_cms = [m.cm for m in margins.score(GPTLogits(other, "bf16", compile=True))]
    eager_cms = [m.cm for m in margins.score(GPTLogits(other, "bf16"))]
    assert counters["stats"]["unique_graphs"] == graphs
    np.testing.assert_allclose(compiled_cms, eager_cms, atol=CM_BOUND, rtol=0)


def test_bf16_hub_model_on_the_cpu(offline_hub, battery: Battery) -> None:
    from ungrok.probes.score import score_battery

    for name in ("org/tiny-neox", "org/tiny-gpt2"):
        a32, tok = load_hf(name, HUB_REVISIONS[0], device="cpu")
        a16, _ = load_hf(name, HUB_REVISIONS[0], device="cpu", precision="bf16")
        assert isinstance(a16, HFLogits) and a16.precision == "bf16"
        assert next(a16.model.parameters()).dtype == torch.float32
        s32, s16 = score_battery(a32, tok, battery), score_battery(a16, tok, battery)
        assert not np.array_equal(s32.logp_correct, s16.logp_correct)
        np.testing.assert_allclose(s16.margin, s32.margin, atol=0.1, rtol=0)


def test_compiled_hub_model_repeats_and_follows_eager(offline_hub, battery: Battery) -> None:
    from ungrok.probes.score import score_battery

    eager, tok = load_hf("org/tiny-neox", HUB_REVISIONS[0], device="cpu", precision="bf16")
    fast, _ = load_hf("org/tiny-neox", HUB_REVISIONS[0], device="cpu", precision="bf16", compile=True)
    assert fast.forward is not fast.model  # the compiled wrapper runs, the module stays the module
    a, b = score_battery(fast, tok, battery), score_battery(fast, tok, battery)
    np.testing.assert_array_equal(a.logp_correct, b.logp_correct)
    np.testing.assert_allclose(a.margin, score_battery(eager, tok, battery).margin, atol=0.1, rtol=0)


def test_precision_names() -> None:
    assert resolve_precision("bf16") == "bf16"
    with pytest.raises(UngrokError, match="--precision must be one of fp32, bf16"):
        resolve_precision("bfloat16")
    with pytest.raises(UngrokError, match="--precision"):
        GPTLogits(torch.nn.Linear(1, 1), "fp16")  # checked before the model is read
