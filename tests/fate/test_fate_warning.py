"""The monitor's displacement warning against the final verdicts, on hand-built rows and records."""

from __future__ import annotations

import pytest

from ungrok.fate.classify import classify_family
from ungrok.fate.warning import (
    WarningRun,
    assess,
    assess_run,
    collapse_step,
    final_step,
    first_warning,
    monitored_rules,
    rule_states,
    score,
)
from ungrok.train.watch import RuleWatch


def _row(step, **states):
    return {"step": step, "rules": {r: {"rule": r, "state": s} for r, s in states.items()}, "warnings": []}


def test_first_warning_needs_an_emerged_probe_before_it():
    states = [(0, "not yet"), (50, "displacing"), (100, "emerged"), (150, "control-failing"), (200, "displaced"),
              (250, "displacing")]  # fmt: skip
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
    """RuleWatch and classify_family on one made-up series; every number worked out by hand."""
    steps = list(range(0, 1300, 100))
    conflict = [0.0, 1.0, 1.0, 1.0, 0.9, 0.7, 0.5, 0.3] + [0.0] * 5
    w = RuleWatch("r")
    rows = []
    for s, c in zip(steps, conflict, strict=True):
        w.observe(s, c, 1.0)
        rows.append({"step": s, "rules": {"r": w.summary()}, "warnings": []})
    # monitor (trailing mean of 2): 0, .5, 1, 1, .95, .8, .6, .4, .15, 0, ...
    #  -> not yet, not yet, emerged, emerged, emerged, displacing (1 - .8 >= .2), displaced, ...
    assert [s for _, s in rule_states(rows, "r")][:7] == ["not yet"] * 2 + ["emerged"] * 3 + ["displacing", "displaced"]
    # classifier (steps >= 100, centred k = 3): 1, 1, .967, .867, .7, .5, .267, .1, 0, 0, 0, 0
    #  -> onset 600 (last >= 0.5); final window 3 (of 12): 0, 0, 0, flat, <= 0.6 after max 1 -> DISPLACED
    v = classify_family(steps, conflict, [1.0] * 13)
    rec = {"fate": v.cls, "agree_gate": "pass" if v.valid else "fail", "onset": v.onset, "steps": steps, "family": "r"}
    assert (v.cls, v.onset) == ("DISPLACED", 600)
    r = assess_run(rows, [rec])["r"]
    assert (r.warning, r.collapse, r.total_steps, r.lead) == (500, 600, 1200, 100)
    assert r.lead_share == pytest.approx(100 / 1200)
    assert r.outcome == "TP"
