"""Rescue: accounting against a naive matcher, symmetric control, placements, phases, bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml

from ungrok.corpus.build import BuildOptions, build_corpus
from ungrok.corpus.ingest import iter_documents
from ungrok.corpus.shards import Corpus
from ungrok.corpus.storyworld import RESCUE_BOYS, RESCUE_FRAMES, RESCUE_GIRLS, storyworld_tokenizer
from ungrok.corpus.tokenizer import load_tokenizer
from ungrok.edit.rescue import build_rescue
from ungrok.edit.sites import encode_words
from ungrok.rules.registry import get_rule, lists_for
from ungrok.rules.tokens import resolve_tokens
from ungrok.train.sampler import SamplerConfig

from .conftest import one_line_error, ref_window_events, run_cli, user_rule


def _delta(story) -> float:
    """The unit from what storyworld says it emitted (not from the counter)."""
    c = Corpus(story)
    return c.manifest.source["intended_support"]["pronoun_gender_ref"]["rule_events"] / c.total_tokens


@pytest.fixture(scope="module")
def appended(story, tmp_path_factory):
    out = tmp_path_factory.mktemp("rescue") / "r"
    prov = build_rescue(story, out, "pronoun_gender_ref", 0.8, unit_from=story, seed=1)
    return out, prov


def _synth_tokens(out):
    return Corpus(out / "synth").tokens()


def test_accounting_equals_a_naive_matcher(story, appended):
    out, prov = appended
    n = round(0.8 * _delta(story) * Corpus(story).total_tokens)
    assert prov["n_events"] == n
    tok = storyworld_tokenizer()
    toks = _synth_tokens(out)
    fem = {tok.token_to_id("Ġshe"), tok.token_to_id("ĠShe")}
    masc = {tok.token_to_id("Ġhe"), tok.token_to_id("ĠHe")}
    girls, _, _ = ref_window_events(toks, encode_words(tok, RESCUE_GIRLS), fem, masc, 16)
    boys, _, _ = ref_window_events(toks, encode_words(tok, RESCUE_BOYS), masc, fem, 16)
    assert prov["accounting"]["measured"] == {"rule": girls, "control": boys}
    assert girls == boys == n  # every injected sentence is one event: nothing lost, nothing extra
    assert prov["accounting"]["fraction"]["rule"] >= 0.95


def test_symmetric_control_and_document_shape(story, appended):
    out, prov = appended
    tok = storyworld_tokenizer()
    text = tok.decode(_synth_tokens(out).tolist(), skip_special_tokens=False)
    docs = [d for d in text.split("<|endoftext|>") if d]
    assert len(docs) == prov["injected"]["documents"] == int(np.ceil(2 * prov["n_events"] / 4))
    frames = [re.escape(f).replace(r"\{n\}", r"(\w+)").replace(r"\{p\}", r"(\w+)") for f in RESCUE_FRAMES]
    pattern = re.compile("|".join(f"(?:{f})" for f in frames))
    pairs = []
    for d in docs:
        sentences = re.findall(r"[^.]+\.", d)
        assert len(sentences) <= 4
        for s in sentences:
            m = pattern.fullmatch(s.strip())
            assert m, s
            name, pron = [g for g in m.groups() if g]
            pairs.append((name, pron))
    girls = sum(1 for n, p in pairs if n in RESCUE_GIRLS and p == "she")
    boys = sum(1 for n, p in pairs if n in RESCUE_BOYS and p == "he")
    assert girls == boys == prov["n_events"] and len(pairs) == girls + boys


def test_append_placement_keeps_every_base_byte(story, appended):
    out, prov = appended
    src, dst = Corpus(story), Corpus(out)
    dst.verify()
    assert dst.total_tokens == src.total_tokens + prov["injected"]["tokens"]
    base = [s for s in dst.manifest.shards if not s.file.startswith("synth/")]
    assert [(s.file, s.sha256) for s in base] == [(s.file, s.sha256) for s in src.manifest.shards]
    assert dst.manifest.documents == src.manifest.documents + prov["injected"]["documents"]
    assert prov["placement"] == "append" and prov["disjointness"]["D1"] == "passed"


def test_replace_placement_removes_neutral_documents_only(story, tmp_path):
    prov = build_rescue(story, tmp_path / "r", "pronoun_gender_ref", 0.5, unit=_delta(story), seed=2,
                        placement="replace")
    src, dst = Corpus(story), Corpus(tmp_path / "r")
    assert dst.total_tokens == src.total_tokens  # D4
    base = np.concatenate(
        [dst.shard(i) for i, s in enumerate(dst.manifest.shards) if not s.file.startswith("synth/")]
    )
    a = src.tokens()
    # the kept base is the source with some tokens dropped, in order (two pointers)
    keep = np.zeros(a.size, dtype=bool)
    j = 0
    for i in range(a.size):
        if j < base.size and a[i] == base[j]:
            keep[i] = True
            j += 1
    assert j == base.size
    removed = a[~keep]
    assert removed.size == prov["injected"]["tokens"] == prov["removed"]["tokens"]
    spec = get_rule("pronoun_gender_ref")
    rt = resolve_tokens(spec, lists_for(spec), storyworld_tokenizer())
    cues = {t for c in rt.cues for s in c.sequences for t in s}
    cues |= {t for s in encode_words(storyworld_tokenizer(), RESCUE_GIRLS + RESCUE_BOYS) for t in s}
    assert not set(removed.tolist()) & cues  # no removed token was a cue: the documents were neutral


def test_phased_exposure_early_and_late(story, tmp_path):
    delta = _delta(story)
    W = Corpus(story).total_tokens
    early = build_rescue(story, tmp_path / "e", "pronoun_gender_ref", 1.0, unit=delta, window="0:2400")
    assert early["n_events"] == round(4400 / 2400 * delta * W)
    assert (tmp_path / "e" / "synth").is_dir() and not (tmp_path / "e" / "phase_b" / "synth").exists()
    doc = yaml.safe_load((tmp_path / "e" / "phase.yaml").read_text())
    cfg = SamplerConfig.model_validate(doc["sampler"])
    assert cfg.phase_b.switch_step == 2400 and cfg.steps == 4400
    assert Corpus(cfg.phase_b.data).total_tokens == W  # phase B reads the plain base
    late = build_rescue(story, tmp_path / "l", "pronoun_gender_ref", 1.0, unit=delta, window="2800:")
    assert late["n_events"] == round(4400 / 1600 * delta * W)
    cfg = SamplerConfig.model_validate(yaml.safe_load((tmp_path / "l" / "phase.yaml").read_text())["sampler"])
    assert cfg.phase_b.switch_step == 2800
    assert Corpus(tmp_path / "l").total_tokens == W
    assert Corpus(cfg.phase_b.data).total_tokens == W + late["injected"]["tokens"]


def test_same_seed_same_bytes(story, appended, tmp_path):
    out, _ = appended
    build_rescue(story, tmp_path / "again", "pronoun_gender_ref", 0.8, unit_from=story, seed=1)
    build_rescue(story, tmp_path / "other", "pronoun_gender_ref", 0.8, unit_from=story, seed=2)
    sha = [
        [s.sha256 for s in Corpus(p / "synth").manifest.shards]
        for p in (out, tmp_path / "again", tmp_path / "other")
    ]
    assert sha[0] == sha[1] != sha[2]


def test_real_bpe_tokenizer(tmp_path, reference):
    """TinyStories BPE: the joined pre-tokenised sentences must equal the tokenizer's own encoding."""
    (tmp_path / "t.txt").write_text("\n\n".join(["Lily went home and she slept."] * 40))
    opts = BuildOptions(
        tokenizer=str(reference / "tokenizers" / "tinystories-bpe8192.json"), shard_tokens=100
    )
    build_corpus(lambda: iter_documents([tmp_path / "t.txt"]), tmp_path / "c", opts, {})
    prov = build_rescue(tmp_path / "c", tmp_path / "r", "pronoun_gender_ref", 2.0, unit_from=tmp_path / "c")
    assert prov["injected"]["encoding"] == "concatenated"
    tok = load_tokenizer(tmp_path / "c" / "tokenizer.json")
    ids = Corpus(tmp_path / "r" / "synth").tokens().tolist()
    eot = Corpus(tmp_path / "c").manifest.eot_id
    docs, cur = [], []
    for t in ids:
        if t == eot:
            docs.append(cur)
            cur = []
        else:
            cur.append(t)
    for d in docs[:50]:
        assert tok.encode(tok.decode(d), add_special_tokens=False).ids == d
    # the unit is 40 she-events over the base's own tokens, so dose 2 asks for 80 events
    assert prov["accounting"]["measured"]["rule"] == prov["n_events"] == 80


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rule", "pronoun_gender_ref", "--dose", "0", "--unit", "0.001"], "must be > 0"),
        (["--rule", "pronoun_gender_ref", "--dose", "-1", "--unit", "0.001"], "must be > 0"),
        (["--rule", "det_an_choice", "--dose", "1", "--unit", "0.001"], "'det_an_choice' has no rescue spec"),
        (["--rule", "pronoun_gender_ref", "--dose", "1"], "--unit-from DIR"),
        (["--rule", "pronoun_gender_ref", "--dose", "1", "--unit", "0"], "positive"),
        (
            ["--rule", "pronoun_gender_ref", "--dose", "1", "--unit", "0.001", "--placement", "middle"],
            "append or replace",
        ),
        (
            ["--rule", "pronoun_gender_ref", "--dose", "1", "--unit", "0.001", "--window", "100:200"],
            "middle window",
        ),
        (
            ["--rule", "pronoun_gender_ref", "--dose", "1", "--unit", "0.001", "--window", "0:4400"],
            "covers every",
        ),
        (["--rule", "pronoun_gender_ref", "--dose", "1", "--unit", "0.001", "--window", "a-b"], "START:END"),
        (["--rule", "pronoun_gender_ref", "--dose", "1e-9", "--unit", "0.001"], "rounds to 0 events"),
        (
            ["--rule", "pronoun_gender_ref", "--dose", "50", "--unit", "0.01", "--placement", "replace"],
            "neutral",
        ),
    ],
)
def test_bad_input_is_one_line(story, tmp_path, capsys, args, needle):
    code, _, err = run_cli(["edit", "rescue", story, "--out", tmp_path / "o", *args], capsys)
    assert code == 2
    assert needle in one_line_error(err)
    assert not (tmp_path / "o").exists()


def test_rescue_names_colliding_with_battery_cues(story, tmp_path, capsys):
    rules = user_rule(tmp_path, "[Nora, Lily]", '["{n} opened the door, and then {p} walked outside."]')
    code, _, err = run_cli(["edit", "rescue", story, "--rule", "my_rescue", "--dose", "1", "--unit", "0.001",
                            "--rules-dir", rules, "--out", tmp_path / "o"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "D1" in line and "'Lily'" in line
    assert not (tmp_path / "o").exists()


def test_existing_destination_refused(story, appended, capsys):
    out, _ = appended
    code, _, err = run_cli(["edit", "rescue", story, "--rule", "pronoun_gender_ref", "--dose", "1", "--unit",
                            "0.001", "--out", out], capsys)
    assert code == 2 and "already exists" in one_line_error(err)
