"""Shared helpers: random GPTs with every weight non-zero, a small real battery and its word tokenizer."""

from __future__ import annotations

import math

import pytest
import torch

from ungrok.corpus.tokenizer import build_word_tokenizer
from ungrok.mech.prompts import MechPrompts, build_prompts
from ungrok.model import GPT, ModelConfig
from ungrok.probes.battery import Battery, build_battery
from ungrok.probes.margins import margin_prompt_set
from ungrok.probes.models import TokenizerFile
from ungrok.rules.registry import get_rule

RULE = "pronoun_gender_ref"
FAMILIES = (RULE, "pronoun_gender_ref_v2", "plural_was_were", "comparative_er")


def random_gpt(vocab: int, seed: int = 0, n_layer: int = 3, n_head: int = 2, n_embd: int = 32) -> GPT:
    """GPT init, then the zero-init layers (wo, down, lm_head) and the value-embedding mix randomised."""
    torch.manual_seed(seed)
    model = GPT(ModelConfig(vocab_size=vocab, n_layer=n_layer, n_head=n_head, n_embd=n_embd, context=32))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "lm_head.weight" or name.endswith((".wo.weight", ".down.weight")):
                p.normal_(0.0, 2.0 / math.sqrt(p.shape[1]))
            elif name.endswith("ve_lambda"):
                p.uniform_(0.2, 1.0)
    return model.eval()


def battery_texts(b: Battery) -> list[str]:
    return [s for it in b.items for s in (it["prefix"], it["correct"], it["distractor"])]


@pytest.fixture(scope="session")
def battery() -> Battery:
    return build_battery(list(FAMILIES))


@pytest.fixture(scope="session")
def tokenizer(battery: Battery) -> TokenizerFile:
    margin = margin_prompt_set(get_rule(RULE))
    texts = battery_texts(battery) + list(margin.neutral_prompts)
    words = sorted({w for t in texts for w in t.split()})
    return TokenizerFile(build_word_tokenizer(words, punctuation=["'s"]))


@pytest.fixture(scope="session")
def prompts(battery: Battery, tokenizer: TokenizerFile) -> MechPrompts:
    return build_prompts(RULE, battery, tokenizer)


@pytest.fixture(scope="session")
def vocab(tokenizer: TokenizerFile) -> int:
    return tokenizer.vocab_size
