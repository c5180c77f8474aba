"""The "what the runs show" text states the fixture's facts, worked out by hand from synthetic.py.

Fixture verdicts (pronoun_gender_ref; det_an_choice is RECOVERED everywhere):
  high R R · high_k50 R D · high_k100 N N · low D d (gate failed) · low_r1 R N
CM_final: RISE runs +2, RISE_FALL runs -1 (but low/2 has +2 by design), NEVER runs -2.
"""

from __future__ import annotations

import json

from ungrok.report import load_run
from ungrok.report.facts import families, ladders, scoreboard_counts, summary_sentences, tally

EXPECTED = [
    "This report covers 10 training runs (5 cells × 2 seeds: 1, 2) and 2 rules.",
    "In cell 'high' (storyworld), both rules ended RECOVERED with the agree gate passed in every seed.",
    "In cell 'high_k50' (kill), 1 of 2 rules ended RECOVERED with the agree gate passed in every seed; the "
    "others: pronoun_gender_ref RECOVERED in 1/2, DISPLACED in 1/2.",
    "In cell 'high_k100' (kill), 1 of 2 rules ended RECOVERED with the agree gate passed in every seed; the "
    "others: pronoun_gender_ref NEVER in 2/2.",
    "In cell 'low' (storyworld), 1 of 2 rules ended RECOVERED with the agree gate passed in every seed; the "
    "others: pronoun_gender_ref DISPLACED in 2/2 (agree gate failed in 1).",
    "In cell 'low_r1' (rescue), 1 of 2 rules ended RECOVERED with the agree gate passed in every seed; the "
    "others: pronoun_gender_ref RECOVERED in 1/2, NEVER in 1/2.",
    "3 of 20 (run, rule) pairs showed the emerge-then-collapse transient (smoothed held-out conflict accuracy "
    "reached ≥ 0.8, then ended ≤ 0.6): pronoun_gender_ref in 'high_k50' seed 2; pronoun_gender_ref in 'low' "
    "seeds 1, 2.",
    "Kill ladder on 'high' for pronoun_gender_ref (kill rate 0, 0.5, 1): RECOVERED with the agree gate passed "
    "in 2/2, 1/2, 0/2 seeds; mean final conflict accuracy 1.00, 0.50, 0.00; mean CM_final +2.00, +0.50, -2.00 "
    "nats (Spearman ρ(kill rate, mean CM_final) = -1.00 over 3 points).",
    "Rescue ladder on 'low' for pronoun_gender_ref (rescue dose 0, 1): RECOVERED with the agree gate passed in "
    "0/2, 1/2 seeds; mean final conflict accuracy 0.00, 0.50; mean CM_final +0.50, +0.00 nats.",
    "Rescue at dose 1 ('low_r1') restored pronoun_gender_ref (RECOVERED with the agree gate passed) in 1 of 2 "
    "seeds, against 0 of 2 in the parent 'low'.",
    "Final CM was positive exactly when final conflict accuracy was above 0.5 in 9 of 10 (run, rule) pairs "
    "with margins.",
    "Support forecasts from the counted rule:prior ratios: of 7 (cell, rule) pairs forecast 'likely survives', "
    "6 ended RECOVERED with the agree gate passed in every seed; of 2 forecast 'likely lost', 2 had no "
    "RECOVERED seed; 1 was 'at risk'.",
    "Pre-registered predictions: 1 PASS, 1 FAIL, 1 UNSCOREABLE; falsifiers: 1 of 2 applicable triggered.",
    "The live monitor raised 1 warning in 1 of 2 monitored runs.",
]


def test_summary_states_the_fixture_facts(data):
    assert summary_sentences(data) == EXPECTED


def test_no_transient_and_failed_rescue_are_said_plainly(run_dir):
    doc = json.loads((run_dir / "fates.json").read_text())
    for r in doc["records"]:
        r["transient"] = False
        if r["cell"] == "low_r1":
            r["fate"], r["letter"] = "NEVER", "N"
    (run_dir / "fates.json").write_text(json.dumps(doc))
    text = summary_sentences(load_run(run_dir))
    assert ("No run showed the emerge-then-collapse transient (smoothed held-out conflict accuracy reached "
            "≥ 0.8, then ended ≤ 0.6) in any of the 20 (run, rule) pairs.") in text
    assert ("Rescue at dose 1 ('low_r1') did not restore pronoun_gender_ref in any seed (0 of 2 RECOVERED with "
            "the agree gate passed, against 0 of 2 in the parent 'low').") in text


def test_missing_verdicts_claim_nothing(run_dir):
    (run_dir / "fates.json").unlink()
    (run_dir / "scoreboard.json").unlink()
    assert summary_sentences(load_run(run_dir)) == [
        "No verdicts are available (fates.json is missing), so nothing is claimed about the runs.",
        "There is no scoreboard: no pre-registered prediction was scored in this run directory.",
    ]


def test_ladders_and_tallies(data):
    lads = {(lad.kind, lad.parent): lad for lad in ladders(data)}
    assert lads[("kill", "high")].points == ((0.0, "high"), (0.5, "high_k50"), (1.0, "high_k100"))
    assert lads[("rescue", "low")].points == ((0.0, "low"), (1.0, "low_r1"))
    t = tally(data, "low", "pronoun_gender_ref")
    # low: seed 1 D (valid, CM -1, instrument-valid: peak 2), seed 2 d (gate failed, CM +2)
    assert (t.seeds, t.recovered_valid, t.died, t.gate_failed) == (2, 0, 2, 1)
    assert (t.cm_seeds, t.cm_valid, t.mean_cm_final) == (2, 2, 0.5)
    k = tally(data, "high_k100", "pronoun_gender_ref")
    assert (k.cm_valid, k.mean_cm_final, k.mean_conflict_final) == (0, -2.0, 0.0)  # CM peak -0.5 < guard


def test_family_order_and_scoreboard_counts(data):
    assert families(data) == ["pronoun_gender_ref", "det_an_choice"]  # anchor first
    assert scoreboard_counts(data.scoreboard) == {
        "PASS": 1, "FAIL": 1, "UNSCOREABLE": 1, "falsifiers": 2, "triggered": 1, "silent": 1,
        "falsifiers_unscoreable": 0,
    }
