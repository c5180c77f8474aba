"""Ladders: one pass, nested flips, each rung identical to a separate kill at the same seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ungrok.corpus.shards import Corpus
from ungrok.edit.kill import kill_corpus
from ungrok.edit.ladder import build_ladder, rung_name

from .conftest import one_line_error, run_cli

RATES = [0.5, 0.667, 0.8, 0.9, 1.0]


@pytest.fixture(scope="module")
def ladder(story, tmp_path_factory):
    out = tmp_path_factory.mktemp("ladder") / "an"
    summary = build_ladder(story, out, "det_an_choice", RATES, seed=4)
    return out, summary


def test_higher_rates_flip_supersets(story, ladder):
    out, summary = ladder
    src = Corpus(story).tokens()
    changed = [set(np.flatnonzero(Corpus(out / rung_name(p)).tokens() != src).tolist()) for p in RATES]
    for lo, hi in zip(changed, changed[1:], strict=False):
        assert lo <= hi
    assert [len(c) for c in changed] == [r["flipped_sites"] for r in summary["rungs"]]
    ratios = [r["support"]["after"]["ratio"] for r in summary["rungs"]]
    assert ratios == sorted(ratios, reverse=True)  # monotone dose-response in the data
    assert summary["rungs"][-1]["support"]["after"]["rule_events"] == 0


def test_each_rung_equals_a_separate_kill(story, ladder, tmp_path):
    out, _ = ladder
    for p in (0.667, 1.0):
        kill_corpus(story, tmp_path / f"k{p}", "det_an_choice", p, seed=4)
        a = [s.sha256 for s in Corpus(tmp_path / f"k{p}").manifest.shards]
        b = [s.sha256 for s in Corpus(out / rung_name(p)).manifest.shards]
        assert a == b


def test_ladder_file_and_cli(story, ladder, tmp_path, capsys):
    out, summary = ladder
    on_disk = json.loads((out / "ladder.json").read_text())
    assert on_disk["rates"] == RATES and on_disk["nested"] is True
    code, stdout, _ = run_cli(["edit", "ladder", story, "--rule", "det_an_choice", "--rates", "1,0.5",
                               "--seed", "4", "--out", tmp_path / "l"], capsys)
    assert code == 0 and "rate_0.5" in stdout
    assert sorted(p.name for p in (tmp_path / "l").iterdir()) == ["ladder.json", "rate_0.5", "rate_1"]
    code, _, err = run_cli(["edit", "ladder", story, "--rule", "det_an_choice", "--rates", "0.5,2",
                            "--out", tmp_path / "bad"], capsys)
    assert code == 2 and "outside [0, 1]" in one_line_error(err)
    code, _, err = run_cli(["edit", "ladder", story, "--rule", "det_an_choice", "--rates", "0.5,x",
                            "--out", tmp_path / "bad"], capsys)
    assert code == 2 and "comma-separated" in one_line_error(err)
