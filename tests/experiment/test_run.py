"""`run_experiment` end to end on a tiny grid: every artifact of the layout, checked against
direct calls of the pieces; a rerun redoes nothing; the quarantine; the freeze before
training; a tampered registry, a different experiment and failed runs each stop with one line."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from conftest import FAMILIES, capture, tiny_doc, write_experiment
from ungrok.errors import UngrokError
from ungrok.experiment.run import run_experiment

CELLS = ["high", "low", "kill"]
GOVERNED, QUARANTINED = [1, 2], [3]
CHECKPOINTS = [0, 8, 16, 24]  # every 8 of 24 steps


def test_every_artifact_of_the_layout_is_written(finished):
    run = finished.run
    for name in ("experiment.yaml", "battery.jsonl", "registry.json", "ledger.json", "experiment.json",
                 "fates.json", "gates.json", "evidence.json", "scoreboard.json", "report.html"):
        assert (run / name).is_file(), name
    assert (run / "experiment.yaml").read_text() == finished.experiment.read_text()  # a copy of the file run
    assert (run / "battery.jsonl").read_bytes() == (finished.experiment.parent / "battery.jsonl").read_bytes()
    for cell in CELLS:
        cdir = run / "cells" / cell
        assert (cdir / "corpus" / "manifest.json").is_file() and (cdir / ".done-corpus").is_file()
        assert (cdir / ".done-support").is_file()
        for seed in GOVERNED + QUARANTINED:
            sdir = cdir / f"seed{seed}"
            for name in ("config.json", "train_log.jsonl", "monitor.jsonl", "traj.parquet",
                         "traj.margins.parquet", ".done-train", ".done-score"):
                assert (sdir / name).is_file(), (cell, seed, name)
            steps = sorted(int(p.stem.split("_")[1]) for p in (sdir / "checkpoints").glob("model_*.json"))
            assert steps == CHECKPOINTS
            table = pq.read_table(sdir / "traj.parquet").to_pylist()
            assert {r["run"] for r in table} == {f"{cell}/seed{seed}"}
            assert sorted({r["step"] for r in table}) == CHECKPOINTS
            assert {r["family"] for r in table} == set(FAMILIES)
            # the live monitor probed at every 8th step (probe_every 8, dense_until 0)
            lines = [json.loads(x) for x in (sdir / "monitor.jsonl").read_text().splitlines()]
            assert [x["step"] for x in lines] == CHECKPOINTS
            assert set(lines[-1]["rules"]) == {"pronoun_gender_ref"}


def test_experiment_json_describes_the_cells_for_the_report(finished):
    doc = json.loads((finished.run / "experiment.json").read_text())
    assert doc == {
        "name": "tiny",
        "seeds": GOVERNED,
        "cells": {
            "high": {"kind": "storyworld"},
            "low": {"kind": "storyworld"},
            "kill": {"kind": "kill", "rule": "pronoun_gender_ref", "rate": 1.0, "parent": "high"},
        },
    }


def test_corpora_and_support_equal_direct_calls_of_the_pieces(finished, tmp_path):
    from ungrok.corpus.shards import read_manifest
    from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld
    from ungrok.rules.registry import get_rule
    from ungrok.support.count import count

    cells = finished.run / "cells"
    direct = tmp_path / "high"
    build_storyworld(direct, StoryworldConfig(**tiny_doc()["cells"]["high"]["storyworld"]))
    for a, b in zip(
        read_manifest(direct).shards, read_manifest(cells / "high" / "corpus").shards, strict=True
    ):
        assert a.sha256 == b.sha256
    high, kill = read_manifest(cells / "high" / "corpus"), read_manifest(cells / "kill" / "corpus")
    assert kill.total_tokens == high.total_tokens  # a kill flips tokens, never adds or drops one
    for cell in ("high", "kill"):
        doc = json.loads((cells / cell / "support.json").read_text())
        want = count(cells / cell / "corpus", [get_rule("pronoun_gender_ref")]).to_json()["rules"]
        row = doc["rules"]["pronoun_gender_ref"]
        assert {k: v for k, v in row.items() if k != "forecast"} == want["pronoun_gender_ref"]
        # the support law's forecast: likely survives at ratio >= 2.5, likely lost at <= 1
        label = (
            "likely survives" if row["ratio"] >= 2.5 else "likely lost" if row["ratio"] <= 1 else "at risk"
        )
        assert row["forecast"] == label
    killed = json.loads((cells / "kill" / "support.json").read_text())["rules"]["pronoun_gender_ref"]
    assert killed["classes"]["girl_names"]["rule_events"] == 0  # rate 1 removes every girl -> she event
    assert (
        json.loads((cells / "high" / "support.json").read_text())["rules"]["pronoun_gender_ref"]["ratio"]
        > 2.5
    )


def test_training_adds_no_nondeterminism(finished, tmp_path, one_thread):
    """A (cell, seed) run equals train() called directly with the same config and seed."""
    from ungrok.train.config import parse_config
    from ungrok.train.loop import train

    doc = {**tiny_doc()["train"], "seed": 2}
    train(parse_config(doc), finished.run / "cells" / "low" / "corpus", tmp_path / "direct", progress=False)
    for step in CHECKPOINTS:
        a = load_file(str(tmp_path / "direct" / "checkpoints" / f"model_{step:06d}.safetensors"))
        b = load_file(
            str(finished.run / "cells" / "low" / "seed2" / "checkpoints" / f"model_{step:06d}.safetensors")
        )
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fates_are_the_classifier_over_the_governed_runs_only(finished):
    from ungrok.fate.classify import classify_table

    doc = json.loads((finished.run / "fates.json").read_text())
    recs = doc["records"]
    assert {(r["cell"], r["seed"], r["family"]) for r in recs} == {
        (c, s, f) for c in CELLS for s in GOVERNED for f in FAMILIES
    }
    from ungrok.fate.config import ClassifierConfig

    cfg = ClassifierConfig(min_step=0)
    assert doc["classifier_sha256"] == cfg.sha256()
    for r in recs:
        table = pq.read_table(finished.run / "cells" / r["cell"] / f"seed{r['seed']}" / "traj.parquet")
        v = classify_table(table, cfg)[(r["run"], r["family"])]
        assert (r["fate"], r["agree_gate"] == "pass", r["conflict_final"]) == (
            v.cls,
            v.valid,
            v.conflict_final,
        )
        assert r["steps"] == CHECKPOINTS
        assert ("cm_final" in r) == (r["family"] == "pronoun_gender_ref")  # the only rule with margins


def test_gate_evidence_and_scoreboard(finished):
    run = finished.run
    gates = json.loads((run / "gates.json").read_text())
    assert list(gates) == ["kill"] and gates["kill"]["kind"] == "kill"
    fates = json.loads((run / "fates.json").read_text())["records"]
    # KS by hand: each control family RECOVERED+valid in >= 2/3 seeds; 2+ failing -> invalid
    failing = [f for f in FAMILIES[1:] if sum(r["fate"] == "RECOVERED" and r["agree_gate"] == "pass"
                                              for r in fates if r["cell"] == "kill" and r["family"] == f) < 2]
    assert gates["kill"]["valid"] == (len(failing) <= 1)
    ev = json.loads((run / "evidence.json").read_text())
    assert ev["cells"] == {"high": {"rate": 0.0}, "kill": {"rate": 1.0}}
    support = json.loads((run / "cells" / "low" / "support.json").read_text())["rules"]["pronoun_gender_ref"]
    assert ev["families"]["low"]["pronoun_gender_ref"]["support_ratio"] == support["ratio"]
    assert {(r["cell"], r["seed"]) for r in ev["records"]} == {(c, s) for c in CELLS for s in GOVERNED}
    board = json.loads((run / "scoreboard.json").read_text())
    status = {o["name"]: o["status"] for o in board["outcomes"]}
    assert status["P1"] == "PASS"  # conflict_final >= 0 holds for any accuracy
    assert status["K1"] == ("UNSCOREABLE" if not gates["kill"]["valid"] else "PASS")
    assert "scoreboard:" in finished.output


def test_rerun_redoes_nothing_and_says_so(finished):
    run = finished.run
    derived = {run / "experiment.json", run / "report.html"}
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p not in derived}
    console, buf = capture()
    run_experiment(finished.experiment, run, console=console)
    out = buf.getvalue()
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p not in derived}
    assert after == before  # no artifact, marker, checkpoint or ledger entry was touched
    for stage in ("corpora: 3 done earlier, skipped", "support: 3 cell(s) done earlier, skipped",
                  "runs: 9 (cell, seed) run(s) done earlier, skipped", "classify: done earlier, skipped",
                  "gates: done earlier, skipped", "scoreboard: done earlier, skipped"):
        assert stage in out
    assert "registry" in out and "verified" in out
    assert "trained" not in out and "built" not in out


def test_quarantined_seed_is_trained_but_never_read(finished):
    from ungrok.prereg import check_readable

    run = finished.run
    for cell in CELLS:
        assert (run / "cells" / cell / "seed3" / ".done-score").is_file()  # trained and scored
    fates = json.loads((run / "fates.json").read_text())["records"]
    evidence = json.loads((run / "evidence.json").read_text())["records"]
    assert all(r["seed"] != 3 for r in fates + evidence)
    reads = json.loads((run / "ledger.json").read_text())["reads"]
    assert reads and all(key.split("/")[1] != "3" for key in reads)
    assert set(reads) == {
        f"{c}/{s}/{a}" for c in CELLS for s in GOVERNED for a in ("trajectories", "margins")
    }
    with pytest.raises(UngrokError, match="quarantined"):
        check_readable(run, "high", 3)
    assert json.loads((run / "experiment.json").read_text())["seeds"] == GOVERNED


def test_registry_is_frozen_before_any_training(finished):
    from ungrok.prereg import load_registry, parse_stamp

    reg = load_registry(finished.run / "registry.json", check_files=True)
    assert reg.seeds.governed == GOVERNED and reg.seeds.quarantined == QUARANTINED
    assert [p["name"] for p in reg.predictions] == ["P1", "K1"]
    frozen = parse_stamp(reg.created_utc).timestamp()
    first_checkpoint = min(p.stat().st_mtime for p in (finished.run / "cells").glob("*/seed*/checkpoints/*"))
    assert frozen < first_checkpoint
    reads = json.loads((finished.run / "ledger.json").read_text())["reads"].values()
    assert all(parse_stamp(t).timestamp() > frozen for t in reads)


@pytest.fixture
def copied_run(finished, tmp_path):
    """The finished run folder and its experiment, copied (so tampering leaves the original alone)."""
    shutil.copytree(finished.experiment.parent, tmp_path / "tiny", symlinks=True)
    return tmp_path / "tiny" / finished.experiment.name, tmp_path / "tiny" / "run"


def test_a_tampered_registry_stops_the_rerun_with_one_line(copied_run):
    exp, run = copied_run
    reg = json.loads((run / "registry.json").read_text())
    reg["predictions"][0]["test"] = "conflict_final >= 0.9"  # a threshold moved after the freeze
    (run / "registry.json").write_text(json.dumps(reg, indent=2, sort_keys=True) + "\n")
    console, buf = capture()
    with pytest.raises(UngrokError, match="changed after it was frozen") as e:
        run_experiment(exp, run, console=console)
    assert "\n" not in str(e.value)


def test_a_registry_removed_after_training_began_is_not_refrozen(copied_run):
    exp, run = copied_run
    (run / "registry.json").unlink()
    with pytest.raises(UngrokError, match="registry.json is missing but training has already started"):
        run_experiment(exp, run, console=capture()[0])
    assert not (run / "registry.json").exists()


def test_a_changed_battery_or_a_different_experiment_is_refused(copied_run):
    exp, run = copied_run
    doc = tiny_doc()
    doc["name"] = "another"
    other = write_experiment(exp.parent, exp.parent / "battery.jsonl", doc, name="other.yaml")
    with pytest.raises(UngrokError, match="holds a run of a different experiment"):
        run_experiment(other, run, console=capture()[0])
    (exp.parent / "battery.jsonl").write_bytes(
        b"\n".join((exp.parent / "battery.jsonl").read_bytes().split(b"\n")[1:])
    )
    with pytest.raises(UngrokError, match="battery main: .* changed since this run began"):
        run_experiment(exp, run, console=capture()[0])


def test_failed_runs_are_one_line_each_and_finished_work_is_kept(finished, tmp_path, battery, one_thread):
    """A cell whose model cannot embed its corpus fails at training; the other cell's run is kept.
    Both cells use the finished run's corpus as a pre-built one (one support count for both)."""
    corpus = (finished.run / "cells" / "high" / "corpus").resolve()
    doc = tiny_doc()
    doc.update(quarantined_seeds=[], seeds=[1], predictions=[])
    doc["train"]["sampler"]["steps"] = 8
    doc["cells"] = {"good": {"corpus": str(corpus)},
                    "bad": {"corpus": str(corpus), "train": {"model": {"vocab_size": 64}}}}
    exp = write_experiment(tmp_path, battery, doc)
    console, buf = capture()
    with pytest.raises(UngrokError, match=r"^1 run\(s\) failed \(cell bad seed 1: .*vocab_size") as e:
        run_experiment(exp, tmp_path / "run", console=console)
    assert "\n" not in str(e.value)
    assert "failed: cell bad seed 1:" in buf.getvalue()
    cells = tmp_path / "run" / "cells"
    assert (cells / "good" / "corpus").is_symlink() and (cells / "good" / "corpus").resolve() == corpus
    assert (cells / "good" / "seed1" / ".done-score").is_file()
    assert not (cells / "bad" / "seed1" / ".done-train").exists()
    assert not (tmp_path / "run" / "fates.json").exists()
    assert not (
        tmp_path / "run" / "registry.json"
    ).exists()  # no predictions, no quarantine: nothing to freeze
    assert (cells / "good" / "support.json").read_text() == (cells / "bad" / "support.json").read_text()
    mtime = (cells / "good" / "seed1" / ".done-score").stat().st_mtime_ns
    console, buf = capture()
    with pytest.raises(UngrokError, match="1 run"):
        run_experiment(exp, tmp_path / "run", console=console)
    assert "runs: 1 (cell, seed) run(s) done earlier, skipped" in buf.getvalue()
    assert (cells / "good" / "seed1" / ".done-score").stat().st_mtime_ns == mtime


def test_an_edited_trajectory_rerun_is_unscoreable_never_pass(copied_run):
    """Accuracies set to 1.0 in one run's traj.parquet, its done markers deleted, the run rerun:
    `verify` names the file, the rerun says so, and every prediction reading it is UNSCOREABLE."""
    import pyarrow as pa

    from ungrok.experiment import tasks as T
    from ungrok.prereg import verify

    exp, run = copied_run
    traj = run / "cells" / "high" / "seed1" / "traj.parquet"
    before = traj.read_bytes()
    table = pq.read_table(traj)
    i = table.schema.get_field_index("accuracy")
    pq.write_table(table.set_column(i, "accuracy", pa.array([1.0] * table.num_rows)), traj)
    assert traj.read_bytes() != before
    for step in ("classify", "gates", "scoreboard"):
        T.marker(run, step).unlink()
    with pytest.raises(UngrokError, match=r"cells/high/seed1/traj.parquet \(high/1/trajectories\) changed since"):
        verify(run / "registry.json")
    console, buf = capture()
    run_experiment(exp, run, console=console)
    assert "result file(s) changed since their first read" in buf.getvalue()
    board = json.loads((run / "scoreboard.json").read_text())
    by = {o["name"]: o for o in board["outcomes"]}
    assert by["P1"]["status"] == "UNSCOREABLE"
    assert "high/1/trajectories" in by["P1"]["reason"] and by["P1"]["reason"].startswith("a result it reads changed")
    assert by["K1"]["status"] == "UNSCOREABLE"  # fates.json, which every verdict reads, changed with it


def test_a_deleted_ledger_stops_the_rerun_with_one_line(copied_run):
    exp, run = copied_run
    (run / "ledger.json").unlink()
    with pytest.raises(UngrokError, match="ledger.json beside it is missing") as e:
        run_experiment(exp, run, console=capture()[0])
    assert "\n" not in str(e.value)
