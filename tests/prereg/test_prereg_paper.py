"""The paper's registered predictions (docs/method.md §9.2), written in the prediction language.

This is the catalogue the language was built to express; every entry must compile against
the paper's cells, and the gates it resolves to must be the ones the registration states.
Rows not here, and why: PUB1-3 (public checkpoints: one run per model, an experiment with
seeds [0] of its own), F2 and the F hard falsifier (claims about which families rank lowest
by support ratio), RV5-P1/P2 and the RV5 falsifier (conditional on each cell's own verdict),
the D/N pilot (content unpublished).
"""

from __future__ import annotations

import yaml
from prereg_helpers import FAMILIES

from ungrok.prereg.predictions import Vocabulary, compile_predictions, leaves

CELLS = (
    "v1_repro", "databudget_dn5", "databudget_dn15", "web_packed_v2", "web_dn5_v2", "web_dn15_v2",
    "ts_packed_armB", "kill_p437", "kill_p645", "kill_p1000", "rescue_d001", "rescue_d010", "rescue_d100",
    "rescue_d300", "rescue_d100_early", "rescue_d100_late", "ankill_p500", "ankill_p667", "ankill_p750",
    "ankill_p900", "ankill_p1000",
)

PAPER = r"""
# --- phase grid
- name: P1
  group: Phase grid
  kind: all
  of:
    - pronoun_gender_ref is RECOVERED+valid in all seeds of cells v1_repro, databudget_*
    - pronoun_gender_ref has conflict_final <= 0.6 and valid in >= 2/3 seeds of cell web_packed_v2
- name: P2
  group: Phase grid
  expr: det_an_choice, a_an_adjective, irregular_past, negation_bare_verb have conflict_final >= 0.8 in all seeds of cell web_packed_v2
- name: P3
  group: Phase grid
  expr: reflexive_gender has conflict_final < 0.8 in >= 2/3 seeds of cell web_packed_v2
- name: P4
  group: Phase grid
  expr: conflict_final of pronoun_gender_ref in cell web_packed_v2 <= in cell web_dn15_v2 in >= 2/3 seeds
- name: P-falsifier
  group: Phase grid
  falsifier: true
  expr: pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell web_packed_v2
- name: armB-falsifier
  group: Phase grid
  falsifier: true
  expr: pronoun_gender_ref is DISPLACED or PARTIAL in >= 2/3 seeds of cell ts_packed_armB
# --- critical-frequency theory
- name: F1
  group: Critical-frequency theory
  kind: spearman
  over: families
  families: [pronoun_gender_ref, reflexive_gender, det_an_choice, a_an_adjective, irregular_past, negation_bare_verb]
  cells: web_*
  x: support_ratio
  y: mean conflict_final
  test: "> 0"
  gates: {agree: true}
# --- mechanism
- name: M1
  group: Mechanism
  kind: all
  of:
    - pronoun_gender_ref has s1_final < 0.5 * s1_peak in all seeds of cell web_packed_v2
    - pronoun_gender_ref has s1_final >= 0.5 * s1_peak in all seeds of cell v1_repro
- name: M2
  group: Mechanism
  expr: pronoun_gender_ref has s1_peak_step <= onset in all seeds of cell web_packed_v2
- name: M3
  group: Mechanism
  expr: pronoun_gender_ref has template_conflict_final <= 0.6 and abs(template_conflict_final - conflict_final) < 0.2 in all seeds of cell web_packed_v2
- name: M3-falsifier
  group: Mechanism
  falsifier: true
  expr: pronoun_gender_ref has template_conflict_final >= 0.8 and conflict_final <= 0.6 in >= 2/3 seeds of cell web_packed_v2
- name: M4a
  group: Mechanism
  kind: all
  of:
    - pronoun_gender_ref has cm_final < 0 in all seeds of cell web_packed_v2
    - pronoun_gender_ref has cm_final > 0 in all seeds of cell v1_repro
- name: M4b
  group: Mechanism
  expr: pronoun_gender_ref has timing in >= 2/3 seeds of cell web_packed_v2
- name: M4c
  group: Mechanism
  expr: pronoun_gender_ref has pm_final > pm_at_peak in all seeds of cell web_packed_v2
- name: M4-falsifier
  group: Mechanism
  falsifier: true
  expr: pronoun_gender_ref has cm_final > 0 in >= 2/3 seeds of cell web_packed_v2
- name: M4pA
  group: Mechanism
  expr: pronoun_gender_ref has cm_valid and cm_final < 0 and pm_final > pm_at_peak in >= 4/6 seeds of cells web_dn5_v2, web_dn15_v2 pooled
  gates: {cm_guard: false}
- name: M4pTS
  group: Mechanism
  expr: pronoun_gender_ref has cm_valid and cm_final > 0 in >= 4/6 seeds of cells databudget_dn5, databudget_dn15 pooled
  gates: {cm_guard: false}
- name: M4p-falsifier
  group: Mechanism
  falsifier: true
  expr: pronoun_gender_ref has cm_valid and cm_final > 0 in any seed of cells web_dn5_v2, web_dn15_v2 pooled
  gates: {cm_guard: false}
# --- Step 6 rescue
- {name: R1-behavioural, group: Step 6 rescue, expr: pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell rescue_d100}
- {name: R1-CM, group: Step 6 rescue, expr: pronoun_gender_ref has cm_final > 0 in >= 2 seeds of cell rescue_d100}
- {name: R1c-behavioural, group: Step 6 rescue, expr: pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell rescue_d300}
- {name: R1c-CM, group: Step 6 rescue, expr: pronoun_gender_ref has cm_final > 0 in >= 2 seeds of cell rescue_d300}
- {name: R2-behavioural, group: Step 6 rescue, expr: pronoun_gender_ref has conflict_final <= 0.6 in >= 2/3 seeds of cell rescue_d001}
- {name: R2-CM, group: Step 6 rescue, expr: pronoun_gender_ref has cm_final < 0 in >= 2 seeds of cell rescue_d001}
- name: R3
  group: Step 6 rescue
  expr: spearman(dose, mean cm_final of pronoun_gender_ref) over cells web_packed_v2, rescue_d001, rescue_d010, rescue_d100, rescue_d300 >= 0.8
- name: RS
  group: Step 6 rescue
  expr: det_an_choice, a_an_adjective are RECOVERED+valid in >= 2/3 seeds of cells rescue_d001, rescue_d010, rescue_d100, rescue_d300
- name: R-falsifier
  group: Step 6 rescue
  falsifier: true
  kind: any
  of:
    - pronoun_gender_ref is RECOVERED+valid in < 2/3 seeds of cells rescue_d100, rescue_d300
    - pronoun_gender_ref has artifact in >= 2/3 seeds of cells rescue_d001, rescue_d010, rescue_d100, rescue_d300 any
# --- Step 6 kill
- {name: K1-behavioural, group: Step 6 kill, expr: pronoun_gender_ref has died in >= 2/3 seeds of cell kill_p645, gates: {intervention: ks}}
- {name: K1-CM, group: Step 6 kill, expr: pronoun_gender_ref has cm_final < 0 in >= 2 seeds of cell kill_p645, gates: {intervention: ks}}
- {name: K1c-behavioural, group: Step 6 kill, expr: pronoun_gender_ref has died in >= 2/3 seeds of cell kill_p1000, gates: {intervention: ks}}
- {name: K1c-CM, group: Step 6 kill, expr: pronoun_gender_ref has cm_final < 0 in >= 2 seeds of cell kill_p1000, gates: {intervention: ks}}
- name: K2
  group: Step 6 kill
  expr: spearman(rate, mean cm_final of pronoun_gender_ref) over cells v1_repro, kill_* <= -0.8
- name: K-falsifier
  group: Step 6 kill
  falsifier: true
  expr: pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cells kill_p645, kill_p1000
# --- Step 6T
- {name: T1-behavioural, group: Step 6T, expr: pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell rescue_d100_early, gates: {intervention: g3}}
- {name: T1-CM, group: Step 6T, expr: mean cm_final of pronoun_gender_ref in cell rescue_d100_early > 0.16, gates: {cm_guard: true, intervention: g3}}
- {name: T2, group: Step 6T, expr: pronoun_gender_ref has conflict_final <= 0.6 in >= 2/3 seeds of cell rescue_d100_late}
- name: T3
  group: Step 6T
  kind: all
  of:
    - {expr: mean cm_final of pronoun_gender_ref in cell rescue_d100_early > in cell rescue_d100_late, gates: {cm_guard: true}}
    - {expr: mean cm_final of pronoun_gender_ref in cell rescue_d100_early > 0.16, gates: {cm_guard: true}}
- name: T-falsifier
  group: Step 6T
  falsifier: true
  kind: all
  of:
    - {expr: pronoun_gender_ref is RECOVERED+valid in <= 1/3 seeds of cell rescue_d100_early, gates: {intervention: g3}}
    - {expr: pronoun_gender_ref has cm_valid in >= 2/3 seeds of cell rescue_d100_early, gates: {cm_guard: false}}
    - {expr: mean cm_final of pronoun_gender_ref in cell rescue_d100_early <= 0.66, gates: {cm_guard: true, intervention: g3}}
# --- a/an ladder
- name: AK1
  group: a/an ladder
  expr: mean conflict_final of det_an_choice decreases strictly over cells v1_repro, ankill_* by rate
- name: AK2
  group: a/an ladder
  kind: any
  of:
    - det_an_choice is DISPLACED in >= 2/3 seeds of cell ankill_p1000
    - det_an_choice has conflict_final < 0.1 in >= 2/3 seeds of cell ankill_p1000
- name: AK3
  group: a/an ladder
  kind: all
  of:
    - det_an_choice has conflict_final >= 0.8 in >= 2/3 seeds of cell ankill_p500
    - det_an_choice has conflict_final <= 0.6 in >= 2/3 seeds of cell ankill_p750
- {name: AK4, group: a/an ladder, expr: det_an_choice has not valid in >= 2/3 seeds of cell ankill_p1000}
- name: AK5
  group: a/an ladder
  kind: compare
  by: mean
  family: [pronoun_gender_ref, negation_bare_verb, irregular_past]
  measure: conflict_final
  a: ankill_*
  b: v1_repro
  test: abs(a - b) <= 0.05
  gates: {agree: false}
# --- OOD and replication
- name: RV5-P3
  group: OOD rvp5
  expr: pronoun_gender_ref has not transient or ood_max >= ood_final + 0.15 in all seeds of cells v1_repro, databudget_*, web_*
  gates: {agree: false}
- name: CMR1
  group: Replication
  expr: pronoun_gender_ref has cm_final < 0 in >= 2/3 seeds of cell web_packed_v2
  seeds: quarantined
"""


def test_the_paper_catalogue_compiles_with_the_gates_it_registers():
    vocab = Vocabulary(
        families=FAMILIES,
        cells=CELLS,
        measures=frozenset({"s1_final", "s1_peak", "s1_peak_step", "template_conflict_final", "ood_max",
                            "ood_final"}),
        numbers=frozenset({"rate", "dose", "support_ratio"}),
    )
    preds = {p.name: p for p in compile_predictions(yaml.safe_load(PAPER), vocab)}
    assert len(preds) == 45 and sum(p.falsifier for p in preds.values()) == 8
    gates = {name: (p.gates.agree, p.gates.cm_guard) for name, p in preds.items() if not hasattr(p, "of")}
    assert gates["P2"] == (False, False)  # conflict finals only: agree validity not required
    assert gates["M4b"] == (False, True)  # CM guard: scored on instrument-valid seeds
    assert gates["R3"] == gates["K2"] == (False, False)  # cell means over all seeds: the default
    assert gates["T1-CM"] == (False, True)  # Step-6T's G4 mean over valid seeds: registered explicitly
    assert gates["R1-behavioural"] == (False, False)  # X+valid states the agree control itself
    assert gates["AK4"] == (False, False)  # a test about the agree control itself
    assert preds["K1-CM"].gates.intervention == [
        "det_an_choice", "a_an_adjective", "irregular_past", "negation_bare_verb"]
    assert preds["K2"].cells == ["v1_repro", "kill_p437", "kill_p645", "kill_p1000"]
    assert preds["AK5"].a == ["ankill_p500", "ankill_p667", "ankill_p750", "ankill_p900", "ankill_p1000"]
    assert preds["F1"].cells == ["web_packed_v2", "web_dn5_v2", "web_dn15_v2"]
    (t_behav, t_g4, t_cm) = leaves(preds["T-falsifier"])
    assert t_behav.quorum == "<= 1/3" and t_g4.gates.cm_guard is False and t_cm.gates.cm_guard is True
