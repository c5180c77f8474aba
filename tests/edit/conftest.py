"""Shared inputs for the edit tests: small storyworld corpora, random corpora, slow references.

The references are deliberately naive (per-site Python loops straight from docs/method.md §6.1,
§6.3, §8.1-8.2) so the vectorised editor is checked against an independent reading of
the method, not against itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ungrok.corpus.shards import TOKENIZER, Manifest, ShardWriter, write_manifest
from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld, storyworld_tokenizer
from ungrok.hashing import sha256_file


def run_cli(args, capsys):
    """(exit code, stdout, stderr) of `ungrok ARGS`."""
    from ungrok.cli import main

    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = e.code or 0
    c = capsys.readouterr()
    return code, c.out, c.err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error:")
    return lines[0]


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> Path:
    """A 200k-token storyworld corpus in 64k-token shards (windows cross shard files)."""
    path = tmp_path_factory.mktemp("story") / "sw"
    build_storyworld(path, StoryworldConfig(tokens=200_000, seed=7, shard_tokens=64_000))
    return path


def write_token_corpus(
    path: Path, ids: np.ndarray, shard_tokens: int, tokenizer_json: str | None = None
) -> Path:
    """A corpus folder holding exactly `ids` (storyworld's tokenizer unless given)."""
    tok_json = tokenizer_json or storyworld_tokenizer().to_str()
    path.mkdir(parents=True)
    (path / TOKENIZER).write_text(tok_json, encoding="utf-8")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tok_json)
    vocab = tok.get_vocab_size()
    eot = tok.token_to_id("<|endoftext|>")
    w = ShardWriter(path, "uint16", shard_tokens)
    w.write(np.asarray(ids, dtype=np.int64), documents=int(np.count_nonzero(np.asarray(ids) == eot)))
    shards = w.finish()
    write_manifest(
        path,
        Manifest(
            dtype="uint16",
            vocab_size=vocab,
            eot_id=eot,
            tokenizer_sha256=sha256_file(path / TOKENIZER),
            total_tokens=int(len(ids)),
            documents=w.documents,
            shards=shards,
            source={"generator": "test"},
        ),
    )
    return path


def tid(text: str) -> int:
    ids = storyworld_tokenizer().encode(text, add_special_tokens=False).ids
    assert len(ids) == 1, text
    return ids[0]


USER_RULE = """
name: my_rescue
cues:
  - {name: girls, words: [Mary], rule: [" she"], prior: [" he"]}
event: {kind: window, window: 16}
rescue:
  rule_class: {names: NAMES, pronoun: she}
  control_class: {names: [David], pronoun: he}
  frames: FRAMES
"""


def user_rule(tmp_path, names: str, frames: str):
    """A rules folder with one user rule `my_rescue` whose rescue names and frames are given (YAML)."""
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "my_rescue.yaml").write_text(USER_RULE.replace("NAMES", names).replace("FRAMES", frames))
    return d


# ---------------------------------------------------------------------- slow references
def ref_window_sites(tokens, cue_seqs, channels, window):
    """docs/method.md §8.1 as written: per cue and channel, the first source if before the first target."""
    toks = [int(t) for t in tokens]
    n = len(toks)
    sites = {}
    for i in range(n):
        for seq in cue_seqs:
            L = len(seq)
            if toks[i : i + L] != list(seq):
                continue
            c = i + L - 1
            for k, (src, dst) in enumerate(channels):
                nf = next((j for j in range(c + 1, n) if toks[j] == src), None)
                nm = next((j for j in range(c + 1, n) if toks[j] == dst), None)
                if nf is not None and nf - c <= window and (nm is None or nf < nm):
                    sites[nf] = k
    return sites


def ref_window_events(tokens, cue_seqs, rule_ids, prior_ids, window):
    """docs/method.md §6.1 counter: (rule events, prior events, targets of the rule events with
    multiplicity)."""
    toks = [int(t) for t in tokens]
    n = len(toks)
    rule = prior = 0
    targets = []
    for i in range(n):
        for seq in cue_seqs:
            L = len(seq)
            if toks[i : i + L] != list(seq):
                continue
            c = i + L - 1
            ns = next((j for j in range(c + 1, n) if toks[j] in rule_ids), None)
            nh = next((j for j in range(c + 1, n) if toks[j] in prior_ids), None)
            ds = ns - c if ns is not None else 10**9
            dh = nh - c if nh is not None else 10**9
            if ds <= window and ds < dh:
                rule += 1
                targets.append(ns)
            elif dh <= window and dh < ds:
                prior += 1
    return rule, prior, targets


def ref_lookahead_sites(tokens, channels, next_ok):
    """docs/method.md §6.3 / §8.2: an an-channel token followed by an accepted (space + vowel) token."""
    toks = [int(t) for t in tokens]
    src = {s: k for k, (s, _) in enumerate(channels)}
    return {i: src[t] for i, t in enumerate(toks[:-1]) if t in src and next_ok[toks[i + 1]]}


def ref_draws(sites: dict[int, int], shard_starts: list[int], seed: int, rate: float) -> set[int]:
    """Which sites flip: shard i draws default_rng([seed, i]), one uniform per site in order."""
    flipped = set()
    for i in range(len(shard_starts) - 1):
        mine = sorted(p for p in sites if shard_starts[i] <= p < shard_starts[i + 1])
        u = np.random.default_rng([seed, i]).random(len(mine))
        flipped |= {p for p, x in zip(mine, u, strict=True) if x < rate}
    return flipped
