"""Pilot, then confirm, through `ungrok run`: `--phase pilot` trains, scores and classifies only
the pilot seeds (every read in the ledger with its file's sha256), the predictions are written
after looking, and the confirm phase freezes a registry that binds those reads before it
trains the governed seeds. Pilot verdicts never reach fates.json, evidence, the scoreboard or
the phase grid; the report shows them in a table of their own."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli_helpers import one_line_error
from cli_helpers import run as ungrok
from conftest import capture, tiny_doc, write_experiment
from ungrok.errors import UngrokError
from ungrok.experiment.run import run_experiment
from ungrok.experiment.spec import load_experiment
from ungrok.prereg import load_registry, parse_stamp, verify

PREDICTION = {"name": "P1", "expr": "pronoun_gender_ref has conflict_final >= 0 in all seeds of cell high"}


def pilot_doc() -> dict:
    """One storyworld cell, 8 steps: one governed seed (1), one pilot seed (5), no predictions yet."""
    doc = tiny_doc()
    doc.update(seeds=[1], quarantined_seeds=[], pilot_seeds=[5], predictions=[])
    doc["train"].update(checkpoints={"rules": [{"start": 0, "every": 4}]}, probe_every=4)  # 3 checkpoints
    doc["train"]["sampler"]["steps"] = 8
    doc["cells"] = {"high": doc["cells"]["high"]}
    return doc


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Piloted:
    experiment: Path
    pilot: Path  # the run folder as the pilot phase left it (a copy)
    run: Path  # the same folder after the confirm phase
    pilot_output: str
    confirm_output: str


@pytest.fixture(scope="module")
def piloted(tmp_path_factory, battery, one_thread) -> Piloted:
    folder = tmp_path_factory.mktemp("pilot")
    exp = write_experiment(folder, battery, pilot_doc())
    console, buf = capture()
    run_experiment(exp, folder / "run", console=console, phase="pilot")
    shutil.copytree(folder / "run", folder / "after-pilot", symlinks=True)
    doc = pilot_doc()
    doc["predictions"] = [PREDICTION]  # written after looking at the pilot
    write_experiment(folder, battery, doc)
    console2, buf2 = capture()
    run_experiment(exp, folder / "run", console=console2)
    return Piloted(exp, folder / "after-pilot", folder / "run", buf.getvalue(), buf2.getvalue())


def test_the_pilot_phase_trains_scores_and_classifies_only_the_pilot_seeds(piloted):
    run = piloted.pilot
    seed5 = run / "cells" / "high" / "seed5"
    assert (seed5 / ".done-train").is_file() and (seed5 / ".done-score").is_file()
    assert sorted(p.name for p in (run / "cells" / "high").glob("seed*")) == ["seed5"]
    assert not (run / "registry.json").exists() and not (run / "fates.json").exists()
    assert not (run / "scoreboard.json").exists()
    recs = json.loads((run / "pilot_fates.json").read_text())["records"]
    assert recs and {(r["cell"], r["seed"]) for r in recs} == {("high", 5)}
    led = json.loads((run / "ledger.json").read_text())
    assert set(led["reads"]) == {"high/5/trajectories", "high/5/margins"}
    assert led["digests"] == {"high/5/trajectories": sha(seed5 / "traj.parquet"),
                              "high/5/margins": sha(seed5 / "traj.margins.parquet")}
    assert set(led["started"]) == {"high/5"} and led["registrations"] == []
    assert json.loads((run / "experiment.json").read_text())["pilot_seeds"] == [5]
    assert "pilot-classify:" in piloted.pilot_output and "exploratory, never scored" in piloted.pilot_output
    assert "pilot (exploratory, not scored)" in (run / "report.html").read_text()


def test_the_confirm_phase_binds_the_pilot_reads_then_trains_the_governed_seeds(piloted):
    run = piloted.run
    reg = load_registry(run / "registry.json", check_files=True)
    led = json.loads((run / "ledger.json").read_text())
    pilot_keys = ("high/5/trajectories", "high/5/margins")
    assert sorted((r.artifact, r.first_read, r.sha256) for r in reg.pilot.reads) == sorted(
        (k, led["reads"][k], led["digests"][k]) for k in pilot_keys
    )
    assert reg.pilot.seeds == [5] and reg.seeds.governed == [1] and [p["name"] for p in reg.predictions] == ["P1"]
    frozen = parse_stamp(reg.created_utc)
    assert all(parse_stamp(led["reads"][k]) < frozen for k in pilot_keys)
    assert parse_stamp(led["started"]["high/1"]) > frozen  # governed training after the freeze
    assert all(parse_stamp(led["reads"][k]) > frozen for k in led["reads"] if k.startswith("high/1/"))
    for name in ("fates.json", "evidence.json"):
        assert {r["seed"] for r in json.loads((run / name).read_text())["records"]} == {1}
    board = json.loads((run / "scoreboard.json").read_text())
    assert {o["name"]: o["status"] for o in board["outcomes"]} == {"P1": "PASS"}
    # the pilot's verdicts are as the pilot phase wrote them
    assert (run / "pilot_fates.json").read_bytes() == (piloted.pilot / "pilot_fates.json").read_bytes()
    assert "registry: bound 2 pilot read(s)" in piloted.confirm_output
    order = [ln for ln in verify(run / "registry.json") if ln.startswith("order:")]
    assert order[0].startswith("order: pilot reads before the freeze: 2 (first ")
    assert order[1] == f"order: freeze {reg.created_utc}, sha256 {reg.sha256}"
    assert order[2].startswith("order: confirmatory training started ")
    assert order[3].startswith("order: confirmatory reads: 2 (first ")


def _section(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, sid
    return m.group(1)


def test_the_report_keeps_the_pilot_apart_from_the_scoreboard_and_the_grid(piloted):
    html = (piloted.run / "report.html").read_text()
    pilot = _section(html, "pilot")
    assert "pilot (exploratory, not scored)" in pilot and "pilot_fates.json" in pilot
    assert 'title="seed 5:' in pilot and 'title="seed 1:' not in pilot
    for sid in ("scoreboard", "grid", "summary"):
        assert "seed 5" not in _section(html, sid)
    assert 'title="seed 1:' in _section(html, "grid")


def test_a_pilot_after_the_freeze_is_refused(piloted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(piloted.run, run, symlinks=True)
    console, buf = capture()
    run_experiment(piloted.experiment, run, console=console, phase="pilot")  # finished before the freeze
    assert "pilot: done earlier, skipped" in buf.getvalue()
    (run / ".done-pilot-classify").unlink()
    with pytest.raises(UngrokError, match="registry.json is already frozen; pilot runs precede the freeze"):
        run_experiment(piloted.experiment, run, console=capture()[0], phase="pilot")


def test_after_the_pilot_only_what_is_predicted_may_change(piloted, tmp_path, battery):
    """Predictions and confirmatory seeds stay open until the freeze; what shaped the pilot does not."""
    run = tmp_path / "run"
    shutil.copytree(piloted.pilot, run, symlinks=True)
    doc = pilot_doc()
    doc["train"]["sampler"]["steps"] = 16
    exp = write_experiment(tmp_path / "exp", battery, doc)
    with pytest.raises(UngrokError, match="holds a run of a different experiment"):
        run_experiment(exp, run, console=capture()[0], phase="pilot")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pilot_seeds": [1]}, r"seed\(s\) \[1\] are both pilot and governed \(seeds\)"),
        ({"pilot_seeds": [5, 5]}, "pilot_seeds: a seed is listed twice"),
        ({"quarantined_seeds": [5]}, r"seed\(s\) \[5\] are both pilot and quarantined"),
        ({"pilot_seeds": [-1]}, "pilot_seeds must be >= 0"),
        ({"pilot_record": "../pilot.json"}, "pilot_record: '../pilot.json' leaves the experiment's folder"),
        ({"pilot_record": "none.json"}, "pilot_record: .*none.json: pilot record not found"),
    ],
)
def test_bad_pilot_keys_are_one_line(tmp_path, battery, change, message):
    doc = pilot_doc()
    doc.update(change)
    exp = write_experiment(tmp_path, battery, doc)
    with pytest.raises(UngrokError, match=message) as e:
        load_experiment(exp)
    assert "\n" not in str(e.value) and str(exp) in str(e.value)


def test_a_pilot_record_is_validated_and_copied_into_the_run_folder(tmp_path, battery):
    from ungrok.experiment.run import _Log, prepare_run_dir

    doc = pilot_doc()
    doc["pilot_record"] = "pilots/pilot.json"
    (tmp_path / "pilots").mkdir()
    entry = dict(cell="web", seed=1, family="pronoun_gender_ref", verdict="DISPLACED", peak=0.9, final=0.2,
                 traj_sha256="c" * 64)
    (tmp_path / "pilots" / "pilot.json").write_text(json.dumps([entry]))
    exp = write_experiment(tmp_path, battery, doc)
    with pytest.raises(UngrokError, match=r"pilot record seed\(s\) \[1\] are governed or quarantined"):
        load_experiment(exp)
    (tmp_path / "pilots" / "pilot.json").write_text(json.dumps([{**entry, "seed": 101}]))
    loaded = load_experiment(exp)
    assert loaded.needs_registry
    prepare_run_dir(loaded, tmp_path / "run")
    copy = tmp_path / "run" / "pilots" / "pilot.json"
    assert copy.read_bytes() == (tmp_path / "pilots" / "pilot.json").read_bytes()
    from ungrok.experiment.run import preregister

    preregister(loaded, tmp_path / "run", _Log(capture()[0]))
    reg = load_registry(tmp_path / "run" / "registry.json", check_files=True)
    assert (reg.pilot.record.path, reg.pilot.record.sha256, reg.pilot.reads) == ("pilots/pilot.json", sha(copy), [])


def test_the_pilot_phase_needs_pilot_seeds_and_a_known_phase(tmp_path, battery, capsys):
    exp = write_experiment(tmp_path, battery, tiny_doc())
    code, _, err = ungrok(["run", exp, "--out", tmp_path / "run", "--phase", "pilot"], capsys)
    assert "--phase pilot: " in one_line_error(code, err) and "declares no pilot_seeds" in err
    code, _, err = ungrok(["run", exp, "--out", tmp_path / "run", "--phase", "later"], capsys)
    assert "--phase 'later': use pilot, confirm, all" in one_line_error(code, err)
    assert not (tmp_path / "run" / "cells").exists()


def test_phase_all_runs_the_pilot_then_freezes_then_confirms(tmp_path, battery, one_thread):
    doc = pilot_doc()
    doc["predictions"] = [PREDICTION]
    exp = write_experiment(tmp_path, battery, doc)
    console, buf = capture()
    run_experiment(exp, tmp_path / "run", console=console, phase="all")
    out = buf.getvalue()
    assert out.index("pilot-classify:") < out.index("registry: frozen") < out.index("run cell high seed 1:")
    reg = load_registry(tmp_path / "run" / "registry.json")
    assert {r.artifact for r in reg.pilot.reads} == {"high/5/trajectories", "high/5/margins"}
    assert json.loads((tmp_path / "run" / "scoreboard.json").read_text())["outcomes"][0]["status"] == "PASS"
    verify(tmp_path / "run" / "registry.json")
