"""Disjointness gate D1-D4: every kind of violation is caught and named in one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ungrok.corpus.shards import Corpus
from ungrok.corpus.storyworld import storyworld_tokenizer
from ungrok.edit.checks import (
    Forbidden,
    check_edited,
    check_names,
    check_universe,
    load_forbidden,
)
from ungrok.edit.kill import kill_corpus
from ungrok.edit.rescue import build_rescue
from ungrok.errors import UngrokError

from .conftest import one_line_error, run_cli, user_rule


@pytest.fixture(scope="module")
def battery():
    return load_forbidden()


def test_builtin_battery_holds_cues_prefixes_and_margins(battery):
    assert {"Lily", "Zoe", "Tom", "girl", "uncle"} <= set(battery.cues)
    assert "Sue cried because" in battery.prefixes
    assert "The farmer cried because" in battery.margins
    assert not {"Mary", "David", "Nora"} & set(battery.cues)  # the paper's rescue names pass D1


def test_d1_and_d2_text_level(battery):
    check_names(["Mary", "Noah"], battery)
    with pytest.raises(UngrokError, match=r"D1: rescue name 'lily' collides with battery cue 'Lily'"):
        check_names(["Mary", "lily"], battery)
    frames = ["{n} saw that Sue cried because {p} left."]
    with pytest.raises(UngrokError, match=r"D2: battery prefix 'Sue cried because'.*"
                       r"sentence 'Mary saw that Sue cried because she left.'"):
        check_universe(frames, ["Mary"], ["she"], battery)


def test_reference_batteries_pass_for_the_paper_rescue(story, reference, tmp_path):
    files = [reference / "batteries" / b / "battery.jsonl" for b in ("rvp3", "rvp4", "rvp5", "v1")]
    build_rescue(story, tmp_path / "r", "pronoun_gender_ref", 0.3, unit=0.002, battery_files=files)
    report = check_edited(tmp_path / "r", files)
    r = report[str(tmp_path / "r")]
    assert r["D1"] == "passed" and r["D2_D3"]["tokens_scanned"] > 0
    assert r["battery"]["prefixes"] > 1000


def _tamper(path, ids):
    """Overwrite the start of the first injected shard with `ids`."""
    shard = path / "synth" / "shard_00000.bin"
    data = np.fromfile(shard, dtype="<u2")
    data[100 : 100 + len(ids)] = ids
    data.tofile(shard)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (" Sue cried because", "D2: battery prefix 'Sue cried because'"),
        (" The farmer laughed when", "D3: margin prompt 'The farmer laughed when'"),
        (" Lily", "D2: battery cue 'Lily'"),
    ],
)
def test_injected_text_violations_are_caught(story, tmp_path, capsys, text, needle):
    build_rescue(story, tmp_path / "r", "pronoun_gender_ref", 0.3, unit=0.002)
    _tamper(tmp_path / "r", storyworld_tokenizer().encode(text).ids)
    code, _, err = run_cli(["edit", "check", tmp_path / "r"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert needle in line and "synth/shard_00000.bin at token" in line


def _item(prefix: str) -> dict:
    """One valid battery line (the reference schema) with this prefix."""
    return {"family": "f", "condition": "conflict", "probe": "f.conflict", "category": "rule_vs_prior",
            "template_id": "t", "split": "heldout", "prefix": prefix, "correct": " a", "distractor": " b",
            "chance": 0.5, "item_id": "f.conflict/heldout/0000"}


def test_battery_files_go_through_the_one_loader(tmp_path):
    """A battery file is parsed and validated by probes.battery, not by a second parser."""
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(_item("Zed frowned because")) + "\n")
    assert load_forbidden(files=[good]).prefixes["Zed frowned because"] == str(good)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prefix": "Zed frowned because"}) + "\n")
    with pytest.raises(UngrokError, match=r"bad.jsonl:1: missing field"):
        load_forbidden(files=[bad])
    with pytest.raises(UngrokError, match="battery file not found"):
        load_forbidden(files=[tmp_path / "none.jsonl"])


def test_battery_file_prefix_is_checked(story, tmp_path, capsys):
    build_rescue(story, tmp_path / "r", "pronoun_gender_ref", 0.3, unit=0.002)
    ids = Corpus(tmp_path / "r" / "synth").tokens()[:6].tolist()
    prefix = storyworld_tokenizer().decode(ids)
    (tmp_path / "b.jsonl").write_text(json.dumps(_item(prefix)) + "\n")
    code, _, _ = run_cli(["edit", "check", tmp_path / "r"], capsys)
    assert code == 0  # the built-in battery does not contain it ...
    code, _, err = run_cli(["edit", "check", tmp_path / "r", "--battery", tmp_path / "b.jsonl"], capsys)
    assert code == 2 and f"D2: battery prefix {prefix!r}" in one_line_error(err)  # ... the file does


def test_rescue_refuses_a_violating_generator(story, tmp_path, capsys):
    rules = user_rule(tmp_path, "[Nora]", '["{n} said The farmer laughed when {p} ran."]')
    code, _, err = run_cli(["edit", "rescue", story, "--rule", "my_rescue", "--dose", "1", "--unit", "0.001",
                            "--rules-dir", rules, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "D3: margin prompt 'The farmer laughed when'" in one_line_error(err)
    assert not (tmp_path / "o").exists()
    rules = user_rule(tmp_path, "[Nora]", '["{n} saw that Sue cried because {p} left."]')
    code, _, err = run_cli(["edit", "rescue", story, "--rule", "my_rescue", "--dose", "1", "--unit", "0.001",
                            "--rules-dir", rules, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "D2: battery prefix 'Sue cried because'" in one_line_error(err)


def test_d4_kill_token_count_and_bytes(story, tmp_path, capsys):
    kill_corpus(story, tmp_path / "k", "pronoun_gender_ref", 0.5, seed=1)
    code, out, _ = run_cli(["edit", "check", tmp_path / "k"], capsys)
    assert code == 0 and "D4" in out
    # a byte changed outside the flipped sites
    shutil.copytree(tmp_path / "k", tmp_path / "k2")
    shard = tmp_path / "k2" / "shard_00001.bin"
    data = np.fromfile(shard, dtype="<u2")
    src = Corpus(story).shard(1)
    j = int(np.flatnonzero(np.asarray(src) == data)[5])
    data[j] = (int(data[j]) + 1) % 1000
    data.tofile(shard)
    code, _, err = run_cli(["edit", "check", tmp_path / "k2"], capsys)
    assert code == 2 and f"token {j:,} changed" in one_line_error(err)
    # a manifest whose token count disagrees with its source
    shutil.copytree(tmp_path / "k", tmp_path / "k3")
    m = json.loads((tmp_path / "k3" / "manifest.json").read_text())
    m["source"]["source"]["total_tokens"] += 1
    (tmp_path / "k3" / "manifest.json").write_text(json.dumps(m))
    code, _, err = run_cli(["edit", "check", tmp_path / "k3"], capsys)
    assert code == 2 and one_line_error(err).startswith("error: D4:")


def test_check_refuses_unedited_corpora(story, capsys):
    code, _, err = run_cli(["edit", "check", story], capsys)
    assert code == 2 and "not an edited corpus" in one_line_error(err)


def test_empty_battery_passes_anything():
    check_names(["Lily"], Forbidden())
    check_universe(["{n} smiled because {p} won."], ["Lily"], ["she"], Forbidden())
