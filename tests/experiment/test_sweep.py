"""Sweeps: a base cell and a grid of knob values expand into ordinary cells (a pure function),
with readable names, recorded coordinates and one-line errors naming the sweep and the knob;
the generated cells are cells everywhere after that (predictions, build order, the registry)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import capture, tiny_doc, write_experiment
from ungrok.errors import UngrokError
from ungrok.experiment.spec import load_experiment
from ungrok.experiment.sweep import expand_sweeps, knob_labels, parse_sweeps, value_text

WEB_BASE = {"storyworld": {"tokens": 4000000, "seed": 0, "global_ratio": 8.0, "frame_ratio": 0.3,
                           "frame_rate": 0.005, "bridge_rate": 0.04}}
SWEEPS = {
    "web": {"base": WEB_BASE, "grid": {"storyworld.frame_rate": [0.005, 0.01], "storyworld.frame_ratio": [0.3, 0.6]}},
    "kill": {"base": {"kill": {"parent": "high", "rule": "pronoun_gender_ref"}}, "grid": {"kill.rate": [0.25, 0.5, 1.0]}},
}
WEB_CELLS = ["web_frame_rate-0.005_frame_ratio-0.3", "web_frame_rate-0.005_frame_ratio-0.6",
             "web_frame_rate-0.01_frame_ratio-0.3", "web_frame_rate-0.01_frame_ratio-0.6"]
KILL_CELLS = ["kill_0.25", "kill_0.5", "kill_1"]


def expand(sweeps, declared=("high",)):
    return expand_sweeps(parse_sweeps(sweeps, "exp.yaml"), dict.fromkeys(declared, {}), "exp.yaml")


def test_expansion_is_the_cartesian_product_in_grid_order():
    cells, points = expand(SWEEPS)
    assert list(cells) == WEB_CELLS + KILL_CELLS  # sweep by sweep; the last knob varies fastest
    assert points["web"]["web_frame_rate-0.01_frame_ratio-0.3"] == {"storyworld.frame_rate": 0.01,
                                                                    "storyworld.frame_ratio": 0.3}
    assert points["kill"] == {"kill_0.25": {"kill.rate": 0.25}, "kill_0.5": {"kill.rate": 0.5},
                              "kill_1": {"kill.rate": 1.0}}
    # each cell is the base with its point merged in; the base itself is left as written
    assert cells["web_frame_rate-0.01_frame_ratio-0.6"]["storyworld"] == {**WEB_BASE["storyworld"],
                                                                          "frame_rate": 0.01, "frame_ratio": 0.6}
    assert cells["kill_0.5"] == {"kill": {"parent": "high", "rule": "pronoun_gender_ref", "rate": 0.5}}
    assert SWEEPS["kill"]["base"] == {"kill": {"parent": "high", "rule": "pronoun_gender_ref"}}
    assert expand(SWEEPS) == (cells, points)  # deterministic


def test_names_are_readable_and_safe():
    assert [value_text(v) for v in (0.25, 1.0, 1e-05, 1e20, 4000000, -0.5, True, "a/b c")] == [
        "0.25", "1", "1e-05", "1e20", "4000000", "-0.5", "true", "a_b_c"]
    # two knobs that share their last part keep their whole paths
    assert knob_labels(["storyworld.seed", "kill.seed", "kill.rate"]) == {
        "storyworld.seed": "storyworld.seed", "kill.seed": "kill.seed", "kill.rate": "rate"}
    cells, _ = expand({"t": {"base": {"storyworld": {"tokens": 1000}},
                             "grid": {"train.sampler.steps": [8], "train.optimizer.matrix_lr": [0.02]}}})
    assert list(cells) == ["t_steps-8_matrix_lr-0.02"]
    assert cells["t_steps-8_matrix_lr-0.02"]["train"] == {"sampler": {"steps": 8}, "optimizer": {"matrix_lr": 0.02}}


KILL = {"kill": {"parent": "high", "rule": "pronoun_gender_ref"}}
BAD = [
    ({"s": {"grid": {"storyworld.nope": [1]}}}, "sweeps.s.grid.storyworld.nope: unknown knob path: storyworld has "
                                                "no setting 'nope'"),
    ({"s": {"grid": {"colour": [1]}}}, "sweeps.s.grid.colour: unknown knob path: a cell has no setting 'colour'"),
    ({"s": {"grid": {"kill.rate.x": [1]}}}, "unknown knob path: kill.rate is a single setting"),
    ({"s": {"grid": {"storyworld": [1]}}}, "sweeps.s.grid.storyworld: storyworld is a section"),
    ({"s": {"grid": {"train.sampler.stepz": [1]}}}, "train.sampler has no setting 'stepz'"),
    ({"s": {"grid": {"train.seed": [1]}}}, "sweeps.s.grid.train.seed: give seeds at the top level"),
    ({"s": {"base": KILL, "grid": {"kill.rate": []}}}, "sweeps.s.grid.kill.rate: empty value list"),
    ({"s": {"base": KILL, "grid": {}}}, "sweeps.s.grid: name at least one knob"),
    ({"s": {"base": KILL, "grid": {"kill.rate": [0.5, 0.5]}}}, "sweeps.s.grid.kill.rate: a value is listed twice"),
    ({"s": {"base": KILL, "grid": {"kill.rate": [[0.5]]}}}, "value \\[0.5\\] is not a number"),
    ({"s": {"base": KILL, "grid": {"kill.rate": [1.5]}}}, "sweeps.s.grid.kill.rate: value 1.5: Input should be "
                                                          "less than or equal to 1"),
    ({"s": {"base": {"storyworld": {}}, "grid": {"train.probe_every": [0]}}},
     "sweeps.s.grid.train.probe_every: value 0: field probe_every: Input should be greater than or equal to 1"),
    ({"s": {"base": {"kill": {"parent": "high"}}, "grid": {"kill.rate": [0.5]}}},
     r"sweeps.s: cell s_0.5 \(kill.rate=0.5\): kill.rule: required key missing"),
    ({"s": {"base": {"storyworld": {}}, "grid": {"corpus": ["a/b", "a_b"]}}}, "sweeps.s: two points get the same "
                                                                            "cell name"),
    ({"high": {"base": {"storyworld": {}}, "grid": {"storyworld.seed": [0]}}},
     "sweeps.high: its cell 'high_0' is already"),
    ({"x": {"grid": {"corpus": ["y_1"]}}, "x_y": {"grid": {"corpus": ["1"]}}},
     "sweeps.x and sweeps.x_y both make cell 'x_y_1'"),
    ({"my sweep": {"base": KILL, "grid": {"kill.rate": [0.5]}}}, "sweeps.my sweep: a sweep name starts"),
    ({"s": {"base": KILL, "grid": {"kill.rate": [0.5]}, "extra": 1}}, "sweeps.s: unknown key extra"),
    ([1, 2], "sweeps: expected a mapping"),
]


@pytest.mark.parametrize(("sweeps", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_sweeps_are_one_line_naming_sweep_and_knob(sweeps, message):
    with pytest.raises(UngrokError, match=message) as e:
        expand(sweeps, declared=("high", "high_0"))
    assert "\n" not in str(e.value) and str(e.value).startswith("exp.yaml: sweeps")


def _sweep_doc() -> dict:
    doc = tiny_doc()
    doc["sweeps"] = {
        "low": {"base": {"storyworld": {"tokens": 1000, "global_ratio": 0.5}},
                "grid": {"storyworld.frame_rate": [0.01, 0.02], "storyworld.frame_ratio": [0.4]}},
        "kill": {"base": {"kill": {"parent": "high", "rule": "pronoun_gender_ref"}}, "grid": {"kill.rate": [0.5, 1.0]}},
    }
    doc["cells"] = {"high": doc["cells"]["high"]}
    doc["predictions"] = [
        {"name": "P1", "expr": "pronoun_gender_ref has conflict_final >= 0 in all seeds of cells high, kill_*"},
        {"name": "P2", "expr": "pronoun_gender_ref has cm_final < 0 in all seeds of cell low_frame_rate-0.02_frame_ratio-0.4"},
    ]
    return doc


LOW = ["low_frame_rate-0.01_frame_ratio-0.4", "low_frame_rate-0.02_frame_ratio-0.4"]


def test_load_experiment_adds_the_cells_and_records_their_points(tmp_path, battery):
    from ungrok.experiment.tasks import experiment_json

    exp = load_experiment(write_experiment(tmp_path, battery, _sweep_doc()))
    assert list(exp.cells) == ["high", *LOW, "kill_0.5", "kill_1"]
    assert exp.cells["kill_1"].kind == "kill" and exp.cells["kill_1"].kill.rate == 1.0
    assert exp.cells[LOW[1]].storyworld.frame_rate == 0.02 and exp.cells[LOW[1]].storyworld.global_ratio == 0.5
    assert exp.train_docs["kill_0.5"] == exp.train_docs["high"]  # generated edits train like their parent
    assert exp.sweep_points == {
        "low": {LOW[0]: {"storyworld.frame_rate": 0.01, "storyworld.frame_ratio": 0.4},
                LOW[1]: {"storyworld.frame_rate": 0.02, "storyworld.frame_ratio": 0.4}},
        "kill": {"kill_0.5": {"kill.rate": 0.5}, "kill_1": {"kill.rate": 1.0}},
    }
    assert exp.focal == "pronoun_gender_ref"  # the anchor, probed by the battery
    doc = experiment_json(exp)
    assert doc["sweeps"] == {"low": {"knobs": ["storyworld.frame_rate", "storyworld.frame_ratio"],
                                     "cells": exp.sweep_points["low"]},
                             "kill": {"knobs": ["kill.rate"], "cells": exp.sweep_points["kill"]}}
    assert doc["focal"] == {"rule": "pronoun_gender_ref", "ratio": "she:he"}
    assert json.loads(json.dumps(doc)) == doc


def test_predictions_over_generated_names_compile_and_freeze(tmp_path, battery):
    from ungrok.prereg import freeze
    from ungrok.prereg.predictions import Vocabulary, compile_predictions

    exp = load_experiment(write_experiment(tmp_path, battery, _sweep_doc()))
    vocab = Vocabulary(families=frozenset(exp.families), cells=tuple(exp.cells))
    p1, p2 = compile_predictions(exp.spec.predictions, vocab)
    assert p1.cells == ["high", "kill_0.5", "kill_1"] and p2.cells == [LOW[1]]
    reg = freeze(exp.path, tmp_path / "run")  # the registry reads the file itself: it sees the same cells
    assert reg.cells == list(exp.cells)
    assert reg.predictions[0]["cells"] == ["high", "kill_0.5", "kill_1"]


def test_generated_cells_meet_every_other_check(tmp_path, battery):
    doc = _sweep_doc()
    doc["sweeps"]["kill"]["base"]["kill"]["parent"] = "nowhere"
    with pytest.raises(UngrokError, match="cells.kill_0.5.kill.parent: no cell named 'nowhere'"):
        load_experiment(write_experiment(tmp_path, battery, doc))
    doc = _sweep_doc()
    doc["cells"]["kill_1"] = {"storyworld": {"tokens": 1000}}
    with pytest.raises(UngrokError, match="sweeps.kill: its cell 'kill_1' is already a cell"):
        load_experiment(write_experiment(tmp_path, battery, doc))
    doc = _sweep_doc()
    doc["predictions"][0]["expr"] = doc["predictions"][0]["expr"].replace("kill_*", "web_*")
    with pytest.raises(UngrokError, match="cell pattern 'web_\\*' matches no cell"):
        load_experiment(write_experiment(tmp_path, battery, doc))
    doc = _sweep_doc()  # a file of sweeps alone is a whole experiment
    doc["sweeps"]["high"] = {"base": {"storyworld": {"tokens": 1000}}, "grid": {"storyworld.seed": [0]}}
    doc["sweeps"]["kill"]["base"]["kill"]["parent"] = "high_0"
    del doc["cells"], doc["predictions"]
    exp = load_experiment(write_experiment(tmp_path, battery, doc))
    assert list(exp.cells) == [*LOW, "kill_0.5", "kill_1", "high_0"]  # sweep by sweep
    assert exp.order == (*LOW, "high_0", "kill_0.5", "kill_1")  # each edit after its parent
    assert list(exp.sweep_points) == ["low", "kill", "high"]


def test_focal_falls_back_to_the_first_predicted_family(tmp_path, battery):
    doc = _sweep_doc()
    doc["classifier"]["anchor_family"] = "no_such_family"  # no battery probes the anchor
    doc["predictions"].insert(0, {"name": "P0", "expr": "det_an_choice has conflict_final >= 0 in all seeds of "
                                                        "cell high"})
    assert load_experiment(write_experiment(tmp_path, battery, doc)).focal == "det_an_choice"


def test_an_experiment_without_sweeps_is_unchanged(tmp_path, battery):
    from ungrok.experiment.tasks import experiment_json

    exp = load_experiment(write_experiment(tmp_path, battery))
    assert exp.sweep_points == {} and exp.spec.sweeps == {}
    assert set(experiment_json(exp)) == {"name", "cells", "seeds"}  # no sweeps, no focal: the old document


def test_the_transient_pilot_still_loads():
    path = Path(__file__).parents[2] / "examples" / "pilots" / "transient.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    exp = load_experiment(path)
    assert exp.sweep_points == {} and set(exp.cells) >= {"high", "web"}


def test_a_run_records_the_points_and_reports_the_phase_diagram(tmp_path, battery, one_thread):
    from ungrok.experiment.run import run_experiment

    doc = tiny_doc()
    del doc["cells"], doc["predictions"], doc["quarantined_seeds"]
    doc["seeds"] = [1]
    doc["sweeps"] = {"sw": {"base": {"storyworld": {"tokens": 100_000, "seed": 0, "global_ratio": 8}},
                            "grid": {"storyworld.frame_ratio": [8, 0.4]}}}
    console, _ = capture()
    run_experiment(write_experiment(tmp_path, battery, doc), tmp_path / "run", console=console)
    exp_json = json.loads((tmp_path / "run" / "experiment.json").read_text())
    assert exp_json["sweeps"] == {"sw": {"knobs": ["storyworld.frame_ratio"],
                                         "cells": {"sw_8": {"storyworld.frame_ratio": 8},
                                                   "sw_0.4": {"storyworld.frame_ratio": 0.4}}}}
    assert exp_json["focal"] == {"rule": "pronoun_gender_ref", "ratio": "she:he"}
    html = (tmp_path / "run" / "report.html").read_text()
    assert '<section id="phase"><h2>Phase diagram</h2>' in html and 'alt="phase diagram of sweep sw"' in html
