"""Kill: exact agreement with a naive per-site reference on random corpora, invariants, formula."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ungrok.corpus.build import BuildOptions, build_corpus
from ungrok.corpus.ingest import iter_documents
from ungrok.corpus.shards import Corpus
from ungrok.corpus.storyworld import storyworld_tokenizer
from ungrok.corpus.tokenizer import load_tokenizer
from ungrok.edit.kill import kill_corpus
from ungrok.errors import UngrokError
from ungrok.rules.registry import get_rule, lists_for
from ungrok.rules.tokens import resolve_tokens

from .conftest import (
    one_line_error,
    ref_draws,
    ref_lookahead_sites,
    ref_window_events,
    ref_window_sites,
    run_cli,
    tid,
    write_token_corpus,
)

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)
GIRL_WORDS = ["Lily", "Sue", "Zoe"]
BOY_WORDS = ["Tom", "Ben"]


def _random_stream(rng, n, pools, probs):
    """n tokens: pool k chosen with probability probs[k], a uniform member of it."""
    probs = np.asarray(probs, dtype=float) / sum(probs)
    which = rng.choice(len(pools), size=n, p=probs)
    return np.array([pools[k][rng.integers(len(pools[k]))] for k in which], dtype=np.int64)


def _expected(tokens, flipped, flip):
    out = np.array(tokens, copy=True)
    for p in flipped:
        out[p] = flip[int(tokens[p])]
    return out


def _starts(path):
    c = Corpus(path)
    return [0, *np.cumsum([s.tokens for s in c.manifest.shards]).tolist()]


def _kill_or_refusal(src, dst, rule, rate, seed, chunk, expect_sites):
    if not expect_sites:
        with pytest.raises(UngrokError, match="no eligible site"):
            kill_corpus(src, dst, rule, rate, seed, chunk=chunk)
        assert not dst.exists()  # nothing half-written
        return None
    return kill_corpus(src, dst, rule, rate, seed, chunk=chunk)


@SETTINGS
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 1200),
    shard=st.integers(40, 700),
    chunk=st.integers(8, 500),
    rate=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1)),
    cue_w=st.floats(0.02, 0.5),
    pron_w=st.floats(0.02, 0.6),
)
def test_window_kill_equals_naive_reference(tmp_path_factory, seed, n, shard, chunk, rate, cue_w, pron_w):
    rng = np.random.default_rng(seed)
    girls = [tid(w) for w in GIRL_WORDS] + [tid(" " + w) for w in GIRL_WORDS]
    boys = [tid(" " + w) for w in BOY_WORDS]
    she, he, She, He = tid(" she"), tid(" he"), tid(" She"), tid(" He")
    filler = [tid(" the"), tid(" went"), tid(" home"), tid("."), tid(","), 0]
    toks = _random_stream(
        rng, n, [girls, boys, [she, he], [She, He], filler], [cue_w, cue_w / 2, pron_w, pron_w / 2, 1]
    )
    d = tmp_path_factory.mktemp("w")
    src = write_token_corpus(d / "src", toks, shard)
    spec = get_rule("pronoun_gender_ref")
    rt = resolve_tokens(spec, lists_for(spec), storyworld_tokenizer())
    cues = [s for c in rt.cues if c.name == "girl_names" for s in c.sequences]
    sites = ref_window_sites(toks, cues, [(she, he), (She, He)], 16)
    prov = _kill_or_refusal(src, d / "dst", "pronoun_gender_ref", rate, seed, chunk, sites)
    if prov is None:
        return
    flipped = ref_draws(sites, _starts(src), seed, rate)
    want = _expected(toks, flipped, {she: he, She: He})
    got = Corpus(d / "dst").tokens()
    assert got.size == toks.size
    assert np.array_equal(got, want)
    assert (prov["eligible_sites"], prov["flipped_sites"]) == (len(sites), len(flipped))
    # post-edit support: the counter's numbers equal the naive counter on the expected stream
    S, C, _ = ref_window_events(toks, cues, {she}, {he}, 16)
    S2, C2, _ = ref_window_events(want, cues, {she}, {he}, 16)
    assert prov["support"]["before"]["rule_events"] == S and prov["support"]["before"]["prior_events"] == C
    assert prov["support"]["after"]["rule_events"] == S2 and prov["support"]["after"]["prior_events"] == C2


@SETTINGS
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(2, 1200),
    shard=st.integers(30, 600),
    chunk=st.integers(5, 400),
    rate=st.floats(0, 1),
)
def test_lookahead_kill_equals_naive_reference(tmp_path_factory, seed, n, shard, chunk, rate):
    rng = np.random.default_rng(seed)
    ans = [tid(" an"), tid(" An"), tid("an"), tid("An")]
    as_ = [tid(" a"), tid(" A"), tid("a"), tid("A")]
    vowel = [tid(" apple"), tid(" egg"), tid(" owl")]
    cons = [tid(" ball"), tid(" dog"), tid("apple")]  # "apple" without a space is not eligible
    toks = _random_stream(rng, n, [ans, as_, vowel, cons, [0]], [3, 2, 4, 3, 1])
    d = tmp_path_factory.mktemp("l")
    src = write_token_corpus(d / "src", toks, shard)
    tok = storyworld_tokenizer()
    ok = np.array([bool(re.search(r"^ [aeiouAEIOU]", tok.decode([i]))) for i in range(tok.get_vocab_size())])
    channels = list(zip(ans, as_, strict=True))
    sites = ref_lookahead_sites(toks, channels, ok)
    prov = _kill_or_refusal(src, d / "dst", "det_an_choice", rate, seed, chunk, sites)
    if prov is None:
        return
    flipped = ref_draws(sites, _starts(src), seed, rate)
    want = _expected(toks, flipped, dict(channels))
    assert np.array_equal(Corpus(d / "dst").tokens(), want)
    # docs/method.md §6.3 by hand: rule = an-forms before an accepted token, prior = a-forms likewise
    S = sum(1 for i in range(n - 1) if toks[i] in ans and ok[toks[i + 1]])
    C = sum(1 for i in range(n - 1) if toks[i] in as_ and ok[toks[i + 1]])
    assert prov["support"]["before"]["rule_events"] == S
    assert prov["support"]["after"]["rule_events"] == S - len(flipped)
    assert prov["support"]["after"]["prior_events"] == C + len(flipped)


@SETTINGS
@given(seed=st.integers(0, 2**16), n=st.integers(2, 900), shard=st.integers(30, 500), rate=st.floats(0, 1))
def test_ngram_kill_equals_naive_reference(tmp_path_factory, seed, n, shard, rate):
    rng = np.random.default_rng(seed)
    words = [" not", " want", " wanted", " play", " played", " did", " stop", " the"]
    toks = _random_stream(rng, n, [[tid(w) for w in words], [0]], [10, 1])
    d = tmp_path_factory.mktemp("n")
    src = write_token_corpus(d / "src", toks, shard)
    spec = get_rule("negation_bare_verb")
    rt = resolve_tokens(spec, lists_for(spec), storyworld_tokenizer())
    flip = {a[0]: b[0] for a, b in rt.flips}
    prior = set(rt.prior)
    sites = {}
    for i in range(n):
        for r in rt.rule:
            if tuple(toks[i : i + len(r)].tolist()) == r:
                for j, t in enumerate(r):
                    if t in flip and r[:j] + (flip[t],) + r[j + 1 :] in prior:
                        sites[i + j] = 0
    prov = _kill_or_refusal(src, d / "dst", "negation_bare_verb", rate, seed, 10_000, sites)
    if prov is None:
        return
    flipped = ref_draws(sites, _starts(src), seed, rate)
    assert np.array_equal(Corpus(d / "dst").tokens(), _expected(toks, flipped, flip))


def test_flip_rate_is_binomial_and_the_formula_holds(story, tmp_path):
    p = 0.437  # the paper's parity dose
    prov = kill_corpus(story, tmp_path / "k", "pronoun_gender_ref", p, seed=11)
    n, k = prov["eligible_sites"], prov["flipped_sites"]
    assert n > 1000
    sd = math.sqrt(n * p * (1 - p))
    assert abs(k - n * p) <= 5 * sd
    assert prov["flip_rate"]["realised"] == pytest.approx(k / n)
    s = prov["support"]
    S, C = s["before"]["rule_events"], s["before"]["prior_events"]
    F = s["flipped_rule_events"]
    # exact: every flipped counted event moves from rule to prior
    assert (s["after"]["rule_events"], s["after"]["prior_events"]) == (S - F, C + F)
    assert s["formula_realised_p"] == pytest.approx((S - F) / (C + F))
    # the registered formula with the nominal p is within binomial noise of the measurement
    assert s["formula_nominal_p"] == pytest.approx((1 - p) * S / (C + p * S))
    assert abs(s["measured_unsmoothed"] - s["formula_nominal_p"]) / s["formula_nominal_p"] < 0.1
    # the storyworld reports what it emitted: the same S and C the counter measured before the edit
    intended = Corpus(story).manifest.source["intended_support"]["pronoun_gender_ref"]
    assert (intended["rule_events"], intended["prior_events"]) == (S, C)


def test_invariants_and_manifest_provenance(story, tmp_path):
    prov = kill_corpus(story, tmp_path / "k", "det_an_choice", 1.0, seed=3)
    src, dst = Corpus(story), Corpus(tmp_path / "k")
    dst.verify()  # every recorded sha256 matches the written shards
    assert [s.tokens for s in dst.manifest.shards] == [s.tokens for s in src.manifest.shards]
    assert dst.manifest.documents == src.manifest.documents
    a, b = src.tokens(), dst.tokens()
    diff = np.flatnonzero(a != b)
    assert diff.size == prov["flipped_sites"] == prov["eligible_sites"]  # p = 1 flips every site
    assert prov["support"]["after"]["rule_events"] == 0  # every an-before-vowel is gone
    S = prov["support"]["before"]["rule_events"]
    assert prov["eligible_rule_events"] == prov["support"]["flipped_rule_events"] == S
    m = dst.manifest.source
    for key in ("rule", "rate", "seed", "eligible_sites", "flipped_sites", "invariants", "support", "source"):
        assert key in m
    assert m["source"]["total_tokens"] == src.total_tokens
    assert m["invariants"]["token_count_identical"] is True


def test_result_does_not_depend_on_workers_or_chunking(story, tmp_path):
    kill_corpus(story, tmp_path / "a", "pronoun_gender_ref", 0.5, seed=5, workers=1)
    kill_corpus(story, tmp_path / "b", "pronoun_gender_ref", 0.5, seed=5, workers=2, chunk=9_999)
    kill_corpus(story, tmp_path / "c", "pronoun_gender_ref", 0.5, seed=6)
    sha = [[s.sha256 for s in Corpus(tmp_path / x).manifest.shards] for x in "abc"]
    assert sha[0] == sha[1]
    assert sha[0] != sha[2]


@pytest.mark.parametrize("tokenizer", ["tinystories-bpe8192.json", "climbmix-bpe8192.json"])
def test_hand_computed_kill_on_real_bpe_tokenizers(tmp_path, reference, tokenizer):
    """On the web tokenizer no battery girl name is one token: cues match as token sequences."""
    text = [
        "Lily went home and she slept. Then she ate.",  # Lily -> she: a site; the second she is not
        "Sue saw Tom and he waved, then she ran.",  # Sue -> he comes first: no site
        "Emma smiled. She was happy.",  # capitalised channel: She is a site
    ]
    (tmp_path / "t.txt").write_text("\n\n".join(text))
    opts = BuildOptions(tokenizer=str(reference / "tokenizers" / tokenizer), shard_tokens=7)
    build_corpus(lambda: iter_documents([tmp_path / "t.txt"]), tmp_path / "c", opts, {})
    prov = kill_corpus(tmp_path / "c", tmp_path / "k", "pronoun_gender_ref", 1.0)
    tok = load_tokenizer(tmp_path / "c" / "tokenizer.json")
    assert prov["eligible_sites"] == 2
    out = tok.decode(Corpus(tmp_path / "k").tokens().tolist())
    assert "Lily went home and he slept. Then she ate." in out
    assert "Sue saw Tom and he waved, then she ran." in out
    assert "Emma smiled. He was happy." in out
    if tokenizer.startswith("climbmix"):
        assert len(tok.encode(" Lily").ids) > 1  # the point of this case


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rule", "pronoun_gender_ref", "--rate", "1.5"], "outside [0, 1]"),
        (["--rule", "pronoun_gender_ref", "--rate", "-0.1"], "outside [0, 1]"),
        (["--rule", "comparative_er", "--rate", "0.5"], "'comparative_er' has no kill spec"),
        (["--rule", "no_such_rule", "--rate", "0.5"], "unknown rule"),
        (["--rule", "pronoun_gender_ref", "--rate", "0.5", "--scan", "--cues", "x.txt"], "not both"),
    ],
)
def test_bad_input_is_one_line(story, tmp_path, capsys, args, needle):
    code, _, err = run_cli(["edit", "kill", story, "--out", tmp_path / "o", *args], capsys)
    assert code == 2
    assert needle in one_line_error(err)
    assert not (tmp_path / "o").exists()


def test_zero_sites_and_existing_destination_refused(tmp_path, capsys):
    src = write_token_corpus(tmp_path / "plain", np.array([tid(" the"), tid(" she"), 0] * 50), 40)
    code, _, err = run_cli(["edit", "kill", src, "--rule", "pronoun_gender_ref", "--rate", "1", "--out",
                            tmp_path / "o"], capsys)
    assert code == 2 and "no eligible site" in one_line_error(err)
    assert not (tmp_path / "o").exists()
    (tmp_path / "o").mkdir()
    code, _, err = run_cli(["edit", "kill", src, "--rule", "pronoun_gender_ref", "--rate", "1", "--out",
                            tmp_path / "o"], capsys)
    assert code == 2 and "already exists" in one_line_error(err)


def test_cli_kill_reports_counts(story, tmp_path, capsys):
    code, out, _ = run_cli(["edit", "kill", story, "--rule", "plural_was_were", "--rate", "0.9", "--seed", "1",
                            "--out", tmp_path / "k"], capsys)
    assert code == 0
    m = Corpus(tmp_path / "k").manifest.source
    assert f"{m['flipped_sites']:,} of {m['eligible_sites']:,}" in out


def test_an_exact_kill_refuses_a_count_one_off_that_the_old_1pct_tolerance_passed(story, tmp_path, monkeypatch):
    from pathlib import Path

    from ungrok.edit import kill as kill_mod

    real = kill_mod._measure

    def one_off(corpus, spec, workers, rules_dir):  # noqa: ANN001, ANN202
        row = dict(real(corpus, spec, workers, rules_dir))
        if Path(corpus).resolve() != Path(story).resolve():  # the edited output: one rule event too many
            row["rule_events"] += 1
        return row

    monkeypatch.setattr(kill_mod, "_measure", one_off)
    with pytest.raises(UngrokError) as e:
        kill_corpus(story, tmp_path / "k", "pronoun_gender_ref", 0.437, seed=11)
    msg = str(e.value)
    assert "\n" not in msg and "the flips predict exactly" in msg and "the edit is refused" in msg
    assert not (tmp_path / "k").exists()  # nothing half-written
    # the same kill, counted right, with the numbers the off-by-one would have shown: within the old 1%
    monkeypatch.setattr(kill_mod, "_measure", real)
    s = kill_corpus(story, tmp_path / "ok", "pronoun_gender_ref", 0.437, seed=11)["support"]
    r, p = s["after"]["rule_events"], s["after"]["prior_events"]
    assert abs((r + 2) / (p + 1) - (r + 1) / (p + 1)) / ((r + 1) / (p + 1)) < 0.01
    assert (s["exact"], s["inexact_reason"], s["tolerance"], s["passed"]) == (True, None, 0.0, True)


def test_support_check_requires_equality_unless_the_plan_is_inexact():
    from ungrok.edit.kill import TOLERANCE, support_check

    before = {"rule_events": 1000, "prior_events": 500}
    exact = {"rule_events": 600, "prior_events": 900}  # S - F, C + F with F = 400
    ok = support_check("r", before, exact, 0.4, 400, 1000)
    assert ok["passed"] and ok["exact"] and ok["tolerance"] == 0.0 and ok["mismatch"] == 0.0
    off = {"rule_events": 601, "prior_events": 900}  # ratio mismatch 0.17%: under 1%, still refused
    with pytest.raises(UngrokError, match=r"measured 601 rule / 900 prior .* predict exactly 600 / 900"):
        support_check("r", before, off, 0.4, 400, 1000)
    why = "kill flip ' She' -> ' he': creates events"
    loose = support_check("r", before, off, 0.4, 400, 1000, inexact=why)
    assert loose["passed"] and not loose["exact"] and loose["inexact_reason"] == why
    assert loose["tolerance"] == TOLERANCE == 0.01 and 0 < loose["mismatch"] < 0.01
    far = {"rule_events": 700, "prior_events": 900}
    with pytest.raises(UngrokError, match="inexact because kill flip"):
        support_check("r", before, far, 0.4, 400, 1000, inexact=why)
