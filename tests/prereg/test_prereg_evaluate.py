"""Scoring each prediction kind against hand-made verdict sets whose outcomes are worked out by hand,
including every gate that must turn a verdict into UNSCOREABLE."""

from __future__ import annotations

import pytest
from prereg_helpers import SEEDS, cm, rec, run_one

P1 = "pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell ts"


def fates(cell, spec, family="pronoun_gender_ref"):
    """spec like 'R r D': one letter per seed 42, 43, 44; lower case = agree gate failed."""
    full = {"R": "RECOVERED", "D": "DISPLACED", "P": "PARTIAL", "N": "NEVER", "U": "UNSTABLE"}
    return [
        rec(cell, s, family, full[ch.upper()], ch.isupper())
        for s, ch in zip(SEEDS, spec.split(), strict=True)
    ]


# --------------------------------------------------------------------------- (a) fate quorums
@pytest.mark.parametrize(
    ("spec", "status", "value"),
    [
        ("R R D", "PASS", "2/3"),
        ("R D D", "FAIL", "1/3"),
        # RECOVERED+valid is a property a seed has or lacks: a failed agree control makes it
        # lack it (docs/method.md §7), so "r" is a "no", never "not scoreable"
        ("R R r", "PASS", "2/3"),
        ("R D r", "FAIL", "1/3"),
        ("R r r", "FAIL", "1/3"),  # the paper's R1 on rescue_d100 (u u r) is × 0/3, not ◦
    ],
)
def test_fate_plus_valid_quorum_counts_a_failed_control_as_no(spec, status, value):
    res = run_one(P1, fates("ts", spec))
    assert (res.status, res.value) == (status, value), res.reason


def test_bare_fate_quorum_counts_classifiable_seeds_only():
    # a bare fate of a seed whose control failed is unclassifiable (the agree gate is on)
    expr = "pronoun_gender_ref is RECOVERED in >= 2/3 seeds of cell ts"
    assert run_one(expr, fates("ts", "R R r")).status == "PASS"
    assert run_one(expr, fates("ts", "R D r")).status == "FAIL"
    res = run_one(expr, fates("ts", "R r r"))
    assert res.status == "UNSCOREABLE" and "only 1 of 3 seeds are scoreable; the quorum needs 2" in res.reason


def test_missing_seed_family_or_cell_is_unscoreable_with_the_reason():
    res = run_one(P1, fates("ts", "R R D")[:2])
    assert (
        res.status == "UNSCOREABLE" and "no evidence for pronoun_gender_ref in cell ts seed 44" in res.reason
    )
    res = run_one(P1, fates("ts", "R R R", family="det_an_choice"))
    assert res.status == "UNSCOREABLE" and "seed 42" in res.reason


@pytest.mark.parametrize(
    ("expr", "records", "status", "value"),
    [
        # DISPLACED in all seeds (agree-gated)
        ("pronoun_gender_ref is DISPLACED in all seeds of cell web", fates("web", "D D D"), "PASS", "3/3"),
        ("pronoun_gender_ref is DISPLACED in all seeds of cell web", fates("web", "D D d"), "UNSCOREABLE", "2/3"),
        # 'died' = conflict_final <= 0.6 (0.6 itself counts, by the classifier's slack)
        ("pronoun_gender_ref has died in >= 2/3 seeds of cell web",
         [rec("web", 42, cf=0.6), rec("web", 43, cf=0.61), rec("web", 44, cf=0.2)], "PASS", "2/3"),
        ("pronoun_gender_ref has died in >= 2/3 seeds of cell web",
         [rec("web", 42, cf=0.6000001), rec("web", 43, cf=0.61), rec("web", 44, cf=0.2)], "FAIL", "1/3"),
        # transient signature: emerged (max >= 0.8) then final <= 0.6
        ("pronoun_gender_ref has transient in any seed of cell web",
         [rec("web", 42, cf=0.5, cmax=0.79), rec("web", 43, cf=0.61, cmax=1.0), rec("web", 44, cf=0.55, cmax=0.8)],
         "PASS", "1/3"),
        # letters carry the agree gate in their case, so no gate filters them
        ("pronoun_gender_ref has letter == d in >= 2 seeds of cell web", fates("web", "d d D"), "PASS", "2/3"),
        # a raw measure: P2's "conflict finals only, agree validity not required"
        ("det_an_choice has conflict_final >= 0.8 in all seeds of cell web",
         [rec("web", s, "det_an_choice", valid=False, cf=0.85) for s in SEEDS], "PASS", "3/3"),
        # blanket-she artifact: conflict >= 0.8 with a failed agree control
        ("pronoun_gender_ref has artifact in >= 2/3 seeds of cell web",
         [rec("web", 42, valid=False, cf=0.9), rec("web", 43, valid=False, cf=0.85), rec("web", 44, cf=0.9)],
         "PASS", "2/3"),
        # an extra per-seed measure declared by the experiment
        ("pronoun_gender_ref has ood_conflict_final >= 0.7 in >= 2/3 seeds of cell ts",
         [rec("ts", 42, ood_conflict_final=0.75), rec("ts", 43, ood_conflict_final=0.5),
          rec("ts", 44, ood_conflict_final=0.71)], "PASS", "2/3"),
    ],
)
def test_seed_tests(expr, records, status, value):
    res = run_one(expr, records)
    assert (res.status, res.value) == (status, value), res.reason


@pytest.mark.parametrize(
    ("spec", "gated", "ungated"),
    [
        ("D D D", "PASS", "PASS"),  # 0 of 3 RECOVERED: at most 1/3
        ("R D D", "PASS", "PASS"),
        ("R R D", "FAIL", "FAIL"),
        # seed 44 is RECOVERED with a failed agree control. Gated, its truth is unknown and
        # 1 or 2 of 3 are both possible: undecided. Ungated, RECOVERED+valid is simply false there.
        ("R D r", "UNSCOREABLE", "PASS"),
        ("R r r", "UNSCOREABLE", "PASS"),
        ("R R r", "FAIL", "FAIL"),  # 2 of 3 already, whatever seed 44 is
    ],
)
def test_at_most_quorums_are_three_valued(spec, gated, ungated):
    # a T-falsifier-style clause: "at most 1/3 seeds RECOVERED"
    res = run_one("pronoun_gender_ref is RECOVERED in <= 1/3 seeds of cell ts", fates("ts", spec))
    assert res.status == gated, res.reason
    off = run_one(
        {"kind": "seeds", "family": "pronoun_gender_ref", "cells": "ts", "test": "RECOVERED+valid",
         "quorum": "<= 1/3", "gates": {"agree": False}},
        fates("ts", spec),
    )
    assert off.status == ungated, off.reason


def test_each_any_and_pooled_over_cells():
    recs = fates("ts", "R R R") + fates("web", "R D D")
    each = run_one("pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cells ts, web", recs)
    assert each.status == "FAIL" and each.reason.startswith("pronoun_gender_ref @ web")
    anyc = run_one("pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cells ts, web any", recs)
    assert anyc.status == "PASS"
    pooled = run_one("pronoun_gender_ref is RECOVERED+valid in >= 4/6 seeds of cells ts, web pooled", recs)
    assert (pooled.status, pooled.value) == ("PASS", "4/6")
    pooled5 = run_one("pronoun_gender_ref is RECOVERED+valid in >= 5/6 seeds of cells ts, web pooled", recs)
    assert pooled5.status == "FAIL"


# --------------------------------------------------------------------------- CM guard, timing
def web_cm(values, valid=(True, True, True), crossings=(None,) * 3, onsets=(None,) * 3, **extra):
    return [
        rec("web", s, **cm(v, ok, c, o), **extra)
        for s, v, ok, c, o in zip(SEEDS, values, valid, crossings, onsets, strict=True)
    ]


def test_m4a_needs_three_valid_seeds_for_a_three_of_three_claim():
    # the paper's M4a: CM_final < 0 on web in 3/3; seed 44 fails the 0.5-nat guard -> unscoreable
    expr = "pronoun_gender_ref has cm_final < 0 in all seeds of cell web"
    assert run_one(expr, web_cm([-0.3, -0.2, -0.1])).status == "PASS"
    assert run_one(expr, web_cm([-0.3, 0.2, -0.1])).status == "FAIL"
    res = run_one(expr, web_cm([-0.3, -0.2, 0.4], valid=(True, True, False)))
    assert res.status == "UNSCOREABLE" and "only 2 of 3 seeds are scoreable; the quorum needs 3" in res.reason


def test_cm_cell_verdict_needs_two_valid_seeds():
    res = run_one("pronoun_gender_ref has cm_final > 0 in any seed of cell web",
                  web_cm([0.3, 0.2, 0.4], valid=(True, False, False)))
    assert res.status == "UNSCOREABLE" and "1 CM-instrument-valid seed(s); a CM verdict needs 2" in res.reason


def test_cm_prediction_without_margins_is_missing_data():
    res = run_one("pronoun_gender_ref has cm_final < 0 in all seeds of cell web", fates("web", "D D D"))
    assert res.status == "UNSCOREABLE" and "no CM margins" in res.reason


def test_m4b_timing_window_on_the_valid_seeds():
    # seed 42: crossing 2800, onset 2800; seed 43: crossing 2900, onset 3000 (both in [0.5x, 2x]);
    # seed 44 fails the guard. 2 counted seeds meet ">= 2/3" -> PASS (the paper's M4b).
    recs = web_cm([-0.2, -0.1, 0.1], valid=(True, True, False), crossings=(2800, 2900, 1000),
                  onsets=(2800, 3000, 3000))
    res = run_one("pronoun_gender_ref has timing in >= 2/3 seeds of cell web", recs)
    assert (res.status, res.value) == ("PASS", "2/3"), res.reason
    # move seed 43's crossing to 1400 < 0.5 x 3000: one of two counted seeds passes -> FAIL
    recs[1] = rec("web", 43, **cm(-0.1, True, 1400, 3000))
    assert run_one("pronoun_gender_ref has timing in >= 2/3 seeds of cell web", recs).status == "FAIL"


def test_within_one_checkpoint_needs_the_checkpoint_steps():
    steps = list(range(0, 4500, 100))
    recs = web_cm([-0.2, -0.1, -0.3], crossings=(2800, 2900, 2500), onsets=(2800, 3000, 3000), steps=steps)
    res = run_one("pronoun_gender_ref has within(1) in >= 2/3 seeds of cell web", recs)
    assert (res.status, res.value) == ("PASS", "2/3")  # 0 and 1 checkpoints apart; 2500 vs 3000 is 5
    assert run_one("pronoun_gender_ref has within(1) in all seeds of cell web", recs).status == "FAIL"
    no_steps = web_cm([-0.2, -0.1, -0.3], crossings=(2800, 2900, 2500), onsets=(2800, 3000, 3000))
    res = run_one("pronoun_gender_ref has within(1) in >= 2/3 seeds of cell web", no_steps)
    assert res.status == "UNSCOREABLE" and "lacks steps" in res.reason


def test_no_zero_crossing_is_an_undetermined_seed():
    recs = web_cm([0.3, -0.1, -0.3], crossings=(None, 2900, 2500), onsets=(2800, 3000, 3000))
    res = run_one("pronoun_gender_ref has timing in all seeds of cell web", recs)
    assert res.status == "UNSCOREABLE" and "seed 42 undetermined" in res.reason


# --------------------------------------------------------------------------- (d) cell means
def test_mean_over_valid_seeds_and_over_all_seeds():
    # by default a cell mean takes every seed (the paper's R3/K2 and Table 5, docs/method.md §16 item 6)
    recs = web_cm([-0.3, -0.1, 0.5], valid=(True, True, False))
    all_seeds = run_one("mean cm_final of pronoun_gender_ref in cell web < 0", recs)
    assert (all_seeds.status, all_seeds.value) == ("FAIL", pytest.approx(0.1 / 3))
    # the guard, when registered (Step-6T's G4 means), averages the instrument-valid seeds only
    guarded = {"expr": "mean cm_final of pronoun_gender_ref in cell web < 0", "gates": {"cm_guard": True}}
    assert (run_one(guarded, recs).status, run_one(guarded, recs).value) == ("PASS", pytest.approx(-0.2))
    one_valid = web_cm([-0.3, -0.1, 0.5], valid=(True, False, False))
    assert run_one(guarded, one_valid).status == "UNSCOREABLE"
    assert run_one(guarded["expr"], one_valid).status == "FAIL"


def test_mean_of_an_arithmetic_measure_m4c_style():
    # PM_final - PM@peak per seed: 0.5, 0.25, -0.15 -> mean 0.2
    recs = [rec("web", s, **cm(-0.1, pm_final=p, pm_at_peak=q)) for s, p, q in
            zip(SEEDS, (1.0, 0.5, 0.1), (0.5, 0.25, 0.25), strict=True)]
    res = run_one("mean pm_final - pm_at_peak of pronoun_gender_ref in cell web > 0", recs)
    assert (res.status, res.value) == ("PASS", pytest.approx(0.2))
    res = run_one("pronoun_gender_ref has pm_final > pm_at_peak in all seeds of cell web", recs)
    assert (res.status, res.value) == ("FAIL", "2/3")


# --------------------------------------------------------------------------- (e) comparisons
def test_compare_paired_by_seed_and_by_means():
    recs = [rec("ts", s, cf=v) for s, v in zip(SEEDS, (0.9, 0.9, 0.5), strict=True)]
    recs += [rec("web", s, cf=v) for s, v in zip(SEEDS, (0.3, 0.95, 0.4), strict=True)]
    # 0.9 > 0.3 yes, 0.9 > 0.95 no, 0.5 > 0.4 yes
    res = run_one("conflict_final of pronoun_gender_ref in cell ts > in cell web in >= 2/3 seeds", recs)
    assert (res.status, res.value) == ("PASS", "2/3")
    assert (
        run_one("conflict_final of pronoun_gender_ref in cell ts > in cell web in all seeds", recs).status
        == "FAIL"
    )
    # means 0.7667 vs 0.55
    res = run_one("mean conflict_final of pronoun_gender_ref in cell ts > in cell web", recs)
    assert (res.status, res.value) == ("PASS", pytest.approx(0.7666667 - 0.55))
    # AK5-style tolerance: |mean(a) - mean(b)| <= 0.05 fails at 0.2167, holds at 0.25
    tol = {"kind": "compare", "by": "mean", "family": "pronoun_gender_ref", "measure": "conflict_final",
           "a": "ts", "b": "web", "test": "abs(a - b) <= 0.05"}
    assert run_one(tol, recs).status == "FAIL"
    assert run_one({**tol, "test": "abs(a - b) <= 0.25"}, recs).status == "PASS"


# --------------------------------------------------------------------------- (b) correlations
KILL = {
    "kill_0": {"rate": 0.0},
    "kill_1": {"rate": 0.437},
    "kill_2": {"rate": 0.645},
    "kill_3": {"rate": 1.0},
}
K2 = "spearman(rate, mean cm_final of pronoun_gender_ref) over cells kill_* <= -0.8"


def kill_records(means, valid=None):
    out = []
    for i, m in enumerate(means):
        for j, s in enumerate(SEEDS):
            ok = True if valid is None else valid[i][j]
            out.append(rec(f"kill_{i}", s, **cm(m + (j - 1) * 0.01, ok)))  # seed spread averages out to m
    return out


def test_k2_spearman_over_the_kill_ladder():
    res = run_one(K2, kill_records([0.5, 0.3, -0.38, -0.6]), cells=KILL)
    assert (res.status, res.value) == ("PASS", pytest.approx(-1.0))
    assert "p = 0.0417" in res.reason  # exact one-sided permutation p = 1/24


def test_spearman_with_ties_matches_hand_ranks():
    # cell means 0.5, 0.3, 0.3, -0.2 -> ranks 4, 2.5, 2.5, 1 against 1, 2, 3, 4: rho = -4.5/sqrt(22.5)
    rho = -4.5 / 22.5**0.5
    res = run_one(K2, kill_records([0.5, 0.3, 0.3, -0.2]), cells=KILL)
    assert (res.status, res.value) == ("PASS", pytest.approx(rho, abs=1e-6))
    strict = K2.replace("<= -0.8", "<= -0.95")
    assert run_one(strict, kill_records([0.5, 0.3, 0.3, -0.2]), cells=KILL).status == "FAIL"


def test_spearman_gates_and_missing_numbers():
    valid = [[True] * 3, [True, False, False], [True] * 3, [True] * 3]
    # R3/K2: "cell-mean CM_final over all seeds" is the default, so a CM-invalid seed still counts
    assert run_one(K2, kill_records([0.5, 0.3, -0.38, -0.6], valid), cells=KILL).status == "PASS"
    explicit = {"expr": K2, "gates": {"cm_guard": False}}  # the demo's spelling stays valid
    assert run_one(explicit, kill_records([0.5, 0.3, -0.38, -0.6], valid), cells=KILL).status == "PASS"
    guarded = {"expr": K2, "gates": {"cm_guard": True}}
    res = run_one(guarded, kill_records([0.5, 0.3, -0.38, -0.6], valid), cells=KILL)
    assert res.status == "UNSCOREABLE" and "cell kill_1: 1 CM-instrument-valid seed(s)" in res.reason
    no_rate = {k: v for k, v in KILL.items() if k != "kill_2"}
    res = run_one(K2, kill_records([0.5, 0.3, -0.38, -0.6]), cells=no_rate)
    assert res.status == "UNSCOREABLE" and "no 'rate' for cell kill_2" in res.reason
    flat = run_one(K2, kill_records([0.1, 0.1, 0.1, 0.1]), cells=KILL)
    assert flat.status == "UNSCOREABLE" and "undefined" in flat.reason


def test_spearman_over_families_drops_control_invalid_families():
    # F1-style: rho(support_ratio, seed-mean conflict_final) over the control-valid families of web
    fams = ["pronoun_gender_ref", "det_an_choice", "irregular_past", "negation_bare_verb"]
    ratio = {
        "pronoun_gender_ref": 6.94,
        "det_an_choice": 2.5,
        "irregular_past": 30.0,
        "negation_bare_verb": 4.85,
    }
    finals = {
        "pronoun_gender_ref": 0.3,
        "det_an_choice": 0.95,
        "irregular_past": 0.99,
        "negation_bare_verb": 0.97,
    }
    recs = [
        rec("web", s, f, cf=finals[f], valid=(f != "negation_bare_verb" or s == 42))
        for f in fams
        for s in SEEDS
    ]
    item = {"kind": "spearman", "over": "families", "families": fams, "cells": "web", "x": "support_ratio",
            "y": "mean conflict_final", "test": "> 0", "gates": {"agree": True}}
    res = run_one(item, recs, families={"web": {f: {"support_ratio": r} for f, r in ratio.items()}})
    # negation is dropped (valid in 1/3 seeds); ratios 6.94, 2.5, 30 vs finals 0.3, 0.95, 0.99:
    # x ranks 2, 1, 3; y ranks 1, 2, 3 -> rho = 0.5
    assert (res.status, res.value) == ("PASS", pytest.approx(0.5)), res.reason
    assert "dropped, control-invalid: negation_bare_verb" in res.reason
    fewer = {**item, "families": fams[1:]}
    res = run_one(fewer, recs, families={"web": {f: {"support_ratio": r} for f, r in ratio.items()}})
    assert res.status == "UNSCOREABLE" and "2 control-valid families" in res.reason


# --------------------------------------------------------------------------- trends
def test_trend_strict_and_ordered_by_a_cell_number():
    recs = [
        rec(f"kill_{i}", s, "det_an_choice", cf=m) for i, m in enumerate((0.98, 0.9, 0.9, 0.1)) for s in SEEDS
    ]
    strict = (
        "mean conflict_final of det_an_choice decreases strictly over cells kill_0, kill_1, kill_2, kill_3"
    )
    res = run_one(strict, recs)
    assert res.status == "FAIL" and "kill_1 -> kill_2" in res.reason
    assert run_one(strict.replace("strictly ", ""), recs).status == "PASS"
    # listed as kill_3, kill_1, kill_0 (0.1, 0.9, 0.98: increasing); sorted by rate the order is
    # kill_0 (0), kill_1 (0.437), kill_3 (1.0): 0.98 > 0.9 > 0.1, decreasing
    by_rate = (
        "mean conflict_final of det_an_choice decreases strictly over cells kill_3, kill_1, kill_0 by rate"
    )
    assert run_one(by_rate, recs, cells=KILL).status == "PASS"
    assert run_one(by_rate.replace(" by rate", ""), recs).status == "FAIL"


# --------------------------------------------------------------------------- intervention validity
def ks_cell(cell, failing):
    """Control families RECOVERED+valid in every seed except the `failing` ones (DISPLACED in 2/3)."""
    out = []
    for fam in ("det_an_choice", "a_an_adjective", "irregular_past", "negation_bare_verb"):
        spec = "R D D" if fam in failing else "R R R"
        out += fates(cell, spec, fam)
    return out


def test_ks_gate_makes_a_kill_prediction_unscoreable():
    expr = {
        "expr": "pronoun_gender_ref has died in >= 2/3 seeds of cell kill_2",
        "gates": {"intervention": "ks"},
    }
    dead = [rec("kill_2", s, cf=0.2) for s in SEEDS]
    ok = run_one(expr, dead + ks_cell("kill_2", ["det_an_choice"]))  # one failing family is tolerated
    assert ok.status == "PASS"
    res = run_one(expr, dead + ks_cell("kill_2", ["det_an_choice", "a_an_adjective"]))
    assert res.status == "UNSCOREABLE"
    assert "kill_2 is INTERVENTION-INVALID: det_an_choice, a_an_adjective" in res.reason
    missing = run_one(expr, dead)
    assert missing.status == "UNSCOREABLE" and "no evidence for det_an_choice" in missing.reason


def test_cells_flagged_invalid_by_the_run_are_unscoreable():
    res = run_one(P1, fates("ts", "R R R"), invalid={"ts": "KS gate: 2 of 4 control families lost"})
    assert res.status == "UNSCOREABLE" and "INTERVENTION-INVALID (KS gate" in res.reason


def test_a_custom_gate_over_one_family_fires_when_it_fails():
    # the rule shared with edit/validity.py (fate.gates.allowed_failures): one family, no failure allowed
    item = {"expr": "pronoun_gender_ref has died in >= 2/3 seeds of cell kill_1",
            "gates": {"intervention": ["det_an_choice"]}}
    died = [rec("kill_1", s, cf=0.2, fate="DISPLACED") for s in SEEDS]
    lost = fates("kill_1", "R D D", family="det_an_choice")
    res = run_one(item, died + lost)
    assert res.status == "UNSCOREABLE" and "INTERVENTION-INVALID: det_an_choice" in res.reason
    assert run_one(item, died + fates("kill_1", "R R D", family="det_an_choice")).status == "PASS"


# --------------------------------------------------------------------------- composites, quarantine
def test_composites_use_kleene_logic():
    recs = fates("ts", "R R R") + fates("web", "R r r")
    fail_and_unscoreable = {"kind": "all", "of": [
        "pronoun_gender_ref is DISPLACED in all seeds of cell ts",  # FAIL on valid data
        "pronoun_gender_ref is RECOVERED in all seeds of cell web",  # UNSCOREABLE (agree gate)
    ]}
    res = run_one(fail_and_unscoreable, recs)
    assert res.status == "FAIL" and "DISPLACED" in res.reason
    pass_and_unscoreable = {
        "kind": "all",
        "of": [P1, "pronoun_gender_ref is RECOVERED in all seeds of cell web"],
    }
    assert run_one(pass_and_unscoreable, recs).status == "UNSCOREABLE"
    either = {"kind": "any", "of": [P1, "pronoun_gender_ref is RECOVERED in all seeds of cell web"]}
    assert run_one(either, recs).status == "PASS"
    neither = {"kind": "any", "of": [
        "pronoun_gender_ref is DISPLACED in all seeds of cell ts",
        "pronoun_gender_ref is NEVER in all seeds of cell ts",
    ]}
    assert run_one(neither, recs).status == "FAIL"


def test_quarantined_seed_predictions_wait_for_the_unlock():
    item = {"expr": "pronoun_gender_ref is RECOVERED+valid in all seeds of cell ts", "seeds": "quarantined"}
    recs = [rec("ts", s) for s in (45, 46)]
    res = run_one(item, recs, quarantined=(45, 46), locked=True)
    assert res.status == "UNSCOREABLE" and "locked" in res.reason
    assert run_one(item, recs, quarantined=(45, 46), locked=False).status == "PASS"


# --------------------------------------------------------------------------- non-finite and impossible numbers
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("pred", "bad", "needle"),
    [
        # a NaN compares false: without the check this would be a FAIL (0/3 >= 0.5)
        ("pronoun_gender_ref has conflict_final >= 0.5 in all seeds of cell ts", {"cf": NAN},
         "gives conflict_final = nan, not a finite number"),
        ("pronoun_gender_ref has conflict_final <= 0.5 in no seeds of cell ts", {"cf": INF},
         "gives conflict_final = inf, not a finite number"),
        ("pronoun_gender_ref has conflict_final >= 0.5 in all seeds of cell ts", {"cf": 57},
         "gives conflict_final = 57, outside [0, 1]"),
        ("pronoun_gender_ref has agree_max >= 0.5 in all seeds of cell ts", {"agree_max": -0.1},
         "gives agree_max = -0.1, outside [0, 1]"),
        ("mean cm_final of pronoun_gender_ref in cell ts < 0", {**cm(-INF)}, "gives cm_final = -inf"),
        (P1, {"cmax": NAN}, "gives conflict_max = nan"),  # a bare verdict reads the record too
    ],
)
def test_nan_infinity_or_an_impossible_accuracy_is_unscoreable_never_fail(pred, bad, needle):
    good = [rec("ts", s, **cm(-0.5)) for s in SEEDS[:2]]
    r = run_one(pred, [*good, rec("ts", SEEDS[2], **{**cm(-0.5), **bad})])
    assert r.status == "UNSCOREABLE", r
    assert needle in r.reason and "cell ts seed 44" in r.reason


def test_a_non_finite_cell_number_is_unscoreable():
    records = [rec(c, s, **cm(-0.1 * i)) for i, c in enumerate(("kill_0", "kill_1", "kill_2")) for s in SEEDS]
    pred = "spearman(rate, mean cm_final of pronoun_gender_ref) over cells kill_0, kill_1, kill_2 <= -0.8"
    ok = run_one(pred, records, cells={"kill_0": {"rate": 0.0}, "kill_1": {"rate": 0.5}, "kill_2": {"rate": 1.0}})
    assert ok.status == "PASS", ok
    r = run_one(pred, records, cells={"kill_0": {"rate": 0.0}, "kill_1": {"rate": NAN}, "kill_2": {"rate": 1.0}})
    assert r.status == "UNSCOREABLE" and "rate = nan for cell kill_1, not a finite number" in r.reason


def test_nan_in_an_evidence_file_is_unscoreable_on_the_scoreboard(tmp_path):
    """JSON allows NaN as a literal; the scoreboard gives the prediction no verdict."""
    import json

    from prereg_helpers import VOCAB

    from ungrok.fate.config import DEFAULT_CONFIG
    from ungrok.prereg.evaluate import Context, evaluate
    from ungrok.prereg.evidence import load_evidence
    from ungrok.prereg.predictions import compile_predictions

    recs = [rec("ts", s) for s in SEEDS]
    recs[1]["conflict_final"] = NAN
    p = tmp_path / "ev.json"
    p.write_text(json.dumps({"classifier_sha256": DEFAULT_CONFIG.sha256(), "records": recs}))
    assert "NaN" in p.read_text()
    (pred,) = compile_predictions([{"name": "P", "expr": P1}], VOCAB)
    ctx = Context(evidence=load_evidence(p), cfg=DEFAULT_CONFIG, governed=list(SEEDS), quarantined=[],
                  quarantine_locked=False)
    r = evaluate(pred, ctx)
    assert r.status == "UNSCOREABLE" and "conflict_final = nan" in r.reason
