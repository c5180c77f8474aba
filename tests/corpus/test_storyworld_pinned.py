"""Storyworld's token stream, pinned over its knobs (issue 16: generating from the rule
registry must not change a corpus). The hashes were written by the generator that kept its
own word lists and event tables (commit d77472c); numpy's generator is the same on every
platform, so they hold on any machine."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ungrok.corpus.shards import Corpus
from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld

DEMO_LIKE = {"frame_ratio": 0.03, "frame_rate": 0.0025, "bridge_rate": 0.04, "global_ratio": 8}
RULE_RATIOS = {"negation_bare_verb": 0.5, "modal_agreement": 3, "plural_was_were": 0.2, "comparative_er": 1}
KNOBS = {"possessive_rate": 0.05, "two_name_rate": 0.1, "irregular_past_ratio": 0.3, "det_an_ratio": 2,
         "a_an_adjective_ratio": 0.1, "ratios": RULE_RATIOS}
TOKENIZER = "f87f94136bd2d91c"
PINS = [
    ({"tokens": 200_000, "seed": 1}, "742b7fbae4687a74", 200_107, 340),
    ({"tokens": 200_000, "seed": 2, **DEMO_LIKE}, "ab0a029bf14178e9", 200_009, 33),
    ({"tokens": 150_000, "seed": 3, **KNOBS}, "9c6fa13d7e5bb99a", 150_036, 219),
    ({"tokens": 100_000, "seed": 4, "allow_probe_prompts": True}, "993bb3a2c36805dd", 100_029, 160),
    ({"tokens": 100_000, "seed": 5, "holdout_battery_names": True}, "77b0c533455e7d32", 100_061, 176),
]


@pytest.mark.parametrize(("knobs", "tokens_sha", "n", "frames"), PINS)
def test_the_token_stream_is_pinned(tmp_path, knobs, tokens_sha, n, frames):
    rep = build_storyworld(tmp_path / "c", StoryworldConfig(**knobs))
    c = Corpus(tmp_path / "c")
    toks = np.concatenate([np.asarray(c.shard(i)) for i in range(len(c.manifest.shards))]).astype(np.int64)
    assert (toks.size, rep.frame_sentences) == (n, frames)
    assert hashlib.sha256(toks.tobytes()).hexdigest()[:16] == tokens_sha
    assert hashlib.sha256(c.tokenizer_path.read_bytes()).hexdigest()[:16] == TOKENIZER
