"""The report leads with the focal rule: its headline, then its accuracy and CM side by side,
and every other rule folded in a closed <details> (SYNTHETIC run directory, made-up numbers)."""

from __future__ import annotations

import json
import re

import yaml

from report.synthetic import CELLS, FOCAL, OTHER, add_monitor, add_sweeps
from report.tables import section, table_with
from report.test_pilot import add_pilot
from ungrok.report import load_run, render_html
from ungrok.report.focal import focal_rule
from ungrok.report.focal_figures import focal_figure
from ungrok.report.html import PAGE, SECTIONS
from ungrok.report.lead import headline_sentences

# Every section a run can have, top to bottom.
ORDER = ["focal", "focal_trajectories", "monitor", "phase", "scoreboard", "pilot", "others", "summary", "grid",
         "ladders", "support", "hub", "mechanism", "notes", "constants"]


def _ids(html: str) -> list[str]:
    return re.findall(r'<section id="(\w+)"', html)


def _gids(fig, prefix: str) -> dict:
    return {a.get_gid(): a for a in fig.findobj(lambda a: (a.get_gid() or "").startswith(prefix))}


def test_page_order_leads_with_the_focal_rule(shared_html):
    assert [sid for sid, _, _ in PAGE] == ORDER
    assert _ids(shared_html) == [s for s in ORDER if s not in ("phase", "pilot", "hub", "mechanism")]
    assert _ids(shared_html) == [sid for sid, _, _ in SECTIONS]
    # the focal rule's figure leads; its old per-rule strips are not drawn a second time
    assert 'alt="trajectories and contrast margins of pronoun_gender_ref"' in section(
        shared_html, "focal_trajectories"
    )
    assert (
        f'alt="trajectories of {FOCAL}"' not in shared_html
        and f'alt="CM strips of {FOCAL}"' not in shared_html
    )


def test_every_optional_section_takes_its_place(run_dir):
    html = render_html(load_run(add_pilot(add_sweeps(add_monitor(run_dir)))))
    assert _ids(html) == [s for s in ORDER if s not in ("hub", "mechanism")]


def test_other_rules_are_folded_in_a_closed_details(shared_html):
    others = section(shared_html, "others")
    assert others.startswith('<h2>Other rules (details)</h2><details class="others"><summary>')
    assert "<details open" not in shared_html and shared_html.count("<details") == 1
    assert f"1 other rule ({OTHER}): trajectories and contrast margins</summary>" in others
    assert f'alt="trajectories of {OTHER}"' in others  # demoted, not removed
    assert f"No rule besides {FOCAL} has a contrast margin." in others  # det_an_choice has none
    assert others.endswith("</details>")


def test_headline_counts_verdicts_cm_and_the_transient(shared_data, shared_html):
    assert headline_sentences(shared_data, FOCAL) == [
        f"In all 10 runs (5 cells × 2 seeds), {FOCAL} ended RECOVERED in 4, DISPLACED in 3, NEVER in 3; the "
        "agree gate failed in 1.",
        "It emerged and then collapsed (smoothed held-out conflict accuracy reached ≥ 0.8, then ended ≤ 0.6) in 3 "
        "of 10 runs: 'high_k50' seed 2; 'low' seeds 1, 2.",
    ]
    head = section(shared_html, "focal")
    assert f"Focal rule: <code>{FOCAL}</code>" in head and "(the anchor rule)" in head
    rows = {r["cell"].text: r for r in table_with(head, "emerged, then collapsed")}
    assert list(rows) == list(CELLS)
    got = {c: ("".join(b[0] for b in r["seeds"].badges), r["mean CM_final"].text, r["emerged, then collapsed"].text)
           for c, r in rows.items()}
    assert got == {"high": ("RR", "+2.00", "no"), "high_k50": ("RD", "+0.50", "seed 2"),
                   "high_k100": ("NN", "-2.00", "no"), "low": ("Dd", "+0.50", "seeds 1, 2"),
                   "low_r1": ("RN", "+0.00", "no")}


def test_focal_figure_puts_cm_beside_accuracy_in_every_cell(shared_data):
    fig = focal_figure(shared_data, FOCAL)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 2 * len(CELLS)  # one (accuracy, CM) pair per cell
    acc, cm = _gids(fig, "conflict/"), _gids(fig, "cm/")
    for cell in CELLS:
        a, c = acc[f"conflict/{cell}/1"].axes, cm[f"cm/{cell}/1"].axes
        assert a is not c and a.get_shared_x_axes().joined(a, c)  # one step axis per pair
        (ax0, ay0, _, _), (cx0, cy0, _, _) = a.get_position().bounds, c.get_position().bounds
        assert ay0 == cy0 and ax0 < cx0  # side by side: accuracy left, CM right
        assert a.get_title(loc="left").startswith(f"{cell}   ") and c.get_ylabel() == "CM (nats)"
    # the same markers as the per-rule CM strips: onset 700 and zero crossing 800 of high_k50 seed 2
    assert list(_gids(fig, "onset/high_k50/2")["onset/high_k50/2"].get_xdata()) == [700, 700]
    assert list(_gids(fig, "zero/high_k50/2")["zero/high_k50/2"].get_xdata()) == [800]
    assert not _gids(fig, "warning")  # these logs carry no per-rule states: nothing to mark


def test_monitor_warnings_are_marked_on_both_panels(run_dir):
    data = load_run(add_monitor(run_dir))
    fig = focal_figure(data, FOCAL)
    marks = {g: int(a.get_xdata()[0]) for g, a in _gids(fig, "warning").items()}
    # first displacing/displaced after emerged (fate/warning.py); low/2 only ever "control-failing"
    planted = {("high", 2): 900, ("high_k50", 2): 500, ("low", 1): 800}
    assert marks == {
        f"{kind}/{c}/{s}": step for (c, s), step in planted.items() for kind in ("warning", "warning-cm")
    }
    cap = section(render_html(data), "focal_trajectories")
    assert (
        "first displacement warning (<em>displacing</em> or <em>displaced</em> after <em>emerged</em>), in 3 runs"
        in cap
    )


def test_the_experiment_names_the_focal_rule(run_dir):
    path = run_dir / "experiment.json"
    doc = json.loads(path.read_text())
    doc["focal"] = {"rule": OTHER, "ratio": "rule:prior"}
    path.write_text(json.dumps(doc))
    data = load_run(run_dir)
    assert focal_rule(data) == (OTHER, "the experiment's focal rule")
    html = render_html(data)
    assert f"Focal rule: <code>{OTHER}</code>" in section(html, "focal")
    others = section(html, "others")  # the anchor is now one of the others, still drawn in full
    assert f'alt="trajectories of {FOCAL}"' in others and f'alt="CM strips of {FOCAL}"' in others
    fig = focal_figure(data, OTHER)
    assert set(_gids(fig, "nocm/")) == {f"nocm/{c}" for c in CELLS}  # CM's place is kept, and says so


def test_without_experiment_json_focal_the_spec_decides(run_dir):
    from ungrok.probes.battery import build_battery, save_battery

    save_battery(build_battery([FOCAL, OTHER]), run_dir / "battery.jsonl")
    spec = {"name": "x", "seeds": [1, 2], "batteries": {"main": "battery.jsonl"},
            "classifier": {"anchor_family": "no_such_family"},  # no battery probes the anchor ...
            "cells": {"high": {"storyworld": {"tokens": 100000, "seed": 0}}},
            "predictions": [{"name": "P0", "expr": f"{OTHER} has conflict_final >= 0 in all seeds of cell high"}]}
    (run_dir / "experiment.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert load_run(run_dir).focal == OTHER  # ... so Experiment.focal is the first predicted family
    assert focal_rule(load_run(run_dir)) == (OTHER, "the experiment's focal rule")
    doc = json.loads((run_dir / "experiment.json").read_text())
    (run_dir / "experiment.json").write_text(json.dumps({**doc, "focal": {"rule": FOCAL}}))
    assert load_run(run_dir).focal == FOCAL  # what `ungrok run` recorded comes first
    (run_dir / "experiment.json").write_text(json.dumps(doc))
    (run_dir / "experiment.yaml").write_text("name: [unclosed\n")
    assert load_run(run_dir).focal is None  # unreadable: the report picks (the anchor first)
    assert focal_rule(load_run(run_dir)) == (FOCAL, "the anchor rule")
