"""The monitor's displacement warning against the final verdicts, on hand-built rows and records."""

from __future__ import annotations

import pytest

from ungrok.fate.classify import classify_family
from ungrok.fate.warning import (
    WarningRun,
    assess,
    collapse_step,
    final_step,
    first_warning,
    monitored_rules,
    rule_states,
    rule_warning,
    score,
)
from ungrok.train.watch import RuleWatch


def _assess_run(rows, records, total_steps=None):
    """Every family of one run folder: its monitor rows and fate records -> family -> WarningRun."""
    return {
        rec["family"]: assess(rule_states(rows, rec["family"]), rec, total_steps, rule_warning(rows, rec["family"]))
        for rec in records
    }


def _row(step, **states):
    return {"step": step, "rules": {r: {"rule": r, "state": s} for r, s in states.items()}, "warnings": []}


def test_first_warning_needs_an_emerged_probe_before_it():
    states = [(0, "not yet"), (50, "displacing"), (100, "emerged"), (150, "control-failing"), (200, "displaced"),
              (250, "displacing")]
    # 50: displacing before the rule was ever seen emerged; 150: control-failing is no warning
    assert first_warning(states) == 200
    assert first_warning(list(reversed(states))) == 200  # order of the input does not matter
    assert first_warning([(0, "emerged"), (50, "displacing")]) == 50
    assert first_warning([(0, "not yet"), (50, "displaced"), (100, "displaced")]) is None
    assert first_warning([(0, "emerged"), (50, "control-failing")]) is None
    assert first_warning([]) is None


def test_rule_states_reads_one_rule_and_the_last_line_per_step():
    rows = [
        _row(0, a="not yet"),
        _row(50, a="emerged", b="not yet"),
        {"step": 100, "rules": {}, "warnings": ["x"]},  # no state for a at this step
        "not a row",
        {"rules": {"a": {"state": "displaced"}}},  # no step
        _row(150, a="emerged"),
        _row(150, a="displacing"),  # a resumed run re-probed step 150: the later line wins
        {"step": 200, "rules": {"a": {"state": None}}},
    ]
    assert rule_states(rows, "a") == [(0, "not yet"), (50, "emerged"), (150, "displacing")]
    assert rule_states(rows, "b") == [(50, "not yet")]
    assert rule_states(rows, "c") == []
    assert monitored_rules(rows) == ["a", "b"]


def test_collapse_step_is_an_onset_before_the_final_step():
    assert collapse_step({"onset": 600}, 900) == 600
    assert collapse_step({"onset": 900}, 900) is None  # still >= 0.5 at the end: no collapse
    assert collapse_step({"onset": None}, 900) is None  # never reached 0.5
    assert collapse_step({}, 900) is None
    assert collapse_step({"onset": 600}, None) is None


def test_final_step_from_the_record_else_the_monitor():
    assert final_step({"steps": [0, 50, 1600, 100]}) == 1600
    assert final_step({}, [(0, "not yet"), (750, "emerged")]) == 750
    assert final_step({"steps": []}, []) is None


def test_assess_one_run_by_hand():
    states = [(0, "not yet"), (100, "emerged"), (300, "displacing"), (400, "displaced")]
    rec = {"fate": "DISPLACED", "agree_gate": "pass", "onset": 500, "steps": list(range(0, 1001, 100))}
    r = assess(states, rec)
    assert (r.warning, r.collapse, r.total_steps) == (300, 500, 1000)
    assert r.lead == 200
    assert r.lead_share == pytest.approx(0.2)
    assert r.outcome == "TP"
    # a warning after the collapse has a negative lead
    late = assess([(0, "emerged"), (700, "displaced")], rec, total_steps=2000)
    assert (late.lead, late.lead_share, late.total_steps) == (-200, pytest.approx(-0.1), 2000)


def _run(fate, gate, warning, onset, monitored=True):
    last = 1000
    collapse = onset if onset is not None and onset < last else None
    return WarningRun(fate, gate, warning, collapse, last, monitored)


def test_score_counts_precision_recall_and_median_lead_share():
    runs = [
        _run("DISPLACED", True, 300, 500),  # TP, lead 200 = 0.2
        _run("DISPLACED", True, 900, 600),  # TP, lead -300 = -0.3 (late)
        _run("DISPLACED", True, 400, 1000),  # TP without a collapse step: no lead
        _run("RECOVERED", True, 400, 1000),  # FP (false alarm)
        _run("DISPLACED", True, None, 500),  # FN
        _run("RECOVERED", True, None, 1000),  # TN
        _run("PARTIAL", True, None, 1000),  # TN
        _run("DISPLACED", False, 300, 500),  # agree gate failed: no label
        _run("DISPLACED", True, None, 500, monitored=False),  # not watched by the monitor
    ]
    s = score(runs)
    assert (s.tp, s.fp, s.fn, s.tn, s.gate_failed, s.unmonitored) == (3, 1, 1, 2, 1, 1)
    assert (s.scored, s.warned, s.positives) == (7, 4, 4)
    assert s.precision == pytest.approx(3 / 4)
    assert s.recall == pytest.approx(3 / 4)
    assert s.leads == 2
    assert s.median_lead_share == pytest.approx((0.2 - 0.3) / 2)


def test_score_of_nothing_is_undefined_not_zero():
    s = score([])
    assert (s.precision, s.recall, s.median_lead_share, s.leads) == (None, None, None, 0)
    quiet = score([_run("RECOVERED", True, None, 1000)])
    assert (quiet.precision, quiet.recall, quiet.tn) == (None, None, 1)


def test_real_monitor_states_against_the_real_classifier():
    """RuleWatch and classify_family on one made-up series; every number worked out by hand.

    Updated for the hashed warning rule (watch.json): the old rule warned at 500 on a 0.2 drop
    of a trailing mean; the early warning now needs raw conflict <= 0.6 at 3 consecutive
    probes after emergence, and ``displaced`` is the classifier's own verdict so far."""
    steps = list(range(0, 1300, 100))
    conflict = [0.0, 1.0, 1.0, 1.0, 0.9, 0.7, 0.5, 0.3] + [0.0] * 5
    w = RuleWatch("r")
    rows = []
    for s, c in zip(steps, conflict, strict=True):
        w.observe(s, c, 1.0)
        rows.append({"step": s, "rules": {"r": w.summary()}, "warnings": []})
    # step 0 is below min_step; emerged at 100. Raw <= 0.6 at 600, 700, 800 -> warning at 800.
    # Classifier on the kept prefix: at 800 smoothed tail .5, .267, .15 (range .35) -> UNSTABLE, at
    # 900 .267, .1, 0 -> UNSTABLE, at 1000 .1, 0, 0 (range .1, mean .033) -> DISPLACED.
    want = ["not yet"] + ["emerged"] * 7 + ["displacing"] * 2 + ["displaced"] * 3
    assert [s for _, s in rule_states(rows, "r")] == want
    assert rule_warning(rows, "r") == 800
    # classifier (steps >= 100, centred k = 3): 1, 1, .967, .867, .7, .5, .267, .1, 0, 0, 0, 0
    #  -> onset 600 (last >= 0.5); final window 3 (of 12): 0, 0, 0, flat, <= 0.6 after max 1 -> DISPLACED
    v = classify_family(steps, conflict, [1.0] * 13)
    rec = {
        "fate": v.cls,
        "agree_gate": "pass" if v.valid else "fail",
        "onset": v.onset,
        "steps": steps,
        "family": "r",
    }
    assert (v.cls, v.onset) == ("DISPLACED", 600)
    r = _assess_run(rows, [rec])["r"]
    assert (r.warning, r.collapse, r.total_steps, r.lead) == (800, 600, 1200, -200)
    assert r.lead_share == pytest.approx(-200 / 1200)
    assert r.outcome == "TP"


def _flag_row(step, **flags):
    return {"step": step, "rules": {r: {"state": "emerged", "warning": f} for r, f in flags.items()}}


def test_rule_warning_reads_the_flag_and_falls_back_to_states_for_old_logs():
    rows = [_flag_row(0, a=False), _flag_row(100, a=False), _flag_row(200, a=True), _flag_row(300, a=False)]
    assert rule_warning(rows, "a") == 200  # the first probe with the flag up, even if it later drops
    assert rule_warning(rows[:2], "a") is None
    # a re-probed step: the later line wins
    assert rule_warning([*rows[:2], _flag_row(100, a=True)], "a") == 100
    # no line carries the flag: the legacy rule on the states (displacing after emerged)
    old = [_row(0, a="emerged"), _row(100, a="displacing")]
    assert rule_warning(old, "a") == 100
    assert rule_warning([], "a") is None


def test_precision_recall_and_lead_from_rows_and_records_by_hand():
    """Six labelled runs of one rule; the expected figures are counted by hand below."""
    steps = list(range(0, 1001, 100))  # every run is 1000 steps long

    def rows(warn_at):
        return [_flag_row(s, r=warn_at is not None and s >= warn_at) for s in steps]

    def rec(fate, onset, gate="pass"):
        return {"family": "r", "fate": fate, "agree_gate": gate, "onset": onset, "steps": steps}

    runs = [
        _assess_run(rows(300), [rec("DISPLACED", 600)])["r"],  # TP, lead 300 -> 0.30
        _assess_run(rows(500), [rec("DISPLACED", 600)])["r"],  # TP, lead 100 -> 0.10
        _assess_run(rows(800), [rec("DISPLACED", 700)])["r"],  # TP, lead -100 -> -0.10 (late)
        _assess_run(rows(400), [rec("DISPLACED", 1000)])["r"],  # TP, still >= 0.5 at the end: no lead
        _assess_run(rows(None), [rec("DISPLACED", 500)])["r"],  # FN
        _assess_run(rows(200), [rec("RECOVERED", 1000)])["r"],  # FP
        _assess_run(rows(None), [rec("RECOVERED", 1000)])["r"],  # TN
        _assess_run(rows(200), [rec("DISPLACED", 500, gate="fail")])["r"],  # not scored
    ]
    s = score(runs)
    # TP 4, FP 1, FN 1, TN 1: precision 4/5 = 0.8, recall 4/5 = 0.8; leads 0.3, 0.1, -0.1 -> median 0.1
    assert (s.tp, s.fp, s.fn, s.tn, s.gate_failed) == (4, 1, 1, 1, 1)
    assert s.precision == pytest.approx(0.8) and s.recall == pytest.approx(0.8)
    assert s.leads == 3 and s.median_lead_share == pytest.approx(0.1)
