"""The experiment's optional mechanism stage: it runs on the governed seeds only, after every verdict,
changes no verdict, gate, scoreboard or ledger byte, resumes by marker, and can be added to a
finished run folder (its frozen registry still verifies). Bad `mech:` sections are one line."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from conftest import capture, tiny_doc, write_experiment
from ungrok.errors import UngrokError
from ungrok.experiment.run import run_experiment
from ungrok.experiment.spec import load_experiment

MECH = {"rules": ["pronoun_gender_ref"], "instruments": ["decomp", "heads", "patch", "ngram"]}
FROZEN = ("fates.json", "gates.json", "evidence.json", "scoreboard.json", "ledger.json", "registry.json",
          "experiment.yaml")


def test_mech_added_to_a_finished_run_changes_no_verdict_and_resumes(finished, tmp_path, one_thread):
    run = tmp_path / "run"
    shutil.copytree(finished.run, run, symlinks=True)
    before = {name: (run / name).read_bytes() for name in FROZEN}
    console, buf = capture()
    run_experiment(finished.experiment, run, overrides={"mech": MECH}, console=console)
    out = buf.getvalue()
    assert "registry: " in out and "verified" in out
    assert "mech: 6 run(s)" in out
    for name, data in before.items():
        assert (run / name).read_bytes() == data, name  # the folder keeps its own experiment.yaml
    for cell in ("high", "low", "kill"):
        for seed in (1, 2):
            sdir = run / "cells" / cell / f"seed{seed}"
            marker = json.loads((sdir / ".done-mech").read_text())
            assert marker["rules"] == MECH["rules"] and marker["instruments"] == MECH["instruments"]
            rows = pq.read_table(sdir / "traj.mech.parquet").to_pylist()
            assert {r["run"] for r in rows} == {f"{cell}/seed{seed}"}  # the run name of traj.parquet
            assert sorted({r["step"] for r in rows if r["instrument"] == "decomp"}) == [0, 8, 16, 24]
            peak = marker["pairs"]["pronoun_gender_ref"]["peak"]
            margins = pq.read_table(sdir / "traj.margins.parquet").to_pylist()
            cms = {r["step"]: r["cm"] for r in margins}
            assert peak == max(s for s, cm in cms.items() if cm == max(cms.values()))  # ties to the later step
            assert marker["pairs"]["pronoun_gender_ref"]["cm_from"] == "traj.margins.parquet"
            assert (sdir / "traj.ngram.parquet").is_file()
        qdir = run / "cells" / cell / "seed3"  # quarantined: never read
        assert not (qdir / ".done-mech").exists() and not (qdir / "traj.mech.parquet").exists()

    console, buf = capture()
    run_experiment(finished.experiment, run, overrides={"mech": MECH}, console=console)
    assert "mech: 6 run(s) done earlier, skipped" in buf.getvalue()


def test_mech_cells_limits_the_stage_to_those_cells(finished, tmp_path, one_thread):
    run = tmp_path / "run"
    shutil.copytree(finished.run, run, symlinks=True)
    console, buf = capture()
    run_experiment(finished.experiment, run, overrides={"mech": {**MECH, "cells": ["low"]}}, console=console)
    assert "mech: 2 run(s)" in buf.getvalue()
    assert sorted(p.parent.parent.name for p in run.glob("cells/*/seed*/.done-mech")) == ["low", "low"]


def test_a_failing_mech_task_leaves_the_verdicts_and_says_so(finished, tmp_path, one_thread, monkeypatch):
    import ungrok.mech.run as mech_run_module

    run = tmp_path / "run"
    shutil.copytree(finished.run, run, symlinks=True)

    def boom(*_a, **_k):
        raise UngrokError("instrument exploded")

    monkeypatch.setattr(mech_run_module, "mech_run", boom)
    console, _ = capture()
    with pytest.raises(UngrokError, match="mechanism stage failed for 6 run.*unaffected; rerun") as e:
        run_experiment(finished.experiment, run, overrides={"mech": MECH}, console=console)
    assert "\n" not in str(e.value)
    assert (run / "report.html").is_file() and not list(run.glob("cells/*/seed*/.done-mech"))


@pytest.mark.parametrize(
    ("mech", "message"),
    [
        ({"rules": ["no_such_rule"]}, "mech.rules: unknown rule 'no_such_rule'"),
        ({"rules": ["det_an_choice"]}, "mech.rules: rule 'det_an_choice' declares no margin section"),
        ({"rules": ["pronoun_gender_ref"], "instruments": ["decomp", "xray"]}, "unknown instrument 'xray'"),
        ({"rules": ["she_elsewhere"]}, "no battery probes rule 'she_elsewhere'"),
        ({"rules": []}, "mech.rules"),
        ({"rules": ["pronoun_gender_ref"], "colour": 1}, "unknown key mech.colour"),
        ({"rules": ["pronoun_gender_ref"], "cells": ["nowhere"]}, "mech.cells: unknown cell 'nowhere'"),
    ],
)
def test_bad_mech_sections_are_one_line(tmp_path, battery, mech, message):
    doc = tiny_doc()
    doc["mech"] = mech
    if mech["rules"] == ["she_elsewhere"]:  # a rule with a margin that the battery does not probe
        from importlib.resources import files

        text = files("ungrok.rules").joinpath("builtin", "pronoun_gender_ref.yaml").read_text(encoding="utf-8")
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "she.yaml").write_text(text.replace("name: pronoun_gender_ref\n", "name: she_elsewhere\n"))
        doc["rules_dir"] = "rules"
    exp = write_experiment(tmp_path, battery, doc)
    with pytest.raises(UngrokError, match=message) as e:
        load_experiment(exp)
    assert "\n" not in str(e.value) and str(exp) in str(e.value)


def test_another_change_than_mech_is_still_a_different_experiment(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished.run, run, symlinks=True)
    with pytest.raises(UngrokError, match="holds a run of a different experiment"):
        run_experiment(finished.experiment, run, overrides={"mech": MECH, "monitor": False}, console=capture()[0])
