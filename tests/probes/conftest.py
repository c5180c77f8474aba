"""Shared helpers: closed-lexicon tokenizers, tiny GPTs with every layer random, small batteries."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pytest
import torch

from ungrok.corpus.tokenizer import build_word_tokenizer
from ungrok.model import GPT, ModelConfig
from ungrok.probes.battery import Battery
from ungrok.probes.models import TokenizerFile


def words_of(texts: Iterable[str]) -> list[str]:
    return sorted({w for t in texts for w in t.split()})


def word_tokenizer(texts: Iterable[str], path: Path | None = None) -> TokenizerFile:
    """A word-level tokenizer knowing every word of `texts` (saved to path if given)."""
    tok = build_word_tokenizer(words_of(texts))
    if path is not None:
        tok.save(str(path))
    return TokenizerFile(tok, path)


def tiny_gpt(vocab: int, seed: int = 0, random_head: bool = True) -> GPT:
    """A 2-layer GPT; random_head also randomises the zero-init layers so logits differ."""
    torch.manual_seed(seed)
    model = GPT(ModelConfig(vocab_size=vocab, n_layer=2, n_head=2, n_embd=32, context=32))
    if random_head:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name == "lm_head.weight" or name.endswith((".wo.weight", ".down.weight")):
                    p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]))
    return model.eval()


def item(family, condition, split, prefix, correct, distractor, n, template="t"):  # noqa: ANN001, ANN201
    probe = f"{family}.{condition}"
    return {
        "family": family,
        "condition": condition,
        "probe": probe,
        "category": "rule_vs_prior",
        "template_id": template,
        "split": split,
        "prefix": prefix,
        "correct": correct,
        "distractor": distractor,
        "chance": 0.5,
        "item_id": f"{probe}/{split}/{n:04d}",
    }


def small_battery() -> Battery:
    """Single-token pronoun items (shared prefixes) and multi-token a/an items of unequal lengths."""
    items = []
    n = 0
    for split, frames in (("train", ["smiled because", "was happy because"]), ("heldout", ["laughed when"])):
        for name, cond, c, d in (("Lily", "conflict", " she", " he"), ("Mia", "conflict", " she", " he"),
                                 ("Tom", "agree", " he", " she")):
            for f in frames:
                items.append(item("pron", cond, split, f"{name} {f}", c, d, n, f.split()[0]))
                n += 1
    for split, verb in (("train", "ate"), ("heldout", "saw")):
        for name in ("Lily", "Tom"):
            items.append(item("det", "conflict", split, f"{name} {verb}", " an egg", " a egg", n))
            items.append(item("det", "agree", split, f"{name} {verb}", " a big dog", " an big dog", n + 1))
            items.append(item("det", "agree", split, f"{name} {verb}", " a dog", " an old dog", n + 2))
            n += 3
    return Battery(tuple(items))


def battery_texts(b: Battery) -> list[str]:
    return [s for it in b.items for s in (it["prefix"], it["correct"], it["distractor"])]


@pytest.fixture
def battery() -> Battery:
    return small_battery()


@pytest.fixture
def tokenizer(battery: Battery) -> TokenizerFile:
    return word_tokenizer(battery_texts(battery) + ["extra words here"])


# --------------------------------------------------------------------------- a local hub cache
HUB_MODELS = {"org/tiny-neox": "neox", "org/tiny-gpt2": "gpt2"}
HUB_REVISIONS = ("step1000", "step2000")


def _hf_model(kind: str, vocab: int, seed: int):  # noqa: ANN202
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    if kind == "neox":
        cfg = GPTNeoXConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=64)
        return GPTNeoXForCausalLM(cfg).eval()
    cfg = GPT2Config(vocab_size=vocab, n_embd=16, n_layer=2, n_head=2, n_positions=64)
    return GPT2LMHeadModel(cfg).eval()


def _add_snapshot(repo: Path, revision: str, files: Path) -> None:
    """The hub cache layout: blobs by sha256, snapshots/<commit>/ linking to them, refs/<revision>."""
    import hashlib
    import os

    commit = hashlib.sha1(f"{repo.name}@{revision}".encode()).hexdigest()
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for f in sorted(files.iterdir()):
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory):  # noqa: ANN001, ANN201
    """Tiny GPT-NeoX and GPT-2 models, two revisions each (different weights), in a hub cache.

    Returns (cache dir, {(name, revision): in-memory model}, the raw tokenizers tokenizer).
    """
    from transformers import PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("hub")
    raw = build_word_tokenizer(words_of(battery_texts(small_battery())))
    models = {}
    for name, kind in HUB_MODELS.items():
        repo = root / "cache" / f"models--{name.replace('/', '--')}"
        for k, rev in enumerate(HUB_REVISIONS):
            model = _hf_model(kind, raw.get_vocab_size(), seed=10 * k + len(kind))
            files = root / "src" / name / rev
            model.save_pretrained(files)
            PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", unk_token="<|unk|>") \
                .save_pretrained(files)
            _add_snapshot(repo, rev, files)
            models[(name, rev)] = model
    return root / "cache", models, raw


@pytest.fixture
def offline_hub(hub_cache, monkeypatch):  # noqa: ANN001, ANN201
    """HF_HUB_OFFLINE=1 and HF_HUB_CACHE pointing at the fixture cache (env and hub constants)."""
    import huggingface_hub.constants as hc

    cache, models, raw = hub_cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)  # read at import time; patch what the loaders read
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    return models, raw
