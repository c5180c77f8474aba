"""The live-monitor section on the SYNTHETIC run directory (made-up numbers; see synthetic.py)."""

from __future__ import annotations

import html as html_lib

import pytest

from report.synthetic import FOCAL, OTHER, add_monitor
from report.tables import section, tables
from ungrok.fate.warning import score
from ungrok.report import load_run, render_html
from ungrok.report.monitor import by_family, warning_runs
from ungrok.report.sections.monitor import section_watch


@pytest.fixture
def watched(run_dir):
    return load_run(add_monitor(run_dir))


def test_planted_states_give_the_hand_computed_leads_and_counts(watched):
    assert watched.watch is not None
    assert (watched.watch.focal, watched.watch.focal_why) == (FOCAL, "the anchor rule")
    runs = warning_runs(watched)
    tp = runs[("high_k50", 2, FOCAL)]
    assert (tp.fate, tp.warning, tp.collapse, tp.total_steps, tp.lead, tp.outcome) == ("DISPLACED", 500, 700, 1500,
                                                                                      200, "TP")
    late = runs[("low", 1, FOCAL)]
    assert (late.warning, late.collapse, late.lead, late.outcome) == (800, 700, -100, "TP")
    alarm = runs[("high", 2, FOCAL)]
    assert (alarm.fate, alarm.warning, alarm.collapse, alarm.outcome) == ("RECOVERED", 900, None, "FP")
    gate = runs[("low", 2, FOCAL)]
    assert (gate.warning, gate.gate_passed, gate.outcome) == (None, False, None)  # control-failing: no warning
    assert not runs[("high_k100", 1, FOCAL)].monitored
    fams = by_family(runs)
    f = fams[FOCAL]
    assert (f.scored, f.tp, f.fp, f.fn, f.tn, f.gate_failed, f.unmonitored) == (8, 2, 1, 0, 5, 1, 1)
    assert f.precision == pytest.approx(2 / 3) and f.recall == 1.0
    assert f.median_lead_share == pytest.approx((200 / 1500 - 100 / 1500) / 2)
    o = fams[OTHER]
    assert (o.scored, o.tp, o.fp, o.fn, o.unmonitored, o.precision, o.recall) == (9, 0, 1, 0, 1, 0.0, None)
    every = score(runs.values())
    assert (every.scored, every.tp, every.fp, every.fn, every.gate_failed, every.unmonitored) == (17, 2, 2, 0, 1, 2)


def test_section_tables(watched):
    page = render_html(watched)
    sec = section(page, "monitor")
    assert "<h2>Live monitor: warnings before the collapse</h2>" in page
    assert f"Focal rule: <code>{FOCAL}</code>" in sec
    runs_t, fam_t, log_t = tables(sec)
    head = [c.text for c in runs_t[0]]
    assert head == ["cell", "seed", "fate", "first warning", "collapse", "lead (steps)", "lead (% of run)", "outcome"]
    rows = {(r[0].text, r[1].text): r for r in runs_t[1:]}
    assert len(rows) == 10
    k50 = rows[("high_k50", "2")]
    assert [b[0] for b in k50[2].badges] == ["D"]
    assert [c.text for c in k50[3:]] == ["500", "700", "200", "13.3%", "TP"]
    assert [c.text for c in rows[("low", "1")][3:]] == ["800", "700", "-100", "-6.7%", "TP"]
    assert [c.text for c in rows[("high", "2")][3:]] == ["900", "–", "–", "–", "FP"]
    assert rows[("low", "2")][7].text == "agree gate failed: not scored"
    assert rows[("high_k100", "1")][7].text == "no monitor log"
    text = html_lib.unescape(sec)
    assert (f"Over 8 scored runs of the focal rule {FOCAL}: precision 0.67 (2 of 3 warned runs ended DISPLACED), "
            "recall 1.00 (2 of 2 DISPLACED runs warned), 1 false alarm; median lead 3.3% of the run over 2 true "
            "positives. Left out: 1 with a failed agree gate, 1 the monitor did not watch.") in text
    assert ("Over 17 scored runs of the experiment (every rule, cell and seed): precision 0.50 (2 of 4 warned "
            "runs ended DISPLACED), recall 1.00") in text
    fam_rows = {r[0].text: [c.text for c in r[1:]] for r in fam_t[1:]}
    assert fam_rows[FOCAL] == ["8", "2", "3", "2", "1", "0", "0.67", "1.00", "3.3%", "2"]
    assert fam_rows[OTHER] == ["9", "0", "1", "0", "1", "0", "0.00", "–", "–", "1"]
    assert len(log_t) == 1 + 6  # the warning lines: header + 6 entries into a warning state


def test_old_logs_without_states_keep_the_warning_lines(data):
    # the base fixture's monitor.jsonl lines carry no per-rule states
    sec = section_watch(data)
    assert "hold no per-rule states" in sec
    assert "displacing (smoothed conflict fell 0.33)" in sec


def test_no_monitor_and_no_verdicts(run_dir):
    for p in run_dir.glob("cells/*/seed*/monitor.jsonl"):
        p.unlink()
    data = load_run(run_dir)
    assert data.watch is None
    assert "No live-monitor logs" in section_watch(data)
    add_monitor(run_dir)
    (run_dir / "fates.json").unlink()
    sec = section_watch(load_run(run_dir))
    assert "No verdicts (fates.json is missing)" in sec and "step 800: " in sec


