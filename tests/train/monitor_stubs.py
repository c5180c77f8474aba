"""A stand-in logits model for the live monitor's tests: its she:he log-odds after a girl's name
are set by hand, so the monitor's readings and warnings are known in advance."""

from __future__ import annotations

import torch

from ungrok.corpus.tokenizer import build_word_tokenizer
from ungrok.model.gpt import read_positions
from ungrok.probes.battery import build_battery
from ungrok.probes.margins import margin_prompt_set
from ungrok.probes.models import TokenizerFile
from ungrok.rules import get_rule


def pronoun_setup(rule: str = "pronoun_gender_ref"):  # noqa: ANN201
    """The rule's battery and margin prompts, a word tokenizer over their words, and the girls' names."""
    battery = build_battery([rule])
    margins = margin_prompt_set(get_rule(rule))
    texts = [s for it in battery.items for s in (it["prefix"], it["correct"], it["distractor"])]
    texts += list(margins.cm_prompts) + list(margins.neutral_prompts) + [" she", " he"]
    tok = build_word_tokenizer(sorted({w for t in texts for w in t.split()}))
    girls = {it["prefix"].split()[0] for it in battery.items if it["condition"] == "conflict"}
    return battery, margins, TokenizerFile(tok), tok, girls


class PronounStub:
    """After a girl's name: log-odds she:he = `bias`; otherwise he wins by 1 nat."""

    def __init__(self, tok, girls):
        self.vocab_size = tok.get_vocab_size()
        self.context = 64
        self.device = torch.device("cpu")
        self.she, self.he = tok.encode(" she").ids[0], tok.encode(" he").ids[0]
        self.girl_ids = torch.tensor(sorted({i for g in girls for i in tok.encode(g).ids}))
        self.bias = 0.0

    def logits(self, input_ids, attention_mask, positions=None):
        B, T = input_ids.shape
        out = torch.zeros(B, T, self.vocab_size)
        girl = torch.isin(input_ids, self.girl_ids).any(dim=1)
        out[girl, :, self.she] = self.bias
        out[~girl, :, self.he] = 1.0
        if positions is not None:
            out = read_positions(out, positions)
        return out
