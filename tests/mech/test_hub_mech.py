"""`ungrok hub mech`: the nnsight GPT-NeoX instruments over two revisions of a local hub cache."""

from __future__ import annotations

import math

import pytest
import torch

from cli_helpers import one_line_error, run
from hub import builders as B
from ungrok.mech.decode import nearest_mean_accuracy
from ungrok.mech.hub import hub_mech
from ungrok.mech.store import MECH_FILE, read_mech
from ungrok.probes.battery import save_battery

RULE = B.FAMILY
MODEL = "org/neox-rand"
# revision -> (seed, parallel residual): one revision of each residual layout
REVS = {"step128": (0, True), "step1000": (1, False)}
N_LAYER, N_HEAD = 2, 4


def _random_neox(vocab: int, seed: int, parallel: bool):  # noqa: ANN202
    """Every weight, bias and LayerNorm gain random: no term of the decomposition is trivially zero."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=N_LAYER, num_attention_heads=N_HEAD,
                        intermediate_size=64, max_position_embeddings=64, use_parallel_residual=parallel,
                        tie_word_embeddings=False)
    model = GPTNeoXForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):  # noqa: ANN001, ANN201
    """(cache, battery file): MODEL at two revisions, a GPT-2 and a model whose tokenizer splits ' she'."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

    root = tmp_path_factory.mktemp("hubmech")
    cache = root / "cache"
    b = B.battery()
    raw = B.word_tokenizer(b)
    for rev, (seed, parallel) in REVS.items():
        B.save_revision(_random_neox(raw.get_vocab_size(), seed, parallel), raw, root, MODEL, rev, cache)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=raw.get_vocab_size(), n_embd=16, n_layer=1, n_head=2)).eval()
    B.save_revision(gpt2, raw, root, "org/gpt2-tiny", "step1000", cache)
    split = B.split_tokenizer(b)
    cfg = GPTNeoXConfig(vocab_size=split.get_vocab_size(), hidden_size=8, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=16, max_position_embeddings=32)
    B.save_revision(GPTNeoXForCausalLM(cfg).eval(), split, root, B.SPLIT_MODEL, "step1000", cache)
    path = root / "battery.jsonl"
    save_battery(b, path)
    return cache, path


@pytest.fixture
def offline(hub_cache, monkeypatch):  # noqa: ANN001, ANN201
    import huggingface_hub.constants as hc

    cache, battery = hub_cache
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    return cache, battery


def _plain(rev: str):  # noqa: ANN202
    """The revision through plain transformers (no nnsight), and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(MODEL, revision=rev, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(MODEL, revision=rev)


def _values(rows, step: int, instrument: str) -> dict[tuple[str, str], float]:  # noqa: ANN001
    return {(r["component"], r["metric"]): r["value"] for r in rows
            if r["step"] == step and r["instrument"] == instrument}


def _reference_gap(model, tok) -> float:  # noqa: ANN001
    """Mean logit(' she') - logit(' he') over the rule's CM prompts, one unpadded prompt at a time."""
    from ungrok.probes.margins import margin_prompt_set
    from ungrok.rules.registry import get_rule

    ps = margin_prompt_set(get_rule(RULE))
    she, he = (tok(t, add_special_tokens=False)["input_ids"][0] for t in (ps.rule_target, ps.prior_target))
    gaps = []
    with torch.no_grad():
        for p in ps.cm_prompts:
            logits = model(torch.tensor([tok(p, add_special_tokens=False)["input_ids"]])).logits[0, -1]
            gaps.append(float(logits[she] - logits[he]))
    return sum(gaps) / len(gaps)


def _reference_decode(model, tok, battery) -> list[float]:  # noqa: ANN001
    """Decodability from plain torch forward hooks on each layer, one prompt at a time."""
    from ungrok.mech.prompts import _class_prompts

    prefixes, labels, frames = _class_prompts(battery, RULE)
    feats: list[list[torch.Tensor]] = [[] for _ in range(N_LAYER)]
    got: dict[int, object] = {}
    hooks = [layer.register_forward_hook(lambda _m, _a, out, i=i: got.__setitem__(i, out))
             for i, layer in enumerate(model.gpt_neox.layers)]
    for p in prefixes:
        with torch.no_grad():
            model(torch.tensor([tok(p, add_special_tokens=False)["input_ids"]]))
        for i in range(N_LAYER):
            x = (got[i][0] if isinstance(got[i], tuple) else got[i])[0, -1].double()
            feats[i].append(x / (x.pow(2).mean() + torch.finfo(torch.float64).eps).sqrt())
    for h in hooks:
        h.remove()
    return [nearest_mean_accuracy(torch.stack(f).numpy(), labels, frames) for f in feats]


def test_two_revisions_against_plain_transformers(offline, tmp_path):
    from ungrok.probes.battery import load_battery

    _, battery = offline
    out = tmp_path / "mech"
    summary = hub_mech(MODEL, list(REVS), RULE, battery, out, device="cpu", offline=True)
    assert sorted(summary.measured) == sorted((MODEL, r) for r in REVS) and not summary.failed
    rows = read_mech(out / MECH_FILE).to_pylist()
    assert {(r["run"], r["step"]) for r in rows} == {(MODEL, 128), (MODEL, 1000)}
    bat = load_battery(battery)
    for rev in REVS:
        step = int(rev.removeprefix("step"))
        model, tok = _plain(rev)
        dec = _values(rows, step, "decomp")
        gap = _reference_gap(model, tok)
        assert abs(gap) > 0.1  # a random model with a real gap, not a vacuous 0 = 0
        parts = dec[("embed", "nats")] + dec[("ctx", "nats")] + dec[("bias", "nats")]
        assert parts == pytest.approx(gap, abs=1e-4)
        assert dec[("gap", "nats")] == pytest.approx(gap, abs=1e-4)
        assert dec[("error", "nats")] < 1e-4
        heads = _values(rows, step, "heads")
        for layer in range(N_LAYER):
            terms = [dec[(f"attn:L{layer}H{h}", "nats")] for h in range(N_HEAD)]
            assert sum(terms) == pytest.approx(dec[(f"attn:L{layer}", "nats")], abs=1e-9)
            assert [heads[(f"L{layer}H{h}", "attribution")] for h in range(N_HEAD)] == terms
        total = sum(abs(v) for (_, m), v in heads.items() if m == "attribution")
        assert sum(v for (_, m), v in heads.items() if m == "share") == pytest.approx(1.0)
        assert heads[("L0H0", "share")] == pytest.approx(abs(heads[("L0H0", "attribution")]) / total)
        decode = _values(rows, step, "decode")
        assert set(decode) == {(f"block{k}", "accuracy") for k in range(1, N_LAYER + 1)}
        ref = _reference_decode(model, tok, bat)
        assert not any(math.isnan(v) for v in ref)  # every frame was tested
        assert [decode[(f"block{k}", "accuracy")] for k in range(1, N_LAYER + 1)] == pytest.approx(ref, abs=1e-9)


def test_cli_end_to_end_resumes_and_reports(offline, tmp_path, capsys):
    import re

    _, battery = offline
    out = tmp_path / "suite"
    code, _, err = run(["hub", "score", "--models", MODEL, "--revisions", "step128,step1000", "--battery", battery,
                        "--out", out, "--offline", "--device", "cpu"], capsys)
    assert code == 0, err
    code, _, err = run(["report", out, "--out", tmp_path / "before.html"], capsys)
    assert code == 0 and 'id="hub_mech"' not in (tmp_path / "before.html").read_text()
    args = ["hub", "mech", "--models", MODEL, "--revisions", "step128", "--revisions", "step1000", "--rule", RULE,
            "--battery", battery, "--out", out, "--offline", "--device", "cpu"]
    code, text, err = run(args, capsys)
    assert code == 0, err
    assert "measured 2 revision(s), 0 already" in text
    n = read_mech(out / MECH_FILE).num_rows
    # per revision: decomp 1 + L (1 + H + 1) + bias + ctx + gap + error; heads 2 L H; decode L
    assert n == 2 * ((1 + N_LAYER * (N_HEAD + 2) + 4) + 2 * N_LAYER * N_HEAD + N_LAYER)
    code, text, err = run(args, capsys)
    assert code == 0 and "measured 0 revision(s), 2 already" in text
    code, text, err = run([*args, "--force"], capsys)
    assert code == 0 and "measured 2 revision(s)" in text and read_mech(out / MECH_FILE).num_rows == n
    code, _, err = run(["report", out], capsys)
    assert code == 0, err
    html = (out / "report.html").read_text()
    assert re.findall(r'<section id="(\w+)"', html) == ["hub", "hub_mech", "notes", "constants"]
    mech = html.split('<section id="hub_mech"')[1].split("</section>")[0]
    rows = read_mech(out / MECH_FILE).to_pylist()
    gap = next(r["value"] for r in rows if r["step"] == 1000 and r["component"] == "gap")
    assert "Descriptive only" in mech and MODEL in mech and f"{gap:+.2f}" in mech


@pytest.mark.parametrize(
    ("model", "want"),
    [
        ("org/gpt2-tiny", "org/gpt2-tiny: a 'gpt2' model, not GPT-NeoX"),
        (B.SPLIT_MODEL, "rule target ' she' is 2 tokens under this tokenizer"),
        ("org/none", "org/none: not in the local hub cache (offline mode)"),
    ],
)
def test_bad_models_are_one_line(offline, tmp_path, capsys, model, want):
    _, battery = offline
    out = tmp_path / "o"
    code, _, err = run(["hub", "mech", "--models", model, "--revisions", "step1000", "--rule", RULE,
                        "--battery", battery, "--out", out, "--offline", "--device", "cpu"], capsys)
    assert want in one_line_error(code, err)
    assert not out.exists()  # refused before anything was written
