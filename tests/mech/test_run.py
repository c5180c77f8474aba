"""`mech_run` end to end on a tiny run trained here: every checkpoint gets every instrument, the pair
is the scorer's CM argmax, rows are the instruments' own on that checkpoint, resume, force, crash."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from ungrok.errors import UngrokError
from ungrok.mech.run import mech_run, peak_step
from ungrok.mech.store import MechStore

RULE = "pronoun_gender_ref"
PER_CK = ("decomp", "decode", "heads")


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, battery, one_thread):
    """A 24-step tiny run (checkpoints 0, 8, 16, 24) on storyworld, and the battery file it is read with."""
    from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld
    from ungrok.probes.battery import save_battery
    from ungrok.train.config import parse_config
    from ungrok.train.loop import train

    root = tmp_path_factory.mktemp("mech-run")
    build_storyworld(root / "sw", StoryworldConfig(tokens=100_000, seed=0))
    save_battery(battery, root / "battery.jsonl")
    doc = {"model": {"preset": "tiny"}, "sampler": {"context": 32, "batch_size": 8, "steps": 24},
           "checkpoints": {"rules": [{"start": 0, "every": 8}]}, "probe_every": 8, "probe_dense_until": 0,
           "seed": 3}
    train(parse_config(doc), root / "sw", root / "src" / "run", progress=False)
    return root


def fresh(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained run folder (same folder name, so the same run name), nothing computed yet."""
    dst = tmp_path / "run"
    shutil.copytree(trained / "src" / "run", dst)
    return dst


@pytest.fixture(scope="module")
def done(trained, tmp_path_factory):
    """The run after one full `mech_run`, and its summary."""
    run = fresh(trained, tmp_path_factory.mktemp("done"))
    return run, mech_run(run, [RULE], battery=trained / "battery.jsonl", progress=False)


def table(run: Path) -> list[dict]:
    return pq.read_table(run / "traj.mech.parquet").to_pylist()


def scorer_cms(run: Path, trained: Path) -> dict[int, float]:
    """CM per checkpoint from the probes' own margin scorer (independent of the mechanism code)."""
    from ungrok.model import list_checkpoints
    from ungrok.probes.margins import MarginPlan, margin_rules
    from ungrok.probes.models import TokenizerFile, load_own_checkpoint

    tok = TokenizerFile.load(trained / "sw" / "tokenizer.json")
    plan = MarginPlan(margin_rules([RULE], [RULE]), tok, ())
    return {ck.step: plan.score(load_own_checkpoint(ck, torch.device("cpu")))[0].cm for ck in list_checkpoints(run)}


def test_every_checkpoint_gets_every_instrument(done):
    run, s = done
    rr = s.rules[RULE]
    steps = [0, 8, 16, 24]
    assert s.checkpoints == steps and rr.final == 24
    units = MechStore(run / "traj.mech.parquet").units()
    for inst in PER_CK:
        assert sorted(st for (_, st, _, i) in units if i == inst) == steps, inst
    assert {st for (_, st, _, i) in units if i == "direction"} == {rr.peak, rr.final}
    assert set(units.values()) == {rr.prompts_sha256}
    patch = {(r["step"], r["metric"]) for r in table(run) if r["instrument"] == "patch"}
    if rr.peak != rr.final:
        assert patch == {(rr.final, "recovery_peak_to_final"), (rr.peak, "recovery_final_to_peak")}
    ngram = pq.read_table(run / "traj.ngram.parquet").to_pylist()
    assert {(r["run"], r["step"]) for r in ngram} == {(f"run#ngram{n}", st) for n in (2, 5) for st in steps}
    assert s.computed == {"decomp": 4, "decode": 4, "heads": 4, "patch": 2 if rr.peak != rr.final else 0,
                          "direction": len({rr.peak, rr.final})}


def test_the_peak_is_the_scorers_cm_argmax_ties_to_the_later_step(done, trained):
    run, s = done
    cms = scorer_cms(run, trained)
    best = max(cms.values())
    assert s.rules[RULE].peak == max(st for st, cm in cms.items() if cm == best)
    assert s.rules[RULE].cm_from == "computed"
    for st, cm in s.rules[RULE].cms.items():
        assert cm == pytest.approx(cms[st], abs=1e-5)
    assert peak_step({0: 0.0, 8: 1.0, 16: 1.0, 24: 0.5}) == (16, 1.0)
    assert peak_step({0: 0.0, 8: float("nan")}) == (0, 0.0)
    # the classifier's window: a CM that never rose above step 0's 0 does not peak at step 0
    assert peak_step({0: 0.0, 100: -0.5, 150: -0.2, 200: -1.0}, min_step=100) == (150, -0.2)
    assert peak_step({0: 0.0, 8: 1.0}, min_step=100) == (8, 1.0)  # nothing that late: every step


def test_rows_are_the_instruments_own_on_that_checkpoint(done, trained, battery):
    from ungrok.mech.decompose import decompose_gap
    from ungrok.mech.prompts import build_prompts
    from ungrok.model import load_checkpoint
    from ungrok.probes.models import TokenizerFile

    run, s = done
    rows = table(run)
    p = build_prompts(RULE, battery, TokenizerFile.load(trained / "sw" / "tokenizer.json"))
    for step in (8, 16):
        model = load_checkpoint(run / "checkpoints" / f"model_{step:06d}.json").model
        want = {(r["component"], r["metric"]): r["value"] for r in decompose_gap(model, p).rows("run", step, RULE, p.sha256)}
        got = {(r["component"], r["metric"]): r["value"] for r in rows
               if r["step"] == step and r["instrument"] == "decomp"}
        assert got == want
    for step in s.checkpoints:  # two instruments agree: the heads' attributions add up to the attention terms
        at = [r for r in rows if r["step"] == step]
        attn = sum(r["value"] for r in at if r["instrument"] == "decomp" and r["component"] in ("attn:L0", "attn:L1"))
        heads = sum(r["value"] for r in at if r["instrument"] == "heads" and r["metric"] == "attribution")
        assert heads == pytest.approx(attn, abs=1e-4)


def test_a_rerun_skips_everything_and_force_recomputes_the_same_values(done, trained):
    run, first = done
    before = (run / "traj.mech.parquet").read_bytes()
    again = mech_run(run, [RULE], battery=trained / "battery.jsonl", progress=False)
    assert sum(again.computed.values()) == 0
    assert again.skipped["decomp"] == 4 and again.skipped["direction"] == len({again.rules[RULE].peak, 24})
    assert (run / "traj.mech.parquet").read_bytes() == before
    forced = mech_run(run, [RULE], battery=trained / "battery.jsonl", progress=False, force=True,
                      instruments=("decomp", "heads"))
    assert forced.computed == {"decomp": 4, "heads": 4} and sum(forced.skipped.values()) == 0
    assert (run / "traj.mech.parquet").read_bytes() == before  # same seed, same inputs: same bits


def test_an_interrupted_run_resumes_to_the_uninterrupted_table(done, trained, tmp_path, monkeypatch):
    import ungrok.mech.decode as decode

    run = fresh(trained, tmp_path)
    real, calls = decode.cue_decodability, []

    def crash_on_third(model, prompts):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(model, prompts)

    monkeypatch.setattr(decode, "cue_decodability", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        mech_run(run, [RULE], battery=trained / "battery.jsonl", progress=False)
    assert sorted({r["step"] for r in table(run)}) == [0, 8]  # whole checkpoints only
    monkeypatch.setattr(decode, "cue_decodability", real)
    resumed = mech_run(run, [RULE], battery=trained / "battery.jsonl", progress=False)
    assert resumed.computed["decomp"] == 2 and resumed.skipped["decomp"] == 2
    assert (run / "traj.mech.parquet").read_bytes() == (done[0] / "traj.mech.parquet").read_bytes()


def test_the_margin_table_gives_the_peak_when_it_covers_the_run(trained, tmp_path):
    from ungrok.probes.battery import load_battery
    from ungrok.probes.margins import margin_rules
    from ungrok.probes.models import TokenizerFile, load_own_checkpoint
    from ungrok.probes.trajectories import CheckpointSource, TrajectoryStore, score_checkpoints

    run = fresh(trained, tmp_path)
    tok = TokenizerFile.load(trained / "sw" / "tokenizer.json")
    from ungrok.model import list_checkpoints

    sources = [CheckpointSource("run", ck.step, None, lambda ck=ck: (load_own_checkpoint(ck, torch.device("cpu")), tok))
               for ck in list_checkpoints(run)]
    bat = load_battery(trained / "battery.jsonl")
    score_checkpoints(TrajectoryStore(run / "traj.parquet"), sources, bat, margin_rules([RULE], [RULE]))
    s = mech_run(run, [RULE], battery=trained / "battery.jsonl", progress=False, instruments=("decomp",))
    assert s.rules[RULE].cm_from == "traj.margins.parquet"
    cms = {r["step"]: r["cm"] for r in pq.read_table(run / "traj.margins.parquet").to_pylist()}
    assert s.rules[RULE].peak == peak_step(cms, 100)[0]
    again = mech_run(run, [RULE], battery=trained / "battery.jsonl", progress=False, instruments=("decomp",))
    assert again.loads == 0  # nothing missing and the CM read from the table: no checkpoint loaded
    pair = mech_run(run, [RULE], battery=trained / "battery.jsonl", progress=False,
                    instruments=("patch", "direction"))
    assert pair.rules[RULE].peak != pair.rules[RULE].final
    assert pair.loads == 2  # patching and direction removal share the one peak/final pair


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and msg
    return msg


def test_bad_input_is_one_line(done, trained, tmp_path):
    run, _ = done
    bat = trained / "battery.jsonl"
    with pytest.raises(UngrokError, match="unknown rule 'nope'") as e:
        mech_run(run, ["nope"], battery=bat, progress=False)
    _one_line(e)
    with pytest.raises(UngrokError, match="no margin section") as e:
        mech_run(run, ["det_an_choice"], battery=bat, progress=False)
    _one_line(e)
    with pytest.raises(UngrokError, match="unknown instrument 'foo'") as e:
        mech_run(run, [RULE], battery=bat, progress=False, instruments=("decomp", "foo"))
    _one_line(e)
    with pytest.raises(UngrokError, match="pass --battery") as e:
        mech_run(run, [RULE], progress=False)
    _one_line(e)
    # no checkpoints at all
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "config.json", empty / "config.json")
    with pytest.raises(UngrokError, match="no checkpoints") as e:
        mech_run(empty, [RULE], battery=bat, progress=False)
    _one_line(e)
    # a checkpoint whose weights are gone
    broken = fresh(trained, tmp_path / "b")
    (broken / "checkpoints" / "model_000016.safetensors").unlink()
    with pytest.raises(UngrokError, match="model_000016.safetensors") as e:
        mech_run(broken, [RULE], battery=bat, progress=False)
    _one_line(e)
    # a rule whose margin target is two tokens under the run's tokenizer
    rules = tmp_path / "rules"
    rules.mkdir()
    from importlib.resources import files

    text = files("ungrok.rules").joinpath("builtin", f"{RULE}.yaml").read_text(encoding="utf-8")
    text = text.replace(f"name: {RULE}\n", "name: she_twice\n").replace('  rule: " she"\n', '  rule: " she she"\n')
    (rules / "she_twice.yaml").write_text(text)
    with pytest.raises(UngrokError, match="' she she' is 2 tokens") as e:
        mech_run(run, ["she_twice"], battery=bat, progress=False, rules_dir=rules)
    _one_line(e)


# --------------------------------------------------------------------------- the classifier constants
def _experiment_root(tmp_path: Path, classifier: dict, freeze: bool) -> Path:
    """ROOT/experiment.yaml (+ ROOT/registry.json when frozen) and an empty seed folder ROOT/cells/c/seed1."""
    import yaml

    from ungrok.prereg.registry import freeze as freeze_registry

    root = tmp_path / "exp"
    (root / "cells" / "c" / "seed1").mkdir(parents=True)
    doc = {"cells": ["c"], "seeds": [1], "classifier": classifier}
    (root / "experiment.yaml").write_text(yaml.safe_dump(doc))
    if freeze:
        freeze_registry(root / "experiment.yaml", root)
    return root


def test_run_classifier_reads_the_frozen_registry_before_the_experiment_file(tmp_path):
    from ungrok.mech.run import run_classifier

    root = _experiment_root(tmp_path, {"min_step": 16, "emerged_thr": 0.7}, freeze=True)
    seed = root / "cells" / "c" / "seed1"
    cfg, source = run_classifier(seed)
    assert (cfg.min_step, cfg.emerged_thr, source) == (16, 0.7, (root / "registry.json").resolve())
    # the experiment file edited after the freeze does not change what the run is read with
    (root / "experiment.yaml").write_text("cells: [c]\nseeds: [1]\nclassifier: {min_step: 3}\n")
    assert run_classifier(seed)[0].min_step == 16


def test_run_classifier_without_a_registry(tmp_path):
    from ungrok.fate.config import DEFAULT_CONFIG
    from ungrok.mech.run import run_classifier

    root = _experiment_root(tmp_path, {"min_step": 7}, freeze=False)  # an experiment with no predictions
    cfg, source = run_classifier(root / "cells" / "c" / "seed1")
    assert (cfg.min_step, cfg.smooth_k, source) == (7, 3, (root / "experiment.yaml").resolve())
    plain = tmp_path / "plain"  # a plain `ungrok train` run folder: the documented defaults
    plain.mkdir()
    assert run_classifier(plain) == (DEFAULT_CONFIG, None)


@pytest.mark.parametrize(
    ("damage", "file", "message"),
    [
        (lambda root: (root / "registry.json").write_text("{ not json"), "registry.json", "not valid JSON"),
        (lambda root: (root / "registry.json").write_text(
            (root / "registry.json").read_text().replace('"min_step": 16', '"min_step": 17')),
         "registry.json", "changed after it was frozen"),
        (lambda root: (root / "experiment.yaml").write_text("classifier: [1, 2\n"), "experiment.yaml",
         "not valid YAML"),
        (lambda root: (root / "experiment.yaml").write_text("classifier: {min_stepp: 3}\n"), "experiment.yaml",
         "min_stepp"),
        (lambda root: (root / "experiment.yaml").write_text("classifier: {min_step: -1}\n"), "experiment.yaml",
         "min_step"),
        (lambda root: (root / "experiment.yaml").write_text("classifier: 5\n"), "experiment.yaml",
         "classifier"),
    ],
)
def test_an_unreadable_registry_or_experiment_file_is_one_line_naming_it(tmp_path, damage, file, message):
    from ungrok.mech.run import run_classifier

    root = _experiment_root(tmp_path, {"min_step": 16}, freeze=file == "registry.json")
    damage(root)
    with pytest.raises(UngrokError) as e:
        run_classifier(root / "cells" / "c" / "seed1")
    msg = _one_line(e)
    assert str(root / file) in msg and message in msg
