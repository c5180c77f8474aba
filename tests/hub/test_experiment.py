"""A hub section in an experiment file: `ungrok run` scores, classifies and reports public checkpoints."""

from __future__ import annotations

import json

import pytest
import yaml

from ungrok.errors import UngrokError
from ungrok.experiment.run import run_experiment
from ungrok.experiment.spec import load_experiment

from . import builders as B


def write_experiment(folder, battery_file, **hub):  # noqa: ANN001, ANN003, ANN201
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "battery.jsonl").write_bytes(battery_file.read_bytes())
    doc = {"name": "public", "batteries": {"main": "battery.jsonl"},
           "hub": {"models": [*B.SIZES, "org/absent"], "revisions": list(B.REVISIONS), "offline": True,
                   "device": "cpu", "n_boot": 200, **hub}}
    path = folder / "exp.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_hub_only_experiment_runs_classifies_reports_and_resumes(offline, tmp_path):
    _, battery = offline
    exp = write_experiment(tmp_path / "exp", battery)
    run = tmp_path / "run"
    first = run_experiment(exp, run)
    assert first.stages["hub"].done == 15 and first.stages["hub"].skipped == 0
    fates = json.loads((run / "hub" / "hub_fates.json").read_text())
    got = {r["run"]: r["fate"] for r in fates["records"]}
    assert got == B.VERDICTS  # the designed verdicts, classified with the experiment's classifier
    assert fates["scale"]["rho"] == pytest.approx(1.0)
    suite = json.loads((run / "hub" / "suite.json").read_text())
    assert [s["model"] for s in suite["skipped"]] == ["org/absent"]  # named, skipped, not fatal
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "Public checkpoints" in html and "org/neox-l" in html
    again = run_experiment(exp, run)
    assert again.stages["hub"].done == 0 and again.stages["hub"].skipped == 15


def test_revisions_may_differ_per_model(offline, tmp_path):
    _, battery = offline
    revs = {"org/neox-s": ["step128", "step1000"], "*": ["step143000"]}
    exp = write_experiment(tmp_path / "exp", battery, models=list(B.SIZES), revisions=revs)
    run_experiment(exp, tmp_path / "run")
    suite = json.loads((tmp_path / "run" / "hub" / "suite.json").read_text())
    got = {m: [r["revision"] for r in v["revisions"]] for m, v in suite["models"].items()}
    assert got == {"org/neox-s": ["step128", "step1000"], "org/neox-m": ["step143000"],
                   "org/neox-l": ["step143000"]}


@pytest.mark.parametrize(
    ("hub", "message"),
    [
        ({"battery": "other"}, "hub.battery: 'other' is not a key of batteries"),
        ({"revisions": {"org/neox-x": ["step1"]}}, "hub.revisions: 'org/neox-x' is not one of hub.models"),
        ({"revisions": {"org/neox-s": ["step1"]}}, "hub.revisions: no grid for org/neox-m"),
        ({"revisions": "auto"}, "no known revision grid for org/neox-s"),
        ({"family": "nope"}, "hub.family: no battery probes 'nope'"),
        ({"dtype": "int8"}, "hub.dtype: must be one of"),
        ({"scale_models": ["org/other"]}, "hub.scale_models: 'org/other' is not one of hub.models"),
    ],
)
def test_bad_hub_sections_are_one_line(designed_cache, tmp_path, hub, message):
    _, battery = designed_cache
    with pytest.raises(UngrokError, match=message) as e:
        load_experiment(write_experiment(tmp_path, battery, **hub))
    assert "\n" not in str(e.value)


def test_an_experiment_needs_cells_or_a_hub(tmp_path):
    (tmp_path / "e.yaml").write_text("name: x\nbatteries: {main: b.jsonl}\n", encoding="utf-8")
    with pytest.raises(UngrokError, match="cells: give at least one cell"):
        load_experiment(tmp_path / "e.yaml", check_files=False)


def test_the_papers_public_suite_file_validates():
    from pathlib import Path

    from ungrok.hub.revisions import pythia_grid, resolve_revisions

    path = Path(__file__).resolve().parents[2] / "examples" / "pythia.yaml"
    exp = load_experiment(path, check_files=False)
    h = exp.spec.hub
    sizes = ["70m", "160m", "410m", "1b", "1.4b"]
    assert h.models == [f"EleutherAI/pythia-{s}" for s in sizes] + ["allenai/OLMo-1B-hf"]
    assert not exp.cells and h.battery == "rvp31" and h.family == "pronoun_gender_ref"
    grid = resolve_revisions(h.models[0], h.revisions_for(h.models[0]))
    assert grid == pythia_grid(thinned=True) and len(grid) == 41  # docs/method.md §10
    assert h.revisions_for("allenai/OLMo-1B-hf") == "auto"
    assert h.scale_models == h.models[:5]  # the paper's rho is over the five Pythia sizes


def test_scale_models_restrict_the_statistic(offline, tmp_path):
    _, battery = offline
    exp = write_experiment(tmp_path / "exp", battery, models=list(B.SIZES), scale_models=list(B.SIZES)[:2])
    run_experiment(exp, tmp_path / "run")
    scale = json.loads((tmp_path / "run" / "hub" / "hub_fates.json").read_text())["scale"]
    assert [e["model"] for e in scale["models"]] == list(B.SIZES)[:2]
    assert scale["rho"] is None and "at least 3 models" in scale["note"]  # two models: no rho
