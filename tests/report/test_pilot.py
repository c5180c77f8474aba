"""The report's pilot section: pilot verdicts (the run's pilot_fates.json and the registry's
pilot record) in a table of their own, labelled exploratory, and in no other section."""

from __future__ import annotations

import json
import re

from report.synthetic import FOCAL, SEEDS
from ungrok.report import load_run, render_html
from ungrok.report.pilot import LABEL, load_pilot
from ungrok.report.sections.pilot import section_pilot

PILOT_SEED, RECORD_SEED = 9, 101


def pilot_records():
    """Made-up pilot verdicts (seed 9) in the fates.json record shape."""
    return [
        dict(cell="high", seed=PILOT_SEED, family=FOCAL, fate="DISPLACED", agree_gate="pass", conflict_final=0.2,
             conflict_max=0.9, cm_final=-0.5, agree_final=1.0, agree_max=1.0),
        dict(cell="low", seed=PILOT_SEED, family=FOCAL, fate="NEVER", agree_gate="fail", conflict_final=0.0,
             conflict_max=0.1, agree_final=0.5, agree_max=1.0),
    ]


def add_pilot(run_dir):
    (run_dir / "pilot_fates.json").write_text(json.dumps({"records": pilot_records()}))
    entry = dict(cell="web", seed=RECORD_SEED, family=FOCAL, verdict="RECOVERED", agree_gate="pass",
                 cm_final=None, peak=0.95, final=0.91, traj_sha256="d" * 64)
    (run_dir / "pilot.json").write_text(json.dumps([entry]))
    (run_dir / "registry.json").write_text(json.dumps({"pilot": {"record": {"path": "pilot.json"}}}))
    return run_dir


def _section(html, sid):
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    return m.group(1) if m else None


def test_a_run_without_a_pilot_has_no_pilot_section(data):
    assert data.pilot is None
    assert _section(render_html(data), "pilot") is None


def test_pilot_rows_come_from_pilot_fates_and_the_registered_record(run_dir):
    pilot = load_pilot(add_pilot(run_dir))
    got = sorted((r.source, r.cell, r.seed, r.fate, r.agree_gate, r.final, r.peak, r.cm_final) for r in pilot.rows)
    assert got == [
        ("pilot record pilot.json", "web", RECORD_SEED, "RECOVERED", "pass", 0.91, 0.95, None),
        ("pilot_fates.json", "high", PILOT_SEED, "DISPLACED", "pass", 0.2, 0.9, -0.5),
        ("pilot_fates.json", "low", PILOT_SEED, "NEVER", "fail", 0.0, 0.1, None),
    ]
    html = section_pilot(pilot)
    assert LABEL == "pilot (exploratory, not scored)" and LABEL in html
    assert '<span class="fate fate-displaced" title="seed 9: DISPLACED' in html
    assert '<span class="fate fate-never gate-fail" title="seed 9: NEVER' in html  # lower-case n, outlined
    assert "+0.91" not in html and "0.91" in html and "-0.50" in html


def test_pilot_verdicts_never_reach_the_scoreboard_grid_or_summary(run_dir):
    data = load_run(add_pilot(run_dir))
    assert {r["seed"] for r in data.records} == set(SEEDS)  # fates.json only
    html = render_html(data)
    pilot = _section(html, "pilot")
    assert pilot is not None and LABEL in pilot and "seed 9:" in pilot and "seed 101:" in pilot
    assert "<h2>Pilot (exploratory, not scored)</h2>" in html
    for sid in ("focal", "summary", "scoreboard", "grid", "ladders", "support"):
        body = _section(html, sid)
        assert "seed 9" not in body and "seed 101" not in body, sid


def test_an_unreadable_pilot_file_is_a_note_not_a_failure(run_dir):
    (run_dir / "pilot_fates.json").write_text("{not json")
    pilot = load_pilot(run_dir)
    assert pilot.rows == [] and "pilot_fates.json is not valid JSON" in pilot.notes[0]
    assert "pilot_fates.json is not valid JSON" in section_pilot(pilot)
