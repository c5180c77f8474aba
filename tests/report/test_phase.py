"""The phase diagram: read from experiment.json's sweeps, one panel per combination of the knobs
past the first two, one point per cell with its seeds' letters, CM colour and counted ratio."""

from __future__ import annotations

import json
import re

import pytest

from report.synthetic import FOCAL, OTHER, PHASE_LETTERS, SUPPORT, SWEEPS, add_sweeps
from ungrok.report import build_report, load_run
from ungrok.report.focal import focal_rule
from ungrok.report.phase import panels
from ungrok.report.phase_figures import phase_figure


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    from report.synthetic import make_run_dir

    return load_run(add_sweeps(make_run_dir(tmp_path_factory.mktemp("swept"))))


def _sweep(data, name):
    return next(s for s in data.phase.sweeps if s.name == name)


def _gids(fig, prefix):
    return {a.get_gid(): a for a in fig.findobj(lambda a: (a.get_gid() or "").startswith(prefix))}


def test_sweeps_are_read_from_experiment_json(swept, shared_data):
    assert shared_data.phase is None  # no sweeps: no section, the report as before
    assert [s.name for s in swept.phase.sweeps] == ["kill", "web"]
    web = _sweep(swept, "web")
    assert web.knobs == ("storyworld.frame_rate", "storyworld.frame_ratio", "storyworld.seed")
    assert web.points == SWEEPS["web"]["cells"] and web.values("storyworld.frame_ratio") == [0.4, 8.0]
    # points in ascending order of the knobs' values, first knob first
    assert list(web.points) == ["high_k100", "high", "low", "low_r1"]
    assert list(_sweep(swept, "kill").points) == ["high_k50", "high_k100"]
    assert swept.focal == FOCAL and swept.phase.ratio == "she:he"
    assert focal_rule(swept) == (FOCAL, "the experiment's focal rule")
    assert not swept.notes


def test_layout_first_knob_across_second_up_a_panel_per_further_combination(swept):
    (row,) = panels(_sweep(swept, "kill"))
    assert (row.x, row.y, row.title, row.cells) == ("kill.rate", None, "", ("high_k50", "high_k100"))
    seed0, seed1 = panels(_sweep(swept, "web"))
    assert (seed0.x, seed0.y) == ("storyworld.frame_rate", "storyworld.frame_ratio")
    assert (seed0.title, seed0.cells) == ("storyworld.seed = 0", ("high", "low"))
    assert (seed1.title, seed1.cells) == ("storyworld.seed = 1", ("high_k100", "low_r1"))


@pytest.mark.parametrize(("sweep", "n_panels"), [("kill", 1), ("web", 2)])
def test_figure_draws_one_point_per_cell_with_its_letters_and_ratio(swept, sweep, n_panels):
    sw = _sweep(swept, sweep)
    fig = phase_figure(swept, sw, FOCAL)
    panels_drawn = [ax for ax in fig.axes if (ax.get_gid() or "").startswith("panel/") and ax.get_visible()]
    assert len(panels_drawn) == n_panels
    assert set(_gids(fig, "point/")) == {f"point/{c}" for c in sw.points}
    letters = {g.removeprefix("letters/"): t.get_text() for g, t in _gids(fig, "letters/").items()}
    assert letters == {c: PHASE_LETTERS[c] for c in sw.points}
    ratios = {g.removeprefix("ratio/"): t.get_text() for g, t in _gids(fig, "ratio/").items()}
    assert ratios == {c: f"she:he {SUPPORT[c][0]:.3g}" for c in sw.points}
    assert len(_gids(fig, "colorbar")) == 1


def test_points_sit_on_their_knob_values_coloured_by_mean_cm_final(swept):
    fig = phase_figure(swept, _sweep(swept, "web"), FOCAL)
    points = _gids(fig, "point/")
    # frame_rate across (0.005 -> 0, 0.01 -> 1), frame_ratio up (0.4 -> 0, 8 -> 1): ascending
    assert points["point/high"].get_offsets().tolist() == [[0.0, 1.0]]
    assert points["point/low_r1"].get_offsets().tolist() == [[1.0, 0.0]]
    # mean CM_final over seeds: high +2 (CM_UP twice), high_k100 -2, low (-1 + 2) / 2
    assert points["point/high"].get_array().tolist() == pytest.approx([2.0])
    assert points["point/high_k100"].get_array().tolist() == pytest.approx([-2.0])
    assert points["point/low"].get_array().tolist() == pytest.approx([0.5])
    norm = points["point/high"].norm
    assert (norm.vmin, norm.vmax) == (-2.0, 2.0)  # centred at 0
    for c in ("high", "high_k100"):
        points[f"point/{c}"].update_scalarmappable()  # what drawing does: values -> colours
    blue, red = (points[f"point/{c}"].get_facecolor()[0] for c in ("high", "high_k100"))
    assert blue[2] > blue[0] and red[0] > red[2]


def test_figure_of_another_rule_and_without_cm(swept):
    fig = phase_figure(swept, _sweep(swept, "kill"), OTHER)  # det_an_choice: verdicts, no margins
    point = _gids(fig, "point/")["point/high_k50"]
    assert point.get_array() is None and list(point.get_facecolor()) == []  # hollow grey: no CM
    assert _gids(fig, "letters/")["letters/high_k50"].get_text() == "R R"


def test_section_follows_the_focal_rule_with_a_table(swept, tmp_path):
    html = build_report(swept, tmp_path / "report.html").read_text()
    ids = re.findall(r'<section id="(\w+)"', html)
    assert ids[:5] == ["focal", "focal_trajectories", "monitor", "phase", "scoreboard"]
    section = html.split('<section id="phase">')[1].split("</section>")[0]
    assert section.count("<img ") == 2 and section.count("<table") == 2
    assert "Rule shown: <code>pronoun_gender_ref</code> (the experiment&#39;s focal rule)" in section
    assert "One panel per combination of storyworld.seed." in section
    row = section.split("<td>high_k100</td>")[1].split("</tr>")[0]  # kill sweep row: rate, letters, CM, ratio
    assert '<td class="num">1</td>' in row and row.count('class="fate fate-never') == 2
    assert '<td class="num">-2.00</td>' in row and '<td class="num">0.020</td>' in row


def test_bad_or_missing_parts_become_notes(run_dir):
    path = run_dir / "experiment.json"
    doc = json.loads(path.read_text())
    doc["sweeps"] = {"bad": {"knobs": ["a"], "cells": {"high": {"a": [1]}}},
                     "odd": {"knobs": ["a"], "cells": {"high": {"a": 1}, "low": {"b": 1}}},
                     "flat": {"high": {"a": 1}},
                     "some": {"knobs": ["a"], "cells": {"high": {"a": 1}, "gone": {"a": 2}}}}
    doc["focal"] = {"rule": "rule_without_verdicts"}
    path.write_text(json.dumps(doc))
    data = load_run(run_dir)
    assert [s.name for s in data.phase.sweeps] == ["some"] and data.phase.ratio == "rule:prior"
    assert list(data.phase.sweeps[0].points) == ["high"]
    notes = " ".join(data.notes)
    assert all(f"sweep {n!r} lacks its knobs" in notes for n in ("bad", "odd", "flat"))
    assert "sweep 'some' names cell(s) gone that are not cells" in notes
    assert focal_rule(data) == (FOCAL, "the anchor rule (rule_without_verdicts has no verdicts)")
