"""The frozen classifier against hand-computed trajectories.

Unless stated, trajectories have 10 kept checkpoints (steps 100..1000), so the final
window is max(3, round(0.1 * 10)) = 3 smoothed values: s7, s8, s9. Smoothing is the
centred width-3 mean truncated at the ends: s0 = (a0+a1)/2, si = (a[i-1]+a[i]+a[i+1])/3,
s9 = (a8+a9)/2.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from ungrok.errors import UngrokError
from ungrok.fate import (
    ClassifierConfig,
    Verdict,
    classify_family,
    classify_table,
    collapse_onset,
    died,
    final_window,
    letter,
    smooth,
    transient_signature,
)

STEPS = list(range(100, 1100, 100))
SOLVED = [1.0] * 10  # agree control at ceiling: smoothed all 1 -> final 1, max 1, valid


def approx(x):
    return pytest.approx(x, abs=1e-12)


# ---------------------------------------------------------------- smoothing, windows


def test_smooth_truncates_at_both_ends():
    # s0 = (0.25+0.5)/2, s1 = (0.25+0.5+0.75)/3, s2 = (0.5+0.75+1)/3, s3 = (0.75+1)/2
    assert smooth([0.25, 0.5, 0.75, 1.0]) == [0.375, 0.5, 0.75, 0.875]
    # Not padded: padding with 0 would make the last value (1+1+0)/3, with edge (1+1+1)/3.
    s = smooth([0.0, 1.0, 0.0, 1.0])
    assert s[0] == 0.5 and s[-1] == 0.5  # means of 2
    assert s[1] == approx(1 / 3) and s[2] == approx(2 / 3)


def test_smooth_other_widths():
    assert smooth([1.0, 2.0, 3.0], k=1) == [1.0, 2.0, 3.0]
    # k=5: s0 = mean(a0..a2) = 2, s1 = mean(a0..a3) = 2.5, s2 = mean(a0..a4) = 3
    assert smooth([1.0, 2.0, 3.0, 4.0, 5.0], k=5) == [2.0, 2.5, 3.0, 3.5, 4.0]
    with pytest.raises(UngrokError):
        smooth([1.0], k=2)


@pytest.mark.parametrize(
    ("n", "m"),
    [
        (113, 11),  # governed runs: steps 3,400..4,400
        (114, 11),
        (10, 3),  # round(1.0) = 1 -> floor of 3
        (5, 3),
        (25, 3),  # round(2.5) = 2 (half-even) -> 3
        (35, 4),  # 35 * 0.1 = 3.5000000000000004 -> 4
        (45, 4),  # 4.5 exactly -> 4 (half-even, as the paper's Python code rounds)
        (55, 6),  # 5.5 -> 6
        (200, 20),
    ],
)
def test_final_window(n, m):
    assert final_window(n) == m


# ---------------------------------------------------------------- the five classes


def test_recovered():
    # a = [.5, 1, 1, ...]: s0 = .75, s1 = 2.5/3, s2..s9 = 1 -> final 1, max 1, tail range 0
    v = classify_family(STEPS, [0.5] + [1.0] * 9, SOLVED)
    assert v.cls == "RECOVERED" and v.valid
    assert v.conflict_final == 1.0 and v.conflict_max == 1.0
    assert v.agree_final == 1.0 and v.agree_max == 1.0
    assert v.n_checkpoints == 10
    assert v.onset == 1000  # never collapses: the last step is still >= 0.5
    assert letter(v) == "R"


def test_dip_then_recover_is_recovered():
    # a = [1,1,1,0,0,0,1,1,1,1]: s = [1,1,2/3,1/3,0,1/3,2/3,1,1,1]; tail [1,1,1]
    v = classify_family(STEPS, [1, 1, 1, 0, 0, 0, 1, 1, 1, 1], SOLVED)
    assert v.cls == "RECOVERED"
    assert v.conflict_final == 1.0


def test_displaced():
    # a = [.5,1,1,1,.5,0,0,0,0,0]
    # s = [.75, 2.5/3, 1, 2.5/3, .5, .5/3, 0, 0, 0, 0]: max 1 (emerged), final 0, range 0
    v = classify_family(STEPS, [0.5, 1, 1, 1, 0.5, 0, 0, 0, 0, 0], SOLVED)
    assert v.cls == "DISPLACED" and v.valid
    assert v.conflict_max == 1.0 and v.conflict_final == 0.0
    assert v.onset == 500  # s4 = (1 + .5 + 0)/3 = .5 exactly: last step >= .5
    assert letter(v) == "D"
    assert transient_signature(v) and died(v)


def test_partial():
    # a = [1,1,1,.75,.75,.75,.75,.75,.75,.75]
    # s = [1, 1, 2.75/3, 2.5/3, .75, .75, .75, .75, .75, .75]: max 1, final .75 in (.6, .8)
    v = classify_family(STEPS, [1, 1, 1] + [0.75] * 7, SOLVED)
    assert v.cls == "PARTIAL"
    assert v.conflict_final == 0.75 and v.conflict_max == 1.0
    assert letter(v) == "P"
    assert not transient_signature(v) and not died(v)


def test_never():
    # flat .5: s all .5 -> max .5 < .8 (never emerged), final .5
    v = classify_family(STEPS, [0.5] * 10, SOLVED)
    assert v.cls == "NEVER"
    assert v.onset == 1000
    # flat .25: never reaches the .5 onset threshold
    v = classify_family(STEPS, [0.25] * 10, SOLVED)
    assert v.cls == "NEVER" and v.onset is None
    assert letter(v) == "N"


def test_unstable_precedes_displaced():
    # a = [1]*8 + [.5, .25]: s7 = 2.5/3, s8 = 1.75/3, s9 = .375
    # final = (2.5/3 + 1.75/3 + .375)/3 = .5972 <= .6 and emerged -> would be DISPLACED,
    # but the tail range 2.5/3 - .375 = .4583 >= .2 -> UNSTABLE
    v = classify_family(STEPS, [1.0] * 8 + [0.5, 0.25], SOLVED)
    assert v.cls == "UNSTABLE"
    assert v.conflict_final == approx((2.5 / 3 + 1.75 / 3 + 0.375) / 3)
    assert letter(v) == "U"
    assert transient_signature(v)


def test_unstable_precedes_recovered():
    # a = [1]*7 + [.25, 1, 1]: s6 = s7 = s8 = 2.25/3 = .75, s9 = 1
    # final = (.75 + .75 + 1)/3 = .8333 >= .8 -> would be RECOVERED; range .25 -> UNSTABLE
    v = classify_family(STEPS, [1.0] * 7 + [0.25, 1.0, 1.0], SOLVED)
    assert v.cls == "UNSTABLE"
    assert v.conflict_final == approx(2.5 / 3)


# ------------------------------------------------ UNSTABLE boundary (range >= 0.2)
# a = [1]*9 + [r]: s7 = 1, s8 = (2 + r)/3, s9 = (1 + r)/2 = the tail minimum.


def test_unstable_range_dyadic_both_sides():
    # r = .5: s9 = .75 exactly -> range 1 - .75 = .25 >= .2 -> UNSTABLE
    assert classify_family(STEPS, [1.0] * 9 + [0.5], SOLVED).cls == "UNSTABLE"
    # r = .625: s9 = .8125, s8 = .875 -> range .1875 < .2; final (1+.875+.8125)/3 -> RECOVERED
    v = classify_family(STEPS, [1.0] * 9 + [0.625], SOLVED)
    assert v.cls == "RECOVERED"
    assert v.conflict_final == approx((1 + 0.875 + 0.8125) / 3)


def test_unstable_boundary_exact_in_binary():
    # With the threshold itself dyadic (0.25) the range 1 - .75 = .25 is exact: ">=" fires.
    cfg = ClassifierConfig(unstable_range=0.25)
    assert classify_family(STEPS, [1.0] * 9 + [0.5], SOLVED, cfg).cls == "UNSTABLE"
    # r = .53125: s9 = .765625 -> range .234375 < .25 -> not UNSTABLE (final .8663 -> R)
    assert classify_family(STEPS, [1.0] * 9 + [0.53125], SOLVED, cfg).cls == "RECOVERED"


def test_unstable_boundary_exactly_point_two():
    # r = .6: s9 = .8, range 1 - .8 = 0.2 in decimal (0.19999999999999996 in binary). The
    # registered rule is ">= 0.2", so this is UNSTABLE; a bare float compare would say
    # RECOVERED (final = (1 + 2.6/3 + .8)/3 = .8889).
    assert classify_family(STEPS, [1.0] * 9 + [0.6], SOLVED).cls == "UNSTABLE"
    # r = .61: s9 = .805, range .195 < .2 -> RECOVERED
    assert classify_family(STEPS, [1.0] * 9 + [0.61], SOLVED).cls == "RECOVERED"


# ---------------------------------------------------------------- the agree gate


def test_agree_final_below_threshold_is_invalid():
    # agree flat .75 -> final .75 < .8 -> invalid, though the conflict class is RECOVERED
    v = classify_family(STEPS, [1.0] * 10, [0.75] * 10)
    assert v.cls == "RECOVERED" and not v.valid
    assert v.agree_final == 0.75
    assert letter(v) == "r"


def test_agree_drop_is_invalid():
    # agree = [1]*7 + [.8125]*3: s7 = 2.625/3 = .875, s8 = s9 = .8125
    # final = (.875 + .8125 + .8125)/3 = 2.5/3 = .8333 >= .8, but max 1 - final = .1667 >= .15
    v = classify_family(STEPS, [1.0] * 10, [1.0] * 7 + [0.8125] * 3)
    assert v.agree_final == approx(2.5 / 3) and v.agree_max == 1.0
    assert not v.valid


def test_agree_drop_boundary():
    # agree = [1]*5 + [.85]*5: s6..s9 = .85 -> final .85, max 1 -> drop exactly .15 -> invalid
    assert not classify_family(STEPS, [1.0] * 10, [1.0] * 5 + [0.85] * 5).valid
    # agree = [1]*5 + [.875]*5: drop .125 < .15, final .875 >= .8 -> valid
    v = classify_family(STEPS, [1.0] * 10, [1.0] * 5 + [0.875] * 5)
    assert v.valid and v.agree_final == 0.875


def test_agree_final_exactly_threshold_is_valid():
    # agree flat .8 -> final .8 (>=), max - final = 0 -> valid
    assert classify_family(STEPS, [1.0] * 10, [0.8] * 10).valid


# ---------------------------------------------------------------- MIN_STEP filter


def test_min_step_filter_before_smoothing():
    # steps 0, 50 are dropped before smoothing. Kept: a = [.75]*10 at 100..1000 -> s all
    # .75 -> max .75 < .8 -> NEVER. Had step 50 (acc 1.0) been smoothed in first, the
    # first kept value would be (1 + .75 + .75)/3 = .8333 >= .8 -> emerged -> PARTIAL.
    steps = [0, 50, *STEPS]
    conflict = [0.0, 1.0] + [0.75] * 10
    agree = [1.0] * 12
    v = classify_family(steps, conflict, agree)
    assert v.cls == "NEVER"
    assert v.conflict_max == 0.75
    assert v.n_checkpoints == 10


def test_unsorted_input_is_sorted_by_step():
    conflict = [0.5, 1, 1, 1, 0.5, 0, 0, 0, 0, 0]
    pairs = list(zip(STEPS, conflict, SOLVED, strict=True))[::-1]
    v = classify_family([p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs])
    assert v.cls == "DISPLACED" and v.onset == 500


def test_governed_length_uses_eleven_checkpoint_window():
    # 113 kept checkpoints; a = [0]*102 + [1]*11:
    # s101 = 1/3, s102 = 2/3, s103..s112 = 1. Last 11 = s102..s112 -> final (2/3 + 10)/11
    # = 32/33 (10 values would give 1.0, 12 would give 11/12). Tail range 1/3 -> UNSTABLE.
    steps = list(range(100, 100 * 114, 100))
    v = classify_family(steps, [0.0] * 102 + [1.0] * 11, [1.0] * 113)
    assert v.n_checkpoints == 113
    assert v.conflict_final == approx(32 / 33)
    assert v.cls == "UNSTABLE"


# ---------------------------------------------------------------- onset


def test_collapse_onset():
    # a = [1,1,1,.5,0,0,0]: s = [1, 1, 2.5/3, .5, .5/3, 0, 0] -> last >= .5 is s3 (step 400)
    steps = [100, 200, 300, 400, 500, 600, 700]
    assert collapse_onset(steps, [1, 1, 1, 0.5, 0, 0, 0]) == 400
    assert collapse_onset(steps, [0.25] * 7) is None


def test_collapse_onset_filters_before_smoothing():
    # Step 50 at 1.0 is dropped first: kept all .25 -> never >= .5 -> None. Smoothing
    # first would give s(100) = (1 + .25 + .25)/3 = .5 -> onset 100.
    assert collapse_onset([50, 100, 200, 300], [1.0, 0.25, 0.25, 0.25]) is None


# ---------------------------------------------------------------- input errors


def test_bad_inputs():
    with pytest.raises(UngrokError):
        classify_family(STEPS, [1.0] * 9, SOLVED)  # length mismatch
    with pytest.raises(UngrokError, match="twice"):
        classify_family([100, 100, 200], [1, 1, 1], [1, 1, 1])
    with pytest.raises(UngrokError, match="at least 3"):
        classify_family([100, 200], [1, 1], [1, 1])
    with pytest.raises(UngrokError, match="step >= 100"):
        classify_family([0, 50], [1, 1], [1, 1])
    with pytest.raises(UngrokError, match="outside"):
        classify_family([100, 200, 300], [1, 1, 1.5], [1, 1, 1])
    with pytest.raises(UngrokError, match="finite"):
        classify_family([100, 200, 300], [1, 1, float("nan")], [1, 1, 1])


# ---------------------------------------------------------------- table input


def _rows(run, family, steps, conflict, agree):
    rows = []
    for s, c, a in zip(steps, conflict, agree, strict=True):
        rows.append(dict(run=run, step=s, family=family, condition="conflict", split="heldout", accuracy=c))
        rows.append(dict(run=run, step=s, family=family, condition="agree", split="heldout", accuracy=a))
        # train-split rows must be ignored: give them values that would flip the verdict
        rows.append(dict(run=run, step=s, family=family, condition="conflict", split="train", accuracy=0.0))
    return rows


def _table():
    return _rows("s42", "pronoun_gender_ref", STEPS, [0.5, 1, 1, 1, 0.5, 0, 0, 0, 0, 0], SOLVED) + _rows(
        "s42", "det_an_choice", STEPS, [1.0] * 10, [0.75] * 10
    )


def test_classify_table_rows_and_arrow_agree():
    out = classify_table(_table())
    assert list(out) == [("s42", "det_an_choice"), ("s42", "pronoun_gender_ref")]
    assert out[("s42", "pronoun_gender_ref")].cls == "DISPLACED"
    assert letter(out[("s42", "det_an_choice")]) == "r"
    arrow = classify_table(pa.Table.from_pylist(_table()))
    assert arrow == out


def test_classify_table_missing_agree_names_family():
    rows = [r for r in _table() if not (r["family"] == "det_an_choice" and r["condition"] == "agree")]
    with pytest.raises(UngrokError, match="det_an_choice"):
        classify_table(rows)


def test_classify_table_errors():
    rows = _table()
    with pytest.raises(UngrokError, match="accuracy"):
        classify_table([{k: v for k, v in r.items() if k != "accuracy"} for r in rows])
    with pytest.raises(UngrokError, match="accuracy"):
        classify_table(pa.Table.from_pylist(rows).drop_columns(["accuracy"]))
    with pytest.raises(UngrokError, match="twice"):
        classify_table(rows + [rows[0]])
    with pytest.raises(UngrokError, match="different steps"):
        classify_table([r for r in rows if not (r["condition"] == "agree" and r["step"] == 500)])
    with pytest.raises(UngrokError, match="no heldout"):
        classify_table([r for r in rows if r["split"] == "train"])


def test_verdict_round_trips_json():
    v = classify_family(STEPS, [0.5] + [1.0] * 9, SOLVED)
    assert Verdict.model_validate_json(v.model_dump_json()) == v
