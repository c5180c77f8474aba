"""CM / PM at a checkpoint against a hand computation from the model's logits."""

from __future__ import annotations

import pytest
import torch

from ungrok.errors import UngrokError
from ungrok.probes.margins import MarginPlan, MarginPrompts, margin_prompt_set, margin_rules
from ungrok.probes.models import GPTLogits
from ungrok.rules import get_rule

from .conftest import tiny_gpt, word_tokenizer


def _last_logprobs(model, tok, prompt: str) -> torch.Tensor:  # noqa: ANN001
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([tok.encode(prompt)]))[0, -1], dim=-1)


@pytest.fixture
def focal() -> MarginPrompts:
    return margin_prompt_set(get_rule("pronoun_gender_ref"))


def test_focal_prompt_set_is_the_papers(focal):
    assert (focal.rule_target, focal.prior_target) == (" she", " he")
    assert len(focal.cm_prompts) == 12 and len(focal.neutral_prompts) == 32
    assert "Lily laughed when" in focal.cm_prompts and "The farmer cried because" in focal.neutral_prompts


def test_cm_and_pm_equal_the_hand_computation(focal):
    tok = word_tokenizer(list(focal.cm_prompts + focal.neutral_prompts) + [" she he"])
    model = tiny_gpt(tok.vocab_size, seed=3)
    (m,) = MarginPlan([focal], tok).score(GPTLogits(model))
    she, he = tok.encode(" she")[0], tok.encode(" he")[0]
    cm = [float(lp[she] - lp[he]) for lp in (_last_logprobs(model, tok, x) for x in focal.cm_prompts)]
    pm = [float(lp[he] - lp[she]) for lp in (_last_logprobs(model, tok, x) for x in focal.neutral_prompts)]
    assert m.rule == "pronoun_gender_ref" and (m.n_cm, m.n_pm) == (12, 32)
    assert m.cm == pytest.approx(sum(cm) / 12, abs=1e-5)
    assert m.pm == pytest.approx(sum(pm) / 32, abs=1e-5)
    assert m.prompts_sha256 == focal.sha256


def test_multi_token_targets_sum_their_tokens():
    ps = MarginPrompts("r", " an egg", " a egg", ("Lily ate", "Tom saw"), ("The child had",))
    tok = word_tokenizer(["Lily ate Tom saw The child had an a egg"])
    model = tiny_gpt(tok.vocab_size, seed=4)

    def logp(prompt: str, target: str) -> float:
        p, t = tok.encode(prompt), tok.encode(target)
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([p + t]))[0], dim=-1)
        return sum(float(lp[len(p) - 1 + j, x]) for j, x in enumerate(t))

    (m,) = MarginPlan([ps], tok).score(GPTLogits(model))
    cm = [logp(x, " an egg") - logp(x, " a egg") for x in ps.cm_prompts]
    assert m.cm == pytest.approx(sum(cm) / 2, abs=1e-5)
    assert m.pm == pytest.approx(logp("The child had", " a egg") - logp("The child had", " an egg"), abs=1e-5)


def test_untrained_model_has_zero_margins(focal):
    tok = word_tokenizer(list(focal.cm_prompts + focal.neutral_prompts) + [" she he"])
    (m,) = MarginPlan([focal], tok).score(GPTLogits(tiny_gpt(tok.vocab_size, random_head=False)))
    assert m.cm == 0.0 and m.pm == 0.0


def test_no_neutral_prompts_gives_no_pm_and_unencodable_prompts_are_errors():
    tok = word_tokenizer(["Lily ate an a egg"])
    (m,) = MarginPlan([MarginPrompts("r", " an", " a", ("Lily ate",), ())], tok).score(
        GPTLogits(tiny_gpt(tok.vocab_size))
    )
    assert m.pm is None and m.n_pm == 0
    with pytest.raises(UngrokError, match="rule 'r': margin prompt 'Bob ate'"):
        MarginPlan([MarginPrompts("r", " an", " a", ("Bob ate",), ())], tok)


def test_default_margin_rules_are_battery_families_with_a_margin():
    got = margin_rules(["det_an_choice", "pronoun_gender_ref", "not_a_rule"], None)
    assert [p.rule for p in got] == ["pronoun_gender_ref"]
    with pytest.raises(UngrokError, match="declares no margin"):
        margin_rules([], ["det_an_choice"])
