"""Empirical cue scan: counts equal a naive per-token reference; selection, exclusion, kill --scan."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ungrok.corpus.shards import Corpus
from ungrok.corpus.storyworld import BATTERY_GIRLS, GIRL_NAMES, storyworld_tokenizer
from ungrok.edit.scan import NAME_SHAPE, load_cue_file, scan_cues

from .conftest import one_line_error, ref_window_events, run_cli, tid


@pytest.fixture(scope="module")
def scanned(story):
    return scan_cues(story, "pronoun_gender_ref", min_events=20, min_ratio=3.0)


def test_counts_equal_the_naive_counter(story, scanned):
    toks = Corpus(story).tokens()
    she, he = tid(" she"), tid(" he")
    for row in scanned["scanned"][:6]:  # the most frequent name-shaped tokens
        r, p, _ = ref_window_events(toks, [(row["id"],)], {she}, {he}, 16)
        assert (row["first_rule"], row["first_prior"]) == (r, p)


def test_selection_rule(scanned):
    tok = storyworld_tokenizer()
    for row in scanned["scanned"]:
        assert NAME_SHAPE.match(" " + row["word"])
    chosen = {r["word"] for r in scanned["selected"]}
    for row in scanned["scanned"]:
        passes = (
            row["first_rule"] + row["first_prior"] >= 20
            and row["ratio"] >= 3.0
            and row["word"] not in ("She",)
        )
        assert (row["word"] in chosen) == passes
    assert chosen and chosen <= set(GIRL_NAMES)  # storyworld's girls, never its boys
    ids = set(scanned["cue_ids"])
    for r in scanned["selected"]:
        assert r["id"] in ids and r["bare_id"] == tok.token_to_id(r["word"]) and r["bare_id"] in ids
    share = sum(r["first_rule"] for r in scanned["selected"] if r["word"] in BATTERY_GIRLS)
    assert scanned["battery_share_of_rule_events"] == pytest.approx(share / scanned["rule_events_on_list"])


def test_exclusion_list_applies(story):
    doc = scan_cues(story, "pronoun_gender_ref", min_events=20, min_ratio=3.0, exclude=["Lily", "Emma"])
    chosen = {r["word"] for r in doc["selected"]}
    assert "Lily" not in chosen and "Emma" not in chosen and "Mia" in chosen


def test_cue_files_and_kill_with_scan(story, tmp_path, capsys):
    code, out, _ = run_cli(["edit", "scan", story, "--rule", "pronoun_gender_ref", "--min-events", "20",
                            "--out", tmp_path / "cues.json"], capsys)
    assert code == 0 and "selected" in out
    doc = json.loads((tmp_path / "cues.json").read_text())
    seqs, source = load_cue_file(tmp_path / "cues.json", storyworld_tokenizer())
    assert sorted(s[0] for s in seqs) == doc["cue_ids"] and source["mode"] == "file"
    (tmp_path / "words.txt").write_text("# girls\nLily\nMia\n")
    seqs, _ = load_cue_file(tmp_path / "words.txt", storyworld_tokenizer())
    assert sorted(seqs) == sorted([(tid("Lily"),), (tid(" Lily"),), (tid("Mia"),), (tid(" Mia"),)])
    # a kill from the written cue file and one with --scan use the same list
    code, _, _ = run_cli(["edit", "kill", story, "--rule", "pronoun_gender_ref", "--rate", "1", "--cues",
                          tmp_path / "cues.json", "--out", tmp_path / "k1"], capsys)
    assert code == 0
    code, _, _ = run_cli(["edit", "kill", story, "--rule", "pronoun_gender_ref", "--rate", "1", "--scan",
                          "--min-events", "20", "--out", tmp_path / "k2"], capsys)
    assert code == 0
    a, b = Corpus(tmp_path / "k1"), Corpus(tmp_path / "k2")
    assert np.array_equal(a.tokens(), b.tokens())  # same list either way
    assert b.manifest.source["cues"]["mode"] == "scan"
    code, _, err = run_cli(["edit", "kill", story, "--rule", "pronoun_gender_ref", "--rate", "1", "--cues",
                            tmp_path / "words.txt", "--out", tmp_path / "k3"], capsys)
    assert code == 0, err
    assert Corpus(tmp_path / "k3").manifest.source["cues"]["cue_sequences"] == 4


def test_scan_refuses_non_window_rules_and_bad_files(story, tmp_path, capsys):
    code, _, err = run_cli(
        ["edit", "scan", story, "--rule", "det_an_choice", "--out", tmp_path / "c.json"], capsys
    )
    assert code == 2 and "window rules" in one_line_error(err)
    (tmp_path / "bad.json").write_text("{}")
    code, _, err = run_cli(["edit", "kill", story, "--rule", "pronoun_gender_ref", "--rate", "1", "--cues",
                            tmp_path / "bad.json", "--out", tmp_path / "k"], capsys)
    assert code == 2 and "cue_ids" in one_line_error(err)


def test_scan_thresholds_are_one_constant_everywhere():
    """The CLI, the experiment schema and the scan itself default to the same named thresholds."""
    import inspect

    from ungrok.commands import edit as cmd
    from ungrok.edit.scan import scan_cues
    from ungrok.edit.scan_defaults import MIN_EVENTS, MIN_RATIO
    from ungrok.experiment.spec import KillSpec

    want = {"min_events": MIN_EVENTS, "min_ratio": MIN_RATIO}
    for fn in (scan_cues, cmd.kill, cmd.ladder, cmd.scan):
        params = inspect.signature(fn).parameters
        assert {k: params[k].default for k in want} == want, fn.__name__
    spec = KillSpec(parent="base", rule="r", rate=0.5)
    assert (spec.min_events, spec.min_ratio) == (MIN_EVENTS, MIN_RATIO)
