"""Loading: hub models by name and revision from an offline cache, run tokenizers, revision steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ungrok.corpus.build import BuildOptions, build_corpus
from ungrok.errors import UngrokError
from ungrok.probes.models import load_hf, run_tokenizer_path
from ungrok.probes.revisions import revision_step, revision_steps
from ungrok.probes.score import score_battery

from .conftest import HUB_MODELS, HUB_REVISIONS, word_tokenizer


def direct_logp(model, raw_tok, prefix: str, cont: str) -> float:  # noqa: ANN001
    """Plain transformers: one unpadded forward, log_softmax of the logits at the continuation's positions."""
    p = raw_tok.encode(prefix, add_special_tokens=False).ids
    c = raw_tok.encode(cont, add_special_tokens=False).ids
    with torch.no_grad():
        lp = model(torch.tensor([p + c])).logits[0].float().log_softmax(-1)
    return sum(float(lp[len(p) - 1 + j, t]) for j, t in enumerate(c))


@pytest.mark.parametrize("name", list(HUB_MODELS))
def test_hub_revisions_load_offline_and_score_like_plain_transformers(offline_hub, battery, name):
    models, raw = offline_hub
    per_rev = []
    for rev in HUB_REVISIONS:
        adapter, tok = load_hf(name, rev, device="cpu")
        assert type(adapter.model).__name__ == type(models[(name, rev)]).__name__
        s = score_battery(adapter, tok, battery)
        ref = models[(name, rev)]
        want_c = [direct_logp(ref, raw, it["prefix"], it["correct"]) for it in battery.items]
        want_d = [direct_logp(ref, raw, it["prefix"], it["distractor"]) for it in battery.items]
        np.testing.assert_allclose(s.logp_correct, want_c, atol=1e-5, rtol=0)
        np.testing.assert_allclose(s.logp_distractor, want_d, atol=1e-5, rtol=0)
        per_rev.append(s.logp_correct)
    assert not np.allclose(per_rev[0], per_rev[1])  # each revision really is its own weights


def test_unknown_revision_is_one_line(offline_hub):
    with pytest.raises(UngrokError) as e:
        load_hf("org/tiny-neox", "step999", device="cpu")
    msg = str(e.value)
    assert "org/tiny-neox" in msg and "'step999'" in msg and "\n" not in msg


def test_bfloat16_needs_a_gpu(offline_hub):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UngrokError, match="bfloat16 is for GPUs"):
        load_hf("org/tiny-neox", "step1000", dtype="bfloat16", device="cpu")


def test_revision_steps():
    assert revision_step("step1000", 5) == 1000
    assert revision_step("step99000-tokens415B", 0) == 99000  # OLMo style
    assert revision_step("main", 3) == 3
    assert revision_steps(["step0", "step1", "main"]) == [0, 1, 2]
    with pytest.raises(UngrokError, match="both map to step 1"):
        revision_steps(["step1", "main"])


def test_run_tokenizer_comes_from_the_corpus_named_in_config(tmp_path):
    tok = word_tokenizer(["Lily laughed when she"], tmp_path / "tok.json")
    corpus = tmp_path / "corpus"
    build_corpus(lambda: ["Lily laughed when she"], corpus, BuildOptions(tokenizer=str(tok.path)), {})
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(UngrokError, match="pass --tokenizer FILE"):
        run_tokenizer_path(run)
    (run / "config.json").write_text(json.dumps({"data": str(corpus)}))
    assert run_tokenizer_path(run) == corpus / "tokenizer.json"
    (run / "config.json").write_text(json.dumps({"sampler": {"data": str(corpus)}}))
    assert run_tokenizer_path(run) == corpus / "tokenizer.json"
    assert run_tokenizer_path(run, tok.path) == tok.path  # explicit wins
    with pytest.raises(UngrokError, match="tokenizer file not found"):
        run_tokenizer_path(run, tmp_path / "none.json")
