"""A rule declared in YAML with a `storyworld:` block is written into the corpus at its knob.

The example is the one docs/rules.md shows, so the page cannot drift from the schema; the
rule's counts are checked against the decoded text, independently of the support kernel.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ungrok.corpus.shards import Corpus
from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld, storyworld_words
from ungrok.corpus.tokenizer import load_tokenizer
from ungrok.errors import UngrokError

DOC = Path(__file__).parents[2] / "docs" / "rules.md"


def _rules_dir(tmp_path: Path, edit: tuple[str, str] | None = None) -> Path:
    block = re.search(r"```yaml\n(name: two_oxen.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block, "docs/rules.md lost its storyworld example"
    text = block.group(1) if edit is None else block.group(1).replace(*edit)
    d = tmp_path / "rules"
    d.mkdir()
    (d / "two_oxen.yaml").write_text(text, encoding="utf-8")
    return d


def _text(corpus: Path) -> str:
    c = Corpus(corpus)
    ids = np.concatenate([np.asarray(c.shard(i)) for i in range(len(c.manifest.shards))])
    return load_tokenizer(c.tokenizer_path).decode(ids.tolist())


@pytest.mark.parametrize(("ratios", "lo", "hi"), [({}, 3.0, 5.5), ({"two_oxen": 0.25}, 0.15, 0.4)])
def test_a_yaml_rule_is_written_at_its_ratio_and_counted(tmp_path, ratios, lo, hi):
    rules = _rules_dir(tmp_path)
    rep = build_storyworld(tmp_path / "c", StoryworldConfig(tokens=150_000, seed=7, ratios=ratios), rules_dir=rules)
    text = _text(tmp_path / "c")
    oxen, oxes = len(re.findall(r" two oxen\b", text)), len(re.findall(r" two oxes\b", text))
    assert oxen + oxes > 300  # weight 0.05 of ~10k story sentences
    row = rep.support["two_oxen"]
    assert (row["rule_events"], row["prior_events"]) == (oxen, oxes)
    assert lo < oxen / oxes < hi
    assert "two_oxen" in Corpus(tmp_path / "c").manifest.source["expressed_rules"]


def test_new_words_extend_only_that_corpus_lexicon(tmp_path):
    build_storyworld(tmp_path / "c", StoryworldConfig(tokens=20_000), rules_dir=_rules_dir(tmp_path))
    vocab = load_tokenizer(Corpus(tmp_path / "c").tokenizer_path).get_vocab()
    assert {"Ġoxen", "Ġoxes"} <= set(vocab)
    assert not {"oxen", "oxes"} & set(storyworld_words()[0])


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (("ran past {CHOICE}", "ran past {CHOICE} near {pond}"), "unknown slot {pond}"),
        (("[two oxen, two oxes]", "[two oxen!, two oxes]"), "'oxen!' is neither"),
        (("{N} saw {CHOICE}", "She saw {CHOICE}"), "{P} has no subject before it"),
    ],
)
def test_a_template_storyworld_cannot_write_is_refused(tmp_path, edit, fragment):
    rules = _rules_dir(tmp_path, edit)
    with pytest.raises(UngrokError, match=re.escape(fragment)):
        build_storyworld(tmp_path / "c", StoryworldConfig(tokens=5_000), rules_dir=rules)


def test_a_ratio_for_a_rule_storyworld_does_not_write_is_refused(tmp_path):
    with pytest.raises(UngrokError, match="ratios name pronoun_gender_ref"):
        build_storyworld(tmp_path / "c", StoryworldConfig(tokens=5_000, ratios={"pronoun_gender_ref": 2}))
