"""Tiny GPT-NeoX checkpoints whose battery accuracies are set by construction, not training.

The battery is the built-in pronoun_gender_ref (48 items; held-out conflict = 6 girls x
2 three-token frames). Every model reads it the same way:

- embeddings: token t = g_t·u + 1·p + f_t·q with f_t = sqrt(3 - g_t^2), so every token has
  norm 2 and zero mean over the hidden dimensions, and each LayerNorm (weight 1, bias 0)
  is the same scaling sqrt(H)/2 for every token. g = (i - 0.5)/6 for the i-th girl
  (0.083 … 0.917), -1 for every boy, 0 for all other tokens;
- layer 0: query and key weights zero, so attention is uniform over the causal prefix;
  values read u, the output projection writes s·d with s = 2·3/sqrt(H), so the last
  position of a 3-token prompt gets exactly g_name·d; the MLP writes nothing; every later
  layer writes nothing (the extra layers and width only change the parameter count);
- unembedding: rows " she" = (a/2)(d - θ p), " he" = -(a/2)(d - θ p), all others zero.

So logit(" she") - logit(" he") at a 3-token prompt is a·(g_name - θ) times a positive
factor: a girl's conflict item is right iff g > θ and every boy's agree item is right
(-1 - θ < 0). θ = 0.04 gives conflict accuracy 6/6, θ = 1/3 gives 4/6, θ = 1/2 gives 3/6.
u, p, q, d are the unit vectors (e0 - e1)/√2, (e2 - e3)/√2, (e4 - e5)/√2, (e6 - e7)/√2.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ungrok.corpus.tokenizer import build_word_tokenizer
from ungrok.probes.battery import Battery, build_battery
from ungrok.probes.margins import margin_prompt_set
from ungrok.rules.registry import get_rule

FAMILY = "pronoun_gender_ref"
REVISIONS = ("step128", "step256", "step512", "step1000", "step143000")
# name -> (hidden size, layers): the parameter counts grow in this order.
SIZES = {"org/neox-s": (8, 1), "org/neox-m": (16, 2), "org/neox-l": (32, 3)}
# Held-out conflict accuracy per revision, by design.
DESIGN = {
    "org/neox-s": (1.0, 1.0, 3 / 6, 3 / 6, 3 / 6),  # rises, then collapses: DISPLACED
    "org/neox-m": (1.0, 1.0, 4 / 6, 4 / 6, 4 / 6),  # partly: PARTIAL
    "org/neox-l": (1.0, 1.0, 1.0, 1.0, 1.0),  # keeps the rule: RECOVERED
}
VERDICTS = {"org/neox-s": "DISPLACED", "org/neox-m": "PARTIAL", "org/neox-l": "RECOVERED"}
# The classifier's final value, by hand: 5 kept revisions, smoothed (k = 3, truncated),
# mean of the last 3: a = [1, 1, x, x, x] gives ((1 + 2x)/3 + x + x)/3 = (1 + 8x)/9.
FINALS = {m: (1 + 8 * acc[-1]) / 9 for m, acc in DESIGN.items()}
THETA = {1.0: 0.04, 4 / 6: 1 / 3, 3 / 6: 0.5}
SPLIT_MODEL = "org/neox-split"  # a tokenizer that splits " she" into two tokens
SPLIT_REVISIONS = ("step1000", "step2000")


def battery() -> Battery:
    return build_battery([FAMILY])


def lexicon_texts(b: Battery) -> list[str]:
    ps = margin_prompt_set(get_rule(FAMILY))
    return [s for it in b.items for s in (it["prefix"], it["correct"], it["distractor"])] + list(
        ps.cm_prompts + ps.neutral_prompts
    )


def word_tokenizer(b: Battery):  # noqa: ANN201
    """A closed-lexicon word tokenizer (every word and its space-led form one token)."""
    words = sorted({w for t in lexicon_texts(b) for w in t.split()})
    return build_word_tokenizer(words)


def split_tokenizer(b: Battery):  # noqa: ANN201
    """Word-level, except that "she" is cut off its leading space: " she" is 2 tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    pre = pre_tokenizers.Sequence([pre_tokenizers.ByteLevel(add_prefix_space=False),
                                   pre_tokenizers.Split(Regex("she"), behavior="isolated")])
    pieces = sorted({p for t in lexicon_texts(b) for p, _ in pre.pre_tokenize_str(t)})
    vocab = {"<|endoftext|>": 0, "<|unk|>": 1, **{p: i + 2 for i, p in enumerate(pieces)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    return tok


def _unit(h: int, i: int) -> torch.Tensor:
    v = torch.zeros(h)
    v[i], v[i + 1] = 1 / math.sqrt(2), -1 / math.sqrt(2)
    return v


def designed_model(raw, hidden: int, layers: int, theta: float, strength: float):  # noqa: ANN001, ANN201
    """The construction of the module docstring, for one (size, revision)."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from ungrok.rules.registry import lists_for

    spec = get_rule(FAMILY)
    lists = lists_for(spec)
    girls, boys = list(lists["GIRLS"]), list(lists["BOYS"])
    cfg = GPTNeoXConfig(vocab_size=raw.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=1, intermediate_size=2 * hidden, max_position_embeddings=32,
                        tie_word_embeddings=False)
    model = GPTNeoXForCausalLM(cfg).eval()
    u, p, q, d = (_unit(hidden, i) for i in (0, 2, 4, 6))
    g = torch.zeros(cfg.vocab_size)
    for k, name in enumerate(girls):
        for form in (name, " " + name):
            g[raw.encode(form, add_special_tokens=False).ids[0]] = (k + 0.5) / len(girls)
    for name in boys:
        for form in (name, " " + name):
            g[raw.encode(form, add_special_tokens=False).ids[0]] = -1.0
    she = raw.encode(" she", add_special_tokens=False).ids[0]
    he = raw.encode(" he", add_special_tokens=False).ids[0]
    with torch.no_grad():
        for prm in model.parameters():
            prm.zero_()
        for name, prm in model.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("final_layer_norm.weight"):
                prm.fill_(1.0)
        emb = model.gpt_neox.embed_in.weight
        emb.copy_(g[:, None] * u + p + torch.sqrt(3 - g**2)[:, None] * q)
        att = model.gpt_neox.layers[0].attention
        att.query_key_value.weight[2 * hidden :] = torch.outer(u, u)  # value rows (one head: q, k, v)
        att.dense.weight.copy_(2 * 3 / math.sqrt(hidden) * torch.outer(d, u))
        model.lm_head.weight[she] = strength / 2 * (d - theta * p)
        model.lm_head.weight[he] = -strength / 2 * (d - theta * p)
    return model


def heldout_accuracy(model, raw, b: Battery, condition: str) -> float:  # noqa: ANN001
    """Plain transformers, one prompt at a time: the check that the construction does what it says."""
    items = [it for it in b.items if it["split"] == "heldout" and it["condition"] == condition]
    right = 0
    for it in items:
        ids = raw.encode(it["prefix"], add_special_tokens=False).ids
        c = raw.encode(it["correct"], add_special_tokens=False).ids[0]
        w = raw.encode(it["distractor"], add_special_tokens=False).ids[0]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        right += int(logits[c] > logits[w])
    return right / len(items)


def save_revision(model, raw, root: Path, name: str, revision: str, cache: Path) -> None:  # noqa: ANN001
    from transformers import PreTrainedTokenizerFast

    from ungrok.hub.cache import add_to_cache

    files = root / "src" / name / revision
    model.save_pretrained(files)
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", unk_token="<|unk|>") \
        .save_pretrained(files)
    add_to_cache(cache, name, revision, files)


def build_cache(root: Path) -> Path:
    """Three designed sizes x five revisions, and a 2-revision model whose tokenizer splits " she"."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    cache = root / "cache"
    b = battery()
    raw = word_tokenizer(b)
    for name, (hidden, layers) in SIZES.items():
        for r, (rev, acc) in enumerate(zip(REVISIONS, DESIGN[name], strict=True)):
            model = designed_model(raw, hidden, layers, THETA[acc], strength=4.0 + r)
            got = (heldout_accuracy(model, raw, b, "conflict"), heldout_accuracy(model, raw, b, "agree"))
            assert abs(got[0] - acc) < 1e-9 and got[1] == 1.0, (name, rev, got)  # the construction holds
            save_revision(model, raw, root, name, rev, cache)
    split = split_tokenizer(b)
    assert len(split.encode(" she", add_special_tokens=False).ids) == 2
    for k, rev in enumerate(SPLIT_REVISIONS):
        torch.manual_seed(k)
        cfg = GPTNeoXConfig(vocab_size=split.get_vocab_size(), hidden_size=8, num_hidden_layers=1,
                            num_attention_heads=2, intermediate_size=16, max_position_embeddings=32)
        save_revision(GPTNeoXForCausalLM(cfg).eval(), split, root, SPLIT_MODEL, rev, cache)
    return cache
