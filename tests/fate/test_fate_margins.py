"""CM / PM processing and the M4b timing test, against hand-computed values."""

from __future__ import annotations

import pytest

from ungrok.errors import UngrokError
from ungrok.fate import cm_final_window, cm_summary, final_window, pm_final, timing_test, within_checkpoints

STEPS = list(range(0, 1000, 100))  # 0..900, step 0 included (CM = 0 there)


def approx(x):
    return pytest.approx(x, abs=1e-12)


def test_cm_summary_hand_computed():
    # cm = [0, 1, 2, 1, 0, -1, -2, -2, -2, -2]
    # s  = [.5, 1, 4/3, 1, 0, -1, -5/3, -2, -2, -2]   (s0 = (0+1)/2, s9 = (-2-2)/2)
    cm = [0, 1, 2, 1, 0, -1, -2, -2, -2, -2]
    r = cm_summary(STEPS, cm)
    assert r.steps[0] == 0
    # step 0 is smoothed in: s(100) = (0+1+2)/3 = 1 (dropping step 0 first would give 1.5)
    assert r.smoothed[1] == 1.0
    assert r.smoothed[0] == 0.5 and r.smoothed[-1] == -2.0
    assert r.cm_final == -2.0  # window max(3, floor(10/10)) = 3
    assert r.peak_step == 200 and r.peak_value == approx(4 / 3)
    assert r.instrument_valid
    assert r.zero_crossing == 400  # s4 = (1+0-1)/3 = 0 exactly: ">= 0" includes it
    assert r.pm_final is None and r.pm_at_peak is None


def test_peak_ties_go_to_later_step():
    # cm = [0, .75, .75, .75, .75, 0, -1, -1, -1, -1]: s2 = s3 = .75 (the max) -> step 300
    r = cm_summary(STEPS, [0, 0.75, 0.75, 0.75, 0.75, 0, -1, -1, -1, -1])
    assert r.peak_step == 300 and r.peak_value == 0.75
    assert r.instrument_valid


def test_guard_ignores_steps_below_min_step_and_fails_below_half_nat():
    # steps [0,25,50,100,200,300,400], cm [0,3,0,0,.25,.25,.25]
    # s = [1.5, 1, 1, 1/12, 1/6, .25, .25]: the big values sit before step 100;
    # peak over steps >= 100 is .25 (tie 300/400 -> 400) < .5 -> instrument-invalid
    r = cm_summary([0, 25, 50, 100, 200, 300, 400], [0, 3, 0, 0, 0.25, 0.25, 0.25])
    assert r.smoothed[1] == 1.0
    assert r.peak_step == 400 and r.peak_value == 0.25
    assert not r.instrument_valid


def test_guard_boundary_exactly_half_nat_is_valid():
    # cm = [0, .5, .5, .5, .5]: s = [.25, 1/3, .5, .5, .5] -> peak .5 at 400 (later tie)
    r = cm_summary([0, 100, 200, 300, 400], [0, 0.5, 0.5, 0.5, 0.5])
    assert r.peak_step == 400 and r.peak_value == 0.5
    assert r.instrument_valid


def test_zero_crossing_none_when_never_nonnegative():
    # cm = [0, -1, -1, -1]: s = [-.5, -2/3, -1, -1]
    r = cm_summary([0, 100, 200, 300], [0, -1, -1, -1])
    assert r.zero_crossing is None
    assert not r.instrument_valid


def test_pm_final_uses_unsmoothed_pm():
    # pm = 0..9: the last 3 raw values have mean (7+8+9)/3 = 8
    pm = [float(i) for i in range(10)]
    r = cm_summary(STEPS, [0, 1, 2, 1, 0, -1, -2, -2, -2, -2], pm=pm)
    assert r.pm_final == 8.0
    assert r.pm_at_peak == 2.0  # raw PM at the CM peak step 200
    assert pm_final(STEPS, pm) == 8.0
    # smoothed tail would be [7, 8, 8.5] -> mean 7.8333; make sure that is not what we got
    assert r.pm_final != pytest.approx(23.5 / 3)


@pytest.mark.parametrize(("n", "m"), [(114, 11), (113, 11), (10, 3), (35, 3), (45, 4), (59, 5), (5, 3)])
def test_cm_final_window_is_floor(n, m):
    assert cm_final_window(n) == m


def test_cm_and_classifier_windows_differ_off_113():
    assert cm_final_window(113) == final_window(113) == 11
    assert cm_final_window(35) == 3 and final_window(35) == 4  # floor(3.5) vs round(3.5)


def test_cm_final_over_114_checkpoints():
    # 114 checkpoints (0..11300); cm = 0 except the last 12 are -1:
    # s101 = -1/3, s102 = -2/3, s103..s113 = -1. Window 11 = s103..s113 -> exactly -1.
    steps = list(range(0, 11400, 100))
    r = cm_summary(steps, [0.0] * 102 + [-1.0] * 12)
    assert r.cm_final == -1.0
    assert r.zero_crossing == 10000  # s(10000) = (0+0+0)/3 = 0; s(10100) = -1/3


def test_cm_errors():
    with pytest.raises(UngrokError):
        cm_summary([0, 100], [0.0, 1.0])
    with pytest.raises(UngrokError, match="twice"):
        cm_summary([0, 100, 100], [0.0, 1.0, 1.0])
    with pytest.raises(UngrokError):
        cm_summary([0, 100, 200], [0.0, 1.0, 1.0], pm=[0.0, 1.0])


def test_timing_test_paper_numbers():
    assert timing_test(2800, 2800) == "PASS"  # seed 42
    assert timing_test(2900, 3000) == "PASS"  # seed 43, crossing before onset
    assert timing_test(3000, 2900) == "PASS"  # the other reading of seed 43


def test_timing_test_edges():
    assert timing_test(1400, 2800) == "PASS"  # 0.5 x onset, inclusive
    assert timing_test(1399, 2800) == "FAIL"
    assert timing_test(5600, 2800) == "PASS"  # 2 x onset, inclusive
    assert timing_test(5601, 2800) == "FAIL"
    assert timing_test(None, 2800) is None
    assert timing_test(2800, None) is None


def test_within_checkpoints():
    steps = list(range(0, 4500, 100))
    assert within_checkpoints(2800, 2800, steps) is True
    assert within_checkpoints(2900, 3000, steps) is True
    assert within_checkpoints(2800, 3000, steps) is False
    assert within_checkpoints(2800, 3000, steps, k=2) is True
    assert within_checkpoints(None, 3000, steps) is None
    with pytest.raises(UngrokError, match="2850"):
        within_checkpoints(2850, 3000, steps)
