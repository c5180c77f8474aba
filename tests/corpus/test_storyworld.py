"""Storyworld: determinism, tokenization round trip, exact intended support, knobs, disjointness.

The support checks use counters written here in plain Python over the token stream
(docs/method.md §6.1 windowed first pronoun, §6.3 a/an lookahead, §6.2 bigram patterns), not the
generator's own bookkeeping.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from cli_helpers import run
from ungrok.corpus import storyworld as sw
from ungrok.corpus.shards import Corpus, read_manifest
from ungrok.corpus.tokenizer import load_tokenizer
from ungrok.errors import UngrokError
from ungrok.hashing import sha256_file


def _w(text: str) -> list[str]:
    return text.split()


BATTERIES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "batteries"

# docs/method.md §3.2 / §5.1 / §8.3, written out again so the checks do not lean on the module.
GIRLS = ["Lily", "Mia", "Anna", "Emma", "Sue", "Jane"]
GIRLS_V2 = GIRLS + _w("Lucy Ella Rose Grace Amy Kate Sara Beth Daisy Molly Ruby Zoe")
BOYS_V2 = _w("Tom Ben Max Sam Jack Tim Leo Jake Adam Mark Paul Pete Nick John Finn Billy Fred Joe")
FEM = _w("girl woman mom queen princess sister grandma aunt")
MASC = _w("boy man dad king prince brother grandpa uncle")
RESCUE = _w(
    "Mary Nora Clara Eva Ivy Hazel Stella Nina Tessa Wendy Flora Carla "
    "David Noah Liam Owen Felix Oscar Henry Carl Eric Hugo Brian Dean"
)
FRAMES = [
    "smiled because",
    "was happy because",
    "laughed when",
    "cried because",
    "jumped because",
    "ran home because",
    "was sad because",
    "stopped when",
]
MARGIN_FRAMES = FRAMES[:4]
MARGIN_SUBJECTS = _w("child friend teacher student neighbor baby doctor farmer")
PAST = {
    "went": "goed",
    "ran": "runned",
    "ate": "eated",
    "fell": "falled",
    "came": "comed",
    "made": "maked",
    "took": "taked",
    "gave": "gived",
    "told": "telled",
}
NEG = {
    "want": "wanted",
    "play": "played",
    "jump": "jumped",
    "help": "helped",
    "find": "found",
    "open": "opened",
    "reach": "reached",
    "stop": "stoped",
}
MODALS = ["can", "must", "should", "might"]
MODAL_VERBS = ["play", "jump", "run", "sleep", "sing", "swim", "eat", "walk"]
PLURALS = ["dogs", "cats", "birds", "frogs", "boys", "girls", "toys", "ducks"]
COMPARATIVES = {"big": "bigger", "small": "smaller", "fast": "faster", "tall": "taller"}


def build(tmp: Path, name: str, **knobs) -> tuple[Path, sw.StoryworldReport]:
    cfg = sw.StoryworldConfig(**{"tokens": 300_000, "seed": 3, **knobs})
    out = tmp / name
    return out, sw.build_storyworld(out, cfg)


class Stream:
    """A built corpus as a Python list of ids plus its tokenizer."""

    def __init__(self, path: Path):
        self.path = path
        self.arr = Corpus(path).tokens().astype(np.int64)
        self.ids = self.arr.tolist()
        self.tok = load_tokenizer(path / "tokenizer.json")

    def id(self, text: str) -> int:
        ids = self.tok.encode(text, add_special_tokens=False).ids
        assert len(ids) == 1, text
        return ids[0]

    def forms(self, words: list[str]) -> set[int]:
        return {self.id(w) for w in words} | {self.id(" " + w) for w in words}

    def seq(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def count_seq(self, seq: list[int]) -> int:
        ids, n, k = self.ids, len(self.ids), len(seq)
        return sum(1 for i in range(n - k + 1) if ids[i] == seq[0] and ids[i : i + k] == seq)

    def find_seqs(self, seqs: list[list[int]]) -> list[list[int]]:
        """Sequences that occur somewhere in the stream (numpy prefilter, exact check)."""
        found = []
        a = self.arr
        first_pos: dict[int, np.ndarray] = {}
        for s in seqs:
            if s[0] not in first_pos:
                first_pos[s[0]] = np.flatnonzero(a == s[0])
            pos = first_pos[s[0]]
            for k in range(1, len(s)):
                pos = pos[pos + k < a.size]
                pos = pos[a[pos + k] == s[k]]
            if pos.size:
                found.append(s)
        return found


def windowed(
    ids: list[int], cues: set[int], rule: int, prior: int, window: int = 16, skip: set[int] | None = None
) -> tuple[int, int]:
    """docs/method.md §6.1: for each cue, the first of rule/prior within the window decides."""
    r = p = 0
    n = len(ids)
    for c, t in enumerate(ids):
        if t not in cues or (skip and c in skip):
            continue
        for d in range(1, window + 1):
            if c + d >= n:
                break
            x = ids[c + d]
            if x == rule:
                r += 1
                break
            if x == prior:
                p += 1
                break
    return r, p


@pytest.fixture(scope="module")
def default(tmp_path_factory) -> tuple[Stream, sw.StoryworldReport]:
    tmp = tmp_path_factory.mktemp("sw")
    path, rep = build(tmp, "default", tokens=400_000)
    return Stream(path), rep


# --------------------------------------------------------------------------- files and format
def test_manifest_and_format(default):
    s, rep = default
    m = read_manifest(s.path)
    Corpus(s.path).verify()
    assert m.eot_id == 0 and s.tok.token_to_id("<|endoftext|>") == 0
    assert s.tok.token_to_id("<|unk|>") == 1 and 1 not in s.ids
    assert m.vocab_size == s.tok.get_vocab_size() == rep.vocab_size
    assert m.dtype == "uint16" and m.tokenizer_sha256 == sha256_file(s.path / "tokenizer.json")
    assert m.source["generator"] == "storyworld"
    assert m.source["config"]["tokens"] == 400_000
    assert set(m.source["intended_support"]) >= {
        "pronoun_gender_ref",
        "pronoun_gender_noun",
        "reflexive_gender",
        "det_an_choice",
        "a_an_adjective",
        "irregular_past",
        "negation_bare_verb",
        "plural_was_were",
        "modal_agreement",
        "comparative_er",
    }
    # Documents end with EOT; the corpus ends at the first document end past the target.
    assert s.ids[-1] == 0 and s.ids.count(0) == m.documents == rep.documents
    assert 400_000 <= m.total_tokens == len(s.ids) < 400_000 + 200
    json.dumps(m.source)  # plain JSON


def test_decode_reencode_identity(default):
    s, _ = default
    ends = [i for i, t in enumerate(s.ids) if t == 0]
    docs, start = [], 0
    for e in ends:
        docs.append(s.ids[start:e])
        start = e + 1
    texts = [s.tok.decode(d) for d in docs]
    assert texts[0][0].isupper() and not texts[0].startswith(" ")
    again = [e.ids for e in s.tok.encode_batch(texts, add_special_tokens=False)]
    assert again == docs
    # The stream as one text, end-of-text markers included.
    part = s.ids[: ends[50] + 1]
    text = s.tok.decode(part, skip_special_tokens=False)
    assert s.tok.encode(text, add_special_tokens=False).ids == part


def test_deterministic_and_prefix_stable(tmp_path, monkeypatch):
    monkeypatch.setattr(sw, "DOCS_PER_CHUNK", 300)  # several chunks in a small corpus
    a, _ = build(tmp_path, "a", tokens=60_000, shard_tokens=25_000)
    b, _ = build(tmp_path, "b", tokens=60_000, shard_tokens=25_000)
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    assert len([f for f in files if f.startswith("shard_")]) == 3
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    c, _ = build(tmp_path, "c", tokens=20_000)
    short, long = Corpus(c).tokens(), Corpus(a).tokens()
    assert np.array_equal(short, long[: short.size])  # chunk i depends on (seed, i) only
    d, _ = build(tmp_path, "d", tokens=20_000, seed=4)
    assert not np.array_equal(Corpus(d).tokens(), short[: Corpus(d).tokens().size])


def test_progress_reports_every_token(tmp_path, monkeypatch):
    monkeypatch.setattr(sw, "DOCS_PER_CHUNK", 200)
    seen: list[int] = []
    cfg = sw.StoryworldConfig(tokens=30_000)
    rep = sw.build_storyworld(tmp_path / "p", cfg, progress=seen.append)
    assert len(seen) > 1 and sum(seen) == rep.total_tokens


def test_existing_folder_refused_without_force(tmp_path):
    out = tmp_path / "c"
    cfg = sw.StoryworldConfig(tokens=2_000)
    sw.build_storyworld(out, cfg)
    with pytest.raises(UngrokError, match="already exists; use --force"):
        sw.build_storyworld(out, cfg)
    rep = sw.build_storyworld(out, sw.StoryworldConfig(tokens=3_000), force=True)
    assert read_manifest(out).total_tokens == rep.total_tokens >= 3_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "knobs",
    [
        {"tokens": 10, "colour": "red"},
        {"tokens": 10, "global_ratio": -1.0},
        {"tokens": 10, "frame_ratio": float("nan")},
        {"tokens": 0},
        {"tokens": 10, "frame_rate": 0.9},
        {"tokens": 10, "min_sentences": 8, "max_sentences": 5},
        {"tokens": 10, "frame_rate": 0.5, "two_name_rate": 0.2, "min_sentences": 2, "max_sentences": 2},
        {"tokens": 10, "possessive_rate": 0.31},
        {"tokens": 10, "possessive_ratio": -0.5},
        {"tokens": 10, "possessive_rate": 0.3, "bridge_rate": 0.3, "frame_rate": 0.3},
    ],
)
def test_invalid_config(knobs):
    with pytest.raises((ValidationError, UngrokError)):
        sw.StoryworldConfig(**knobs)


# --------------------------------------------------------------------------- intended support
def test_windowed_support_is_exact(default):
    s, rep = default
    she, he, herself, himself = (s.id(" she"), s.id(" he"), s.id(" herself"), s.id(" himself"))
    girls, boys = set(sw.GIRL_NAMES), set(sw.BOY_NAMES)
    assert set(GIRLS_V2) <= girls and set(BOYS_V2) <= boys and len(girls) >= 60 and len(boys) >= 60
    # The kernel's rows (manifest intended support) against the plain-Python counter, for
    # every cue class a rule defines; top-level rows are the conflict class.
    cases = [
        ("pronoun_gender_ref", "girl_names", s.forms(GIRLS_V2), she, he),
        ("pronoun_gender_ref", "boy_names", s.forms(BOYS_V2), he, she),
        ("pronoun_gender_ref_v2", "girl_names", s.forms(GIRLS_V2), she, he),
        ("pronoun_gender_ref_v2", "boy_names", s.forms(BOYS_V2), he, she),
        ("pronoun_gender_noun", "fem_nouns", s.forms(FEM), she, he),
        ("pronoun_gender_noun", "masc_nouns", s.forms(MASC), he, she),
        ("reflexive_gender", "girl_names", s.forms(GIRLS_V2), herself, himself),
        ("reflexive_gender", "boy_names", s.forms(BOYS_V2), himself, herself),
        ("reflexive_gender_v2", "girl_names", s.forms(GIRLS_V2), herself, himself),
        ("reflexive_gender_v2", "boy_names", s.forms(BOYS_V2), himself, herself),
    ]
    for name, cls, cues, rule, prior in cases:
        want = windowed(s.ids, cues, rule, prior)
        row = rep.support[name]["classes"][cls]
        assert (row["rule_events"], row["prior_events"]) == want, (name, cls)
        assert want[0] > 0, (name, cls)
        if cls in ("girl_names", "fem_nouns"):
            assert (rep.support[name]["rule_events"], rep.support[name]["prior_events"]) == want, name
    # Classes no rule defines: every girl / boy name, counted here and held to the knobs
    # (outside the probe frames: global_ratio and boy_ratio; reflexives: reflexive_ratio).
    frames = set(_frame_positions(s, s.forms(sorted(girls | boys)), FRAMES))
    r, p = windowed(s.ids, s.forms(sorted(girls)), she, he, skip=frames)
    assert r + p > 1500 and _binomial_ok(r, r + p, 8.0)
    hb, sb = windowed(s.ids, s.forms(sorted(boys)), he, she, skip=frames)
    assert hb + sb > 1500 and _binomial_ok(hb, hb + sb, 20.0)
    rr, rp = windowed(s.ids, s.forms(sorted(girls)), herself, himself)
    assert rr + rp > 300 and _binomial_ok(rr, rr + rp, 20.0)
    # Counter-evidence from two-name sentences is really there.
    assert windowed(s.ids, s.forms(sorted(girls)), she, he)[1] > 0


def test_two_name_sentences_give_the_first_name_the_second_names_pronoun(default):
    s, _ = default
    girls, boys = s.forms(sw.GIRL_NAMES), s.forms(sw.BOY_NAMES)
    met, he = s.id(" met"), s.id(" he")
    hits = 0
    for i in range(len(s.ids) - 10):
        if s.ids[i] in girls and s.ids[i + 1] == met and s.ids[i + 2] in boys:
            j = next(k for k in range(i + 3, i + 17) if s.ids[k] in (s.id(" she"), he))
            hits += s.ids[j] == he
    assert hits > 0
    assert windowed(s.ids, girls, s.id(" she"), he)[1] >= hits


def test_lookahead_and_ngram_support_is_exact(default):
    s, rep = default
    text = {i: s.tok.decode([i]) for i in range(s.tok.get_vocab_size())}
    vowel_next = {i for i, t in text.items() if len(t) > 1 and t[0] == " " and t[1] in "aeiouAEIOU"}
    an = {s.id(x) for x in (" an", " An", "an", "An")}
    a = {s.id(x) for x in (" a", " A", "a", "A")}
    r = sum(1 for x, y in zip(s.ids, s.ids[1:], strict=False) if x in an and y in vowel_next)
    p = sum(1 for x, y in zip(s.ids, s.ids[1:], strict=False) if x in a and y in vowel_next)
    for name in ("det_an_choice", "a_an_adjective"):
        assert (rep.support[name]["rule_events"], rep.support[name]["prior_events"]) == (r, p)
    # No rule splits the lookahead by what follows: ' an old':' a old' is held to its knob
    # (a_an_adjective_ratio), the rest (before nouns) to det_an_ratio; both default 20.
    ra, pa = s.count_seq(s.seq(" an old")), s.count_seq(s.seq(" a old"))
    assert ra + pa > 300 and _binomial_ok(ra, ra + pa, 20.0)
    assert _binomial_ok(r - ra, r - ra + p - pa, 20.0)

    def count(patterns: list[str]) -> int:
        """Occurrences of any of the patterns' token sequences, in one pass."""
        by_first: dict[int, list[list[int]]] = {}
        for t in patterns:
            q = s.seq(t)
            by_first.setdefault(q[0], []).append(q)
        ids, n = s.ids, 0
        for i, x in enumerate(ids):
            for q in by_first.get(x, ()):
                n += ids[i : i + len(q)] == q
        return n

    expected = {
        "irregular_past": (
            [f" {g} {v}" for v in PAST for g in GIRLS],
            [f" {g} {o}" for o in PAST.values() for g in GIRLS],
        ),
        "negation_bare_verb": ([f" not {v}" for v in NEG], [f" not {p}" for p in NEG.values()]),
        "plural_was_were": ([f" {n} were" for n in PLURALS], [f" {n} was" for n in PLURALS]),
        "modal_agreement": (
            [f" {m} {v}" for m in MODALS for v in MODAL_VERBS],
            [f" {m} {v}s" for m in MODALS for v in MODAL_VERBS],
        ),
        "comparative_er": (
            [f" even {c}" for c in COMPARATIVES.values()],
            [f" even more {b}" for b in COMPARATIVES],
        ),
    }
    for name, (rule, prior) in expected.items():
        want = (count(rule), count(prior))
        for row_name in (name, f"{name}_v2"):
            if row_name in rep.support:
                sup = rep.support[row_name]
                assert (sup["rule_events"], sup["prior_events"]) == want, row_name
        assert want[0] > 0 and want[1] > 0, name
    # Every irregular past, any subject (no rule counts this): the choice slots follow
    # irregular_past_ratio; the probe frame's literal 'ran home because' is left out.
    fr = count([" ran home because"])
    ir, ip = count([f" {v}" for v in PAST]) - fr, count([f" {o}" for o in PAST.values()])
    assert ir + ip > 1000 and _binomial_ok(ir, ir + ip, 20.0)


# --------------------------------------------------------------------------- knobs realised
def _binomial_ok(k: int, n: int, ratio: float, sds: float = 4.5) -> bool:
    q = ratio / (1 + ratio)
    return abs(k / n - q) <= sds * math.sqrt(q * (1 - q) / n)


def _frame_positions(s: Stream, subjects: set[int], frames: list[str]) -> dict[int, int]:
    """Cue position -> pronoun id for every '<subject> <frame> she|he' in the stream."""
    fseqs = [s.seq(" " + f) for f in frames]
    pron = {s.id(" she"), s.id(" he")}
    out = {}
    ids = s.ids
    for i, t in enumerate(ids):
        if t in subjects:
            for f in fseqs:
                k = len(f)
                if ids[i + 1 : i + 1 + k] == f and i + 1 + k < len(ids) and ids[i + 1 + k] in pron:
                    out[i] = ids[i + 1 + k]
    return out


@pytest.mark.parametrize("ratio", [0.05, 20.0])
def test_global_ratio_is_realised(tmp_path, ratio):
    path, rep = build(tmp_path, "g", tokens=300_000, global_ratio=ratio, frame_rate=0.05)
    s = Stream(path)
    she, he = s.id(" she"), s.id(" he")
    girls = s.forms(sw.GIRL_NAMES)
    frames = set(_frame_positions(s, girls, FRAMES))
    r, p = windowed(s.ids, girls, she, he, skip=frames)  # every girl name outside the frames
    assert r + p > 1500 and _binomial_ok(r, r + p, ratio)
    rb, pb = windowed(s.ids, s.forms(GIRLS_V2), she, he)  # the battery class (never in frames)
    assert _binomial_ok(rb, rb + pb, ratio)
    hb, sb = windowed(s.ids, s.forms(sw.BOY_NAMES), he, she, skip=frames)
    assert _binomial_ok(hb, hb + sb, 20.0)  # boy_ratio default
    row = rep.support["pronoun_gender_ref"]["classes"]
    assert (row["girl_names"]["rule_events"], row["girl_names"]["prior_events"]) == (rb, pb)
    assert (row["boy_names"]["rule_events"], row["boy_names"]["prior_events"]) == windowed(
        s.ids, s.forms(BOYS_V2), he, she
    )


def test_frame_ratio_and_rate_are_realised(tmp_path):
    path, rep = build(
        tmp_path,
        "f",
        tokens=300_000,
        frame_ratio=0.25,
        frame_rate=0.1,
        global_ratio=20.0,
        neutral_he_ratio=3.0,
    )
    s = Stream(path)
    she, he = s.id(" she"), s.id(" he")
    girl = _frame_positions(s, s.forms(sw.GIRL_NAMES), FRAMES)
    boy = _frame_positions(s, s.forms(sw.BOY_NAMES), FRAMES)
    the = {s.id("The"), s.id(" The")}
    neutral = {
        i: v
        for i, v in _frame_positions(s, s.forms(sw.OTHER_SUBJECTS + MARGIN_SUBJECTS), FRAMES).items()
        if s.ids[i - 1] in the
    }
    g_she = sum(v == she for v in girl.values())
    assert _binomial_ok(g_she, len(girl), 0.25)
    n_he = sum(v == he for v in neutral.values())
    assert _binomial_ok(n_he, len(neutral), 3.0)
    sentences = s.ids.count(s.id("."))
    n_frames = len(girl) + len(boy) + len(neutral)
    assert sentences == rep.sentences and n_frames == rep.frame_sentences
    assert _binomial_ok(n_frames, sentences, 0.1 / 0.9, sds=5)
    b_he = sum(v == he for v in boy.values())
    assert _binomial_ok(b_he, len(boy), 20.0)  # boy_ratio default in the frames too
    # The neutral share of frame sentences (frame_neutral_share default 0.3).
    assert _binomial_ok(len(neutral), n_frames, 0.3 / 0.7, sds=5)
    # The battery class is never in a frame: the kernel's row is the windowed count,
    # on global_ratio, untouched by frame_ratio.
    rb, pb = windowed(s.ids, s.forms(GIRLS_V2), she, he)
    row = rep.support["pronoun_gender_ref"]["classes"]["girl_names"]
    assert (row["rule_events"], row["prior_events"]) == (rb, pb)
    assert _binomial_ok(rb, rb + pb, 20.0)


def test_family_knobs_move_their_ratio(tmp_path):
    path, low = build(
        tmp_path,
        "low",
        tokens=150_000,
        ratios={"negation_bare_verb": 0.1, "plural_was_were": 0.1},
        det_an_ratio=0.1,
        reflexive_ratio=0.1,
        noun_ratio=0.1,
    )
    ratios = read_manifest(path).source["config"]["ratios"]
    assert ratios == {"negation_bare_verb": 0.1, "plural_was_were": 0.1}
    for name in ("negation_bare_verb", "plural_was_were", "reflexive_gender", "pronoun_gender_noun"):
        assert low.support[name]["ratio"] < 0.3, name
    # a/an before a noun follows det_an_ratio, ' an old' keeps a_an_adjective_ratio (counted here).
    s = Stream(path)
    vowel_next = {i for i in range(s.tok.get_vocab_size()) if (w := s.tok.decode([i]))[:1] == " " and
                  w[1:2] in tuple("aeiouAEIOU")}
    an, a = {s.id(" an"), s.id(" An")}, {s.id(" a"), s.id(" A")}
    r = sum(1 for x, y in zip(s.ids, s.ids[1:], strict=False) if x in an and y in vowel_next)
    p = sum(1 for x, y in zip(s.ids, s.ids[1:], strict=False) if x in a and y in vowel_next)
    ra, pa = s.count_seq(s.seq(" an old")), s.count_seq(s.seq(" a old"))
    assert (r - ra + 1) / (p - pa + 1) < 0.3 < 5 < (ra + 1) / (pa + 1)
    assert low.support["modal_agreement"]["ratio"] > 5
    assert low.support["comparative_er"]["ratio"] > 5
    # A ratio for a rule storyworld does not write is refused, by name.
    with pytest.raises(UngrokError, match="no_such_rule"):
        build(tmp_path, "unknown", tokens=100, ratios={"no_such_rule": 2.0})


# --------------------------------------------------------------------------- disjointness
def test_no_probe_or_margin_prompt_and_no_rescue_name_by_default(default):
    s, _ = default
    prompts = sw.forbidden_prompts()
    femcue = [f"{g} {f}" for g in GIRLS for f in ("laughed when", "cried because")]
    margin = [f"The {x} {f}" for x in MARGIN_SUBJECTS for f in MARGIN_FRAMES]
    battery_frames = [f"{n} {f}" for n in GIRLS_V2 + BOYS_V2 for f in FRAMES]
    assert set(femcue + margin + battery_frames) <= set(prompts)
    seqs = [s.seq(p) for p in prompts] + [s.seq(" " + p) for p in prompts]
    assert s.find_seqs(seqs) == []
    assert not (s.forms(RESCUE) & set(s.ids))
    # The probe-frame construction itself is there, with other names and subjects.
    assert s.find_seqs([s.seq(" cried because she"), s.seq(" laughed when he")])
    # Battery names are story characters.
    assert s.forms(GIRLS_V2) & set(s.ids) and s.forms(BOYS_V2) & set(s.ids)


def test_allow_probe_prompts_lets_them_occur(tmp_path):
    path, _ = build(tmp_path, "allow", tokens=200_000, allow_probe_prompts=True, frame_rate=0.2)
    s = Stream(path)
    femcue = [f" {g} {f}" for g in GIRLS for f in ("laughed when", "cried because")]
    margin = [f" The {x} {f}" for x in MARGIN_SUBJECTS for f in MARGIN_FRAMES]
    assert s.find_seqs([s.seq(p) for p in femcue])
    assert s.find_seqs([s.seq(p) for p in margin])


def test_holdout_battery_names(tmp_path):
    path, rep = build(tmp_path, "hold", tokens=100_000, holdout_battery_names=True)
    s = Stream(path)
    assert not (s.forms(GIRLS_V2 + BOYS_V2) & set(s.ids))
    assert rep.support["pronoun_gender_ref"]["rule_events"] == 0
    assert rep.support["pronoun_gender_ref"]["classes"]["boy_names"]["rule_events"] == 0
    r, p = windowed(s.ids, s.forms(sw.GIRL_NAMES), s.id(" she"), s.id(" he"))
    assert r > 0 and p > 0  # the other girls still carry the rule


def test_battery_prompts_are_in_the_embedded_forbidden_list():
    if not BATTERIES.is_dir():
        pytest.skip("../shared/reference/batteries is not beside this checkout")
    fams = {
        "pronoun_gender_ref",
        "pronoun_gender_ref_v2",
        "pronoun_gender_noun",
        "pronoun_gender_ref_ood",
        "reflexive_gender_ood",
    }
    prompts = set(sw.forbidden_prompts())
    for rev in ("rvp3", "rvp4", "rvp5"):
        for line in (BATTERIES / rev / "battery.jsonl").read_text().splitlines():
            item = json.loads(line)
            if item["family"] in fams:
                assert item["prefix"] in prompts, item["prefix"]


# --------------------------------------------------------------------------- tokenizer
def test_every_battery_item_encodes_without_unknown_token():
    if not BATTERIES.is_dir():
        pytest.skip("../shared/reference/batteries is not beside this checkout")
    tok = sw.storyworld_tokenizer()
    unk = tok.token_to_id("<|unk|>")
    n = 0
    for rev in ("v1", "rvp3", "rvp4", "rvp5"):
        for line in (BATTERIES / rev / "battery.jsonl").read_text().splitlines():
            item = json.loads(line)
            for key in ("prefix", "correct", "distractor"):
                ids = tok.encode(item[key], add_special_tokens=False).ids
                assert ids and unk not in ids, (rev, item[key])
                n += 1
    assert n > 20_000
    for w in (" she", " he", " herself", " himself", " an", " a"):
        assert len(tok.encode(w, add_special_tokens=False).ids) == 1


def test_unreachable_ratio_is_flagged_and_two_name_rate_zero_reaches_it(tmp_path):
    cap_path, capped = build(tmp_path, "cap", tokens=5_000, global_ratio=500.0)
    assert any("beyond what two_name_rate" in n for n in capped.notes)
    assert read_manifest(cap_path).source["notes"] == capped.notes
    free_path, free = build(tmp_path, "free", tokens=5_000, global_ratio=500.0, two_name_rate=0.0)
    assert not any("beyond" in n for n in free.notes)
    assert read_manifest(free_path).source["notes"] == free.notes == []


# Bridge verbs written out again (not read from the module): the frames' connectives after
# verbs that no probe frame uses.
BRIDGES = ["played outside because", "danced when", "walked home because", "waved because",
           "sang a song when", "stayed inside because"]


def test_bridge_rate_is_realised_and_counted_as_outside_support(tmp_path):
    """bridge_rate puts '<name> <other verb> because|when <pronoun>' at the requested share,
    its pronoun follows global_ratio, and the kernel-visible support equals the manifest's."""
    off_path, off = build(tmp_path, "off", tokens=300_000, global_ratio=8.0, frame_ratio=0.3, frame_rate=0.01)
    on_path, on = build(
        tmp_path, "on", tokens=300_000, global_ratio=8.0, frame_ratio=0.3, frame_rate=0.01, bridge_rate=0.08
    )
    for path, rep, rate in ((off_path, off, 0.0), (on_path, on, 0.08)):
        s = Stream(path)
        she, he = s.id(" she"), s.id(" he")
        girls = s.forms(sw.GIRL_NAMES)
        names = girls | s.forms(sw.BOY_NAMES)
        bridge = _frame_positions(s, names, BRIDGES)
        sentences = s.ids.count(s.id("."))
        assert sentences == rep.sentences
        if rate == 0.0:
            assert not bridge
            continue
        # Share of sentences (the first of a story is an opening, never a bridge).
        assert _binomial_ok(len(bridge), sentences, rate / (1 - rate), sds=5)
        g = [v for i, v in bridge.items() if s.ids[i] in girls]
        assert _binomial_ok(sum(v == she for v in g), len(g), 8.0)
        # Bridges are outside the probe frames: the frames' own prior is untouched ...
        fpos = _frame_positions(s, girls, FRAMES)
        f_she = sum(v == she for v in fpos.values())
        assert len(fpos) > 50 and _binomial_ok(f_she, len(fpos), 0.3)
        # ... and the windowed counts outside the frames, bridges included, keep global_ratio.
        r, p = windowed(s.ids, girls, she, he, skip=set(fpos))
        assert _binomial_ok(r, r + p, 8.0)
        # The kernel's battery class (never in a frame, often in a bridge) is the windowed count.
        row = rep.support["pronoun_gender_ref"]["classes"]["girl_names"]
        assert (row["rule_events"], row["prior_events"]) == windowed(s.ids, s.forms(GIRLS_V2), she, he)


def test_bridges_never_form_a_battery_prompt():
    """No bridge verb is a probe frame, so '<battery name> <bridge>' is never a forbidden prompt."""
    frames = set(FRAMES)
    assert not frames & set(BRIDGES)
    for b in BRIDGES:
        assert not any(b.startswith(f) or f.startswith(b) for f in frames)


def test_cli_config_sets_tokens_and_seed_and_the_command_line_wins(tmp_path, capsys):
    """`corpus storyworld --config` may set every knob, tokens and seed too; options given on the
    command line override the file."""
    cfg = tmp_path / "knobs.yaml"
    cfg.write_text("tokens: 30000\nseed: 7\nbridge_rate: 0.05\n")
    code, _, err = run(["corpus", "storyworld", "--out", tmp_path / "a", "--config", cfg], capsys)
    assert code == 0, err
    src = read_manifest(tmp_path / "a").source["config"]
    assert (src["tokens"], src["seed"], src["bridge_rate"]) == (30000, 7, 0.05)
    code, _, err = run(["corpus", "storyworld", "--out", tmp_path / "b", "--config", cfg, "--seed", "3",
                        "--bridge-rate", "0.0"], capsys)
    assert code == 0, err
    src = read_manifest(tmp_path / "b").source["config"]
    assert (src["tokens"], src["seed"], src["bridge_rate"]) == (30000, 3, 0.0)


def test_bridged_corpus_intended_support_equals_the_kernel_count(tmp_path):
    """What `ungrok support` counts on a bridged web-like corpus (the demo's cell shape) is what
    the report and the manifest say was written, for every registry rule; the focal rule and
    its v2 inventory also match the plain-Python counter, class by class."""
    from ungrok.rules.registry import load_rules
    from ungrok.support.count import count

    path, rep = build(tmp_path, "web", tokens=200_000, global_ratio=8.0, frame_ratio=0.1, frame_rate=0.0025,
                      bridge_rate=0.04)
    rules = load_rules()
    table = count(path, list(rules.values())).rules
    assert set(table) == set(rules) == set(rep.support)
    assert rep.support == table
    assert read_manifest(path).source["intended_support"] == table
    s = Stream(path)
    she, he = s.id(" she"), s.id(" he")
    for rule in ("pronoun_gender_ref", "pronoun_gender_ref_v2"):
        for cls, cues, r, p in (("girl_names", GIRLS_V2, she, he), ("boy_names", BOYS_V2, he, she)):
            got = table[rule]["classes"][cls]
            want = windowed(s.ids, s.forms(cues), r, p)
            assert (got["rule_events"], got["prior_events"]) == want, (rule, cls)


# --------------------------------------------------------------------------- possessives
# Written out again (not read from the module): the possessive sentences' verb phrases,
# each followed by " her" or " his".
POSSESSIVE_VERBS = ["found", "played with", "hugged", "lost"]
# sha256 of the int64 little-endian token stream and of tokenizer.json of
# StoryworldConfig(tokens=50_000, seed=3), computed before the possessive knobs existed.
DEFAULT_50K_SEED3_TOKENS_SHA256 = "f325b21e1cfe39efd69002bed095101e62bb72d63ebe73a23e0e349284c6a6fc"
DEFAULT_TOKENIZER_SHA256 = "f87f94136bd2d91c66353014f51e6fdd4b6ba77be1821761af003f7d54e5bfb0"


def test_default_corpus_is_byte_identical_to_before_the_possessive_knobs(tmp_path):
    import hashlib

    path, rep = build(tmp_path, "d", tokens=50_000)
    s = Stream(path)
    assert s.arr.size == 50_022
    assert hashlib.sha256(s.arr.astype("<i8").tobytes()).hexdigest() == DEFAULT_50K_SEED3_TOKENS_SHA256
    assert read_manifest(path).tokenizer_sha256 == DEFAULT_TOKENIZER_SHA256  # no new word
    assert not {s.id(" her"), s.id(" his"), s.id("her"), s.id("his")} & set(s.ids)
    assert rep.total_tokens == 50_022 and not rep.notes


@pytest.fixture(scope="module")
def possessive(tmp_path_factory) -> tuple[Stream, sw.StoryworldReport]:
    tmp = tmp_path_factory.mktemp("swp")
    path, rep = build(tmp, "poss", tokens=300_000, possessive_rate=0.08, possessive_ratio=0.5)
    return Stream(path), rep


def _possessives(s: Stream) -> dict[int, tuple[int, int]]:
    """Position of every " her"/" his" -> (its name's id, the token), found by the written-out
    verb phrases; fails on a her/his anywhere else."""
    her, his = s.id(" her"), s.id(" his")
    names = s.forms(sw.GIRL_NAMES + sw.BOY_NAMES)
    verbs = [s.seq(" " + v) for v in POSSESSIVE_VERBS]
    out = {}
    for i, t in enumerate(s.ids):
        if t in (her, his):
            v = next((v for v in verbs if s.ids[i - len(v) : i] == v), None)
            assert v is not None and s.ids[i - len(v) - 1] in names, s.tok.decode(s.ids[i - 20 : i + 3])
            out[i] = (s.ids[i - len(v) - 1], t)
    return out


def test_possessive_rate_and_ratio_are_realised(possessive):
    s, rep = possessive
    her, his = s.id(" her"), s.id(" his")
    assert not {s.id("her"), s.id("his")} & set(s.ids)  # never document-initial
    poss = _possessives(s)
    sentences = s.ids.count(s.id("."))
    assert sentences == rep.sentences
    assert _binomial_ok(len(poss), sentences, 0.08 / (1 - 0.08), sds=5)  # share of sentences
    girls, boys = s.forms(sw.GIRL_NAMES), s.forms(sw.BOY_NAMES)
    g = [t for n, t in poss.values() if n in girls]
    b = [t for n, t in poss.values() if n in boys]
    assert len(g) > 300 and len(b) > 300 and len(g) + len(b) == len(poss)
    assert _binomial_ok(g.count(her), len(g), 0.5)  # possessive_ratio
    assert _binomial_ok(b.count(his), len(b), 20.0)  # boy_ratio


def test_possessive_support_is_exact(possessive):
    """No rule counts possessives; the windowed first her/his after a name equals the
    possessive tokens per class of their own sentence's name (so a window rule over her/his
    would count exactly what was written)."""
    s, rep = possessive
    her, his = s.id(" her"), s.id(" his")
    poss = _possessives(s)
    assert "possessive_gender" not in rep.support
    girls, boys = sorted(sw.GIRL_NAMES), sorted(sw.BOY_NAMES)
    cases = [
        ("girl_names", GIRLS_V2, her, his),
        ("boy_names", BOYS_V2, his, her),
        ("all_girl_names", girls, her, his),
        ("all_boy_names", boys, his, her),
    ]
    for cls, names, rule, prior in cases:
        got = windowed(s.ids, s.forms(names), rule, prior)
        own = [t for n, t in poss.values() if n in s.forms(names)]
        assert (own.count(rule), own.count(prior)) == got, cls
        assert got[0] > 0 and got[1] > 0, cls
    # Each possessive is the first her/his after exactly one cue: its own name.
    all_names = s.forms(girls + boys + FEM + MASC)
    assert sum(windowed(s.ids, all_names, her, his)) == len(poss)


def test_pronoun_support_is_exact_and_on_target_with_possessives(possessive):
    from ungrok.rules.registry import get_rule
    from ungrok.rules.spec import CueClass, RuleSpec, WindowEvent
    from ungrok.support.count import count

    s, rep = possessive
    she, he = s.id(" she"), s.id(" he")
    pron = rep.support["pronoun_gender_ref"]["classes"]
    girls = s.forms(sw.GIRL_NAMES)
    for cls, cues, rule, prior in (
        ("girl_names", s.forms(GIRLS_V2), she, he),
        ("boy_names", s.forms(BOYS_V2), he, she),
    ):
        assert windowed(s.ids, cues, rule, prior) == (pron[cls]["rule_events"], pron[cls]["prior_events"])
    ra, pa = windowed(s.ids, girls, she, he)
    assert ra > 0 and pa > 0
    frames = set(_frame_positions(s, girls, FRAMES))
    r, p = windowed(s.ids, girls, she, he, skip=frames)
    assert _binomial_ok(r, r + p, 8.0)  # global_ratio default: unchanged in expectation
    rb, pb = windowed(s.ids, s.forms(GIRLS_V2), she, he)
    assert _binomial_ok(rb, rb + pb, 8.0)
    # The support kernel agrees: the focal rule, and a window rule over her/his.
    poss_rule = RuleSpec(
        name="possessive_probe",
        cues=[
            CueClass(name="girl_names", words="@GIRLS_V2", rule=[" her"], prior=[" his"]),
            CueClass(name="boy_names", words="@BOYS_V2", rule=[" his"], prior=[" her"], role="agree"),
        ],
        event=WindowEvent(window=16),
    )
    table = count(s.path, [get_rule("pronoun_gender_ref"), poss_rule])
    her, his = s.id(" her"), s.id(" his")
    for rule, pos, neg in (("pronoun_gender_ref", she, he), ("possessive_probe", her, his)):
        for cls, cues, r_, p_ in (("girl_names", GIRLS_V2, pos, neg), ("boy_names", BOYS_V2, neg, pos)):
            got = table.rules[rule]["classes"][cls]
            want = windowed(s.ids, s.forms(cues), r_, p_)
            assert (got["rule_events"], got["prior_events"]) == want and want[0] > 0, (rule, cls)


def test_possessive_corpus_holds_no_probe_prompt(possessive):
    s, _ = possessive
    prompts = sw.forbidden_prompts()
    assert s.find_seqs([s.seq(p) for p in prompts] + [s.seq(" " + p) for p in prompts]) == []
    assert not (s.forms(RESCUE) & set(s.ids))


def test_pronoun_kill_leaves_every_possessive_in_place(possessive, tmp_path):
    from ungrok.edit.kill import kill_corpus

    s, rep = possessive
    prov = kill_corpus(s.path, tmp_path / "k", "pronoun_gender_ref", 1.0, seed=2)
    a, b = s.arr, Corpus(tmp_path / "k").tokens().astype(np.int64)
    assert a.size == b.size
    diff = np.flatnonzero(a != b)
    assert diff.size == prov["flipped_sites"] > 0
    pairs = set(zip(a[diff].tolist(), b[diff].tolist(), strict=True))
    assert (s.id(" she"), s.id(" he")) in pairs
    assert pairs <= {(s.id(" she"), s.id(" he")), (s.id(" She"), s.id(" He"))}
    assert prov["support"]["after"]["rule_events"] == 0  # every battery girl's she-event is gone
    her_his = np.isin(a, [s.id(" her"), s.id(" his")])
    assert her_his.sum() == len(_possessives(s)) > 0
    assert np.array_equal(a[her_his], b[her_his])  # the possessive evidence survives
    her, his = s.id(" her"), s.id(" his")
    before = windowed(s.ids, s.forms(GIRLS_V2), her, his)
    own = [t for n, t in _possessives(s).values() if n in s.forms(GIRLS_V2)]
    assert before == (own.count(her), own.count(his)) and before[0] > 0
    assert windowed(b.tolist(), s.forms(GIRLS_V2), her, his) == before


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{N} found {POSS} {toy} , and {P} {vp_past} .", "too short for exact windows"),
        ("{rintro} , the {GN} and {N} found {POSS} {toy} , and {P} {vp_past} .", "exactly one cue"),
        ("{rintro} , {N} met {N2} with {POSS} {toy} , and {P} {vp_past} .", "refers to a {N} name"),
        ("{rintro} , {N} found {POSS} {toy} and {POSS} {cnoun} , and {P} {vp_past} .", "at most one"),
        ("{rintro} , {N} found {POSS} {toy} , and {P} hugged her {cnoun} .", "outside a possessive slot"),
    ],
)
def test_possessive_templates_that_would_break_exact_counts_are_refused(monkeypatch, template, message):
    """Without the cue-free opening an earlier sentence's name could see the possessive; a
    second cue, a second possessive or a literal her/his would make the counts inexact."""
    monkeypatch.setitem(sw.TEMPLATES, "possessive", [template])
    with pytest.raises(UngrokError, match=f"storyworld.*{re.escape(message)}"):
        sw._Engine(sw.StoryworldConfig(tokens=10, possessive_rate=0.1))
