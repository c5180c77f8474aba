"""The live monitor's states on hand-made probe sequences, with smoothed values computed by hand."""

from __future__ import annotations

import pytest

from ungrok.train.watch import RuleWatch, _slope


def _feed(w, seq):
    return [w.observe(i * 10, *obs) for i, obs in enumerate(seq)]


def test_rise_then_fall_warns_before_the_classifier_would_say_displaced():
    w = RuleWatch("pronoun_gender_ref")
    seq = [(0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (1.0, 1.0), (0.9, 1.0), (0.7, 1.0), (0.5, 1.0), (0.3, 1.0)]
    warns = _feed(w, seq)
    # trailing means of 2: 0, .25, .75, 1, .95, .80, .60, .40
    assert w.smoothed_conflict == pytest.approx([0, 0.25, 0.75, 1, 0.95, 0.8, 0.6, 0.4])
    # emerged at index 3 (1.0 >= 0.8); at index 5 best - now = 0.2 -> displacing; index 6: 0.6 -> displaced
    assert warns[:5] == [None] * 5
    assert warns[5] is not None and "displacement warning" in warns[5]
    assert warns[6] is not None and "displaced" in warns[6] and "warning" not in warns[6]
    assert warns[7] is None  # no repeat while the state holds
    assert w.state == "displaced"


def test_cm_trend_warns_while_accuracy_still_looks_solved():
    w = RuleWatch("r")
    cms = [0.0, 2.0, 4.0, 4.0, 3.0, 1.5, 1.0]
    warns = _feed(w, [(1.0, 1.0, cm) for cm in cms])
    # smoothed CM: 0, 1, 3, 4, 3.5, 2.25, 1.25; peak 4; at 2.25 lost 1.75 < max(0.5, 2) -> not yet
    # at 1.25 lost 2.75 >= 2 and slope of (3.5, 2.25, 1.25) < 0 -> displacing
    assert w.smoothed_cm == pytest.approx([0, 1, 3, 4, 3.5, 2.25, 1.25])
    assert [x is not None for x in warns] == [False] * 6 + [True]
    assert w.state == "displacing" and "CM +1.25 (peak +4.00)" in warns[-1]


def test_agree_failure_is_not_called_displacement():
    w = RuleWatch("r")
    warns = _feed(w, [(1.0, 1.0), (1.0, 1.0), (0.2, 0.2), (0.0, 0.0)])
    # smoothed agree: 1, 1, .6 -> below 0.8 after passing the gate
    assert w.state == "control-failing"
    assert "agree control failing" in warns[2]
    assert not any("displacement warning" in (x or "") or "displaced" in (x or "") for x in warns)


def test_a_rule_that_never_emerges_stays_quiet():
    w = RuleWatch("r")
    warns = _feed(w, [(0.5, 1.0)] * 6)
    assert warns == [None] * 6 and w.state == "not yet"
    assert w.summary()["conflict_best"] == pytest.approx(0.5)


def test_slope_is_least_squares():
    assert _slope([3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert _slope([1.0, 1.0, 4.0]) == pytest.approx(1.5)  # x = 0,1,2: cov 3 / var 2


def test_agree_swings_before_emergence_raise_nothing():
    w = RuleWatch("r")
    # an early always-"he" phase solves agree by accident, then it drops: the rule never emerged
    warns = _feed(w, [(0.0, 1.0), (0.0, 1.0), (0.3, 0.2), (0.2, 0.3)])
    assert warns == [None] * 4 and w.state == "not yet"
