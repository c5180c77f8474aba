"""`ungrok mech` through the CLI: the summary table shows what the store holds; bad input is one line, exit 2."""

from __future__ import annotations

import math
import re

import pyarrow.parquet as pq
import pytest
import torch

from ungrok.cli import main

RULE = "pronoun_gender_ref"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 16-step tiny run (checkpoints 0, 8, 16) and a battery of the focal rule plus one other family."""
    from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld
    from ungrok.probes.battery import build_battery, save_battery
    from ungrok.train.config import parse_config
    from ungrok.train.loop import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("mech-cmd")
    build_storyworld(root / "sw", StoryworldConfig(tokens=60_000, seed=1))
    save_battery(build_battery([RULE, "plural_was_were"]), root / "battery.jsonl")
    doc = {"model": {"preset": "tiny"}, "sampler": {"context": 32, "batch_size": 8, "steps": 16},
           "checkpoints": {"rules": [{"start": 0, "every": 8}]}, "probe_every": 8, "probe_dense_until": 0,
           "seed": 5}
    train(parse_config(doc), root / "sw", root / "run", progress=False)
    yield root
    torch.set_num_threads(threads)


def _cli(args, capsys):
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = e.code or 0
    c = capsys.readouterr()
    return code, c.out, c.err


def test_mech_writes_the_store_and_prints_the_top_head_it_holds(run, capsys):
    code, out, err = _cli(["mech", run / "run", "--rule", RULE, "--battery", run / "battery.jsonl",
                           "--only", "decomp,heads,decode"], capsys)
    assert code == 0, err
    rows = pq.read_table(run / "run" / "traj.mech.parquet").to_pylist()
    assert {r["instrument"] for r in rows} == {"decomp", "heads", "decode"}
    assert not (run / "run" / "traj.ngram.parquet").exists()  # not asked for
    final = [r for r in rows if r["step"] == 16 and r["instrument"] == "heads" and r["metric"] == "attribution"]
    top = max(final, key=lambda r: abs(r["value"]))["component"]
    line = next(x for x in out.splitlines() if re.search(r"final\s*│\s*16\b", x))
    assert top in line
    gap = next(r["value"] for r in rows if r["step"] == 16 and r["component"] == "gap")
    assert f"{gap:+.2f}" in line
    assert "computed decomp 3, decode 3, heads 3" in out

    code, out, _ = _cli(["mech", run / "run", "--rule", RULE, "--battery", run / "battery.jsonl",
                         "--only", "decomp"], capsys)
    assert code == 0 and "nothing new" in out and "3 unit(s) already in the store" in out


def test_the_full_run_shows_the_pair_and_the_ngram_letters(run, capsys):
    code, out, err = _cli(["mech", run / "run", "--rule", RULE, "--battery", run / "battery.jsonl"], capsys)
    assert code == 0, err
    assert re.search(r"peak\s*│\s*\d+", out) and "n-gram baseline:" in out
    rows = pq.read_table(run / "run" / "traj.mech.parquet").to_pylist()
    patch = [r for r in rows if r["instrument"] == "patch" and r["component"] != "all" and not math.isnan(r["value"])]
    if patch:  # the best single component at the final checkpoint is named in its row
        best = max((r for r in patch if r["metric"] == "recovery_peak_to_final"), key=lambda r: r["value"])
        line = next(x for x in out.splitlines() if re.search(r"final\s*│\s*16\b", x))
        assert best["component"] in line


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rule", "nope"], "unknown rule 'nope'"),
        (["--rule", RULE, "--only", "decomp,bogus"], "unknown instrument 'bogus'"),
        (["--rule", "det_an_choice"], "no margin section"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run, capsys, extra, message):
    code, out, err = _cli(["mech", run / "run", "--battery", run / "battery.jsonl", *extra], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_plain_run_folder_needs_a_battery(run, capsys):
    code, _, err = _cli(["mech", run / "run", "--rule", RULE], capsys)
    assert code == 2 and "pass --battery" in err and len(err.strip().splitlines()) == 1


def _seed_folder(run, tmp_path, min_step: int):
    """The trained run (nothing computed yet) as seed 1 of cell c of an experiment whose registry froze min_step."""
    import shutil

    import yaml

    from ungrok.prereg.registry import freeze

    root = tmp_path / "exp"
    seed = root / "cells" / "c" / "seed1"
    root.mkdir(parents=True)
    (root / "experiment.yaml").write_text(yaml.safe_dump({"cells": ["c"], "seeds": [1],
                                                          "classifier": {"min_step": min_step}}))
    freeze(root / "experiment.yaml", root)  # before the training output: a later freeze is refused
    shutil.copytree(run / "run", seed, ignore=shutil.ignore_patterns("traj.mech.parquet", "traj.ngram.parquet"))
    return root, seed


def test_a_seed_folder_is_read_with_its_registrys_constants(run, capsys, tmp_path):
    root, seed = _seed_folder(run, tmp_path, min_step=16)
    # edited after the freeze: the registry, not this file, holds the run's constants
    (root / "experiment.yaml").write_text("cells: [c]\nseeds: [1]\nclassifier: {min_step: 0}\n")
    code, out, err = _cli(["mech", seed, "--rule", RULE, "--battery", run / "battery.jsonl", "--only", "patch"],
                          capsys)
    assert code == 0, err
    assert f"classifier constants: {(root / 'registry.json').resolve()} (min_step 16" in out
    # checkpoints 0, 8, 16: from min_step 16 on, the peak can only be the final checkpoint
    assert re.search(r"peak\s*│\s*16\b", out) and "no pair to patch" in out


def test_a_plain_run_folder_uses_the_default_constants_and_says_so(run, capsys):
    code, out, err = _cli(["mech", run / "run", "--rule", RULE, "--battery", run / "battery.jsonl",
                           "--only", "decomp"], capsys)
    assert code == 0, err
    assert "classifier constants: the defaults (no registry.json or experiment.yaml) (min_step 100" in out


def test_a_damaged_registry_is_one_line_naming_it_not_the_defaults(run, capsys, tmp_path):
    from cli_helpers import one_line_error

    root, seed = _seed_folder(run, tmp_path, min_step=16)
    reg = root / "registry.json"
    reg.write_text(reg.read_text().replace('"min_step": 16', '"min_step": 100'))
    code, out, err = _cli(["mech", seed, "--rule", RULE, "--battery", run / "battery.jsonl", "--only", "decomp"],
                          capsys)
    line = one_line_error(code, err)
    assert str(reg.resolve()) in line and "changed after it was frozen" in line
    assert not (seed / "traj.mech.parquet").exists()  # refused before any work
