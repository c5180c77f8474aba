"""The intervention-validity gate on hand-made verdicts and trajectories (docs/method.md §7)."""

from __future__ import annotations

import pytest

from ungrok.edit.validity import intervention_gate, related_families, verdicts_by_family
from ungrok.errors import UngrokError
from ungrok.fate.classify import Verdict
from ungrok.fate.gates import allowed_failures

OK = Verdict(cls="RECOVERED", valid=True, conflict_final=0.95, conflict_max=1.0, agree_final=1.0, agree_max=1.0,
             n_checkpoints=20)
NOT_VALID = OK.model_copy(update={"valid": False})  # recovered, but the agree control failed
DISPLACED = OK.model_copy(update={"cls": "DISPLACED", "conflict_final": 0.2})
KS = ("det_an_choice", "a_an_adjective", "irregular_past", "negation_bare_verb")


def cell(**failing):
    """Three seeds per KS family; `family=k` makes k of its seeds fail."""
    out = {}
    for fam in KS:
        bad = failing.get(fam, 0)
        out[fam] = [DISPLACED if i < bad else OK for i in range(3)]
    out["pronoun_gender_ref"] = [DISPLACED] * 3  # the edited rule itself: whatever it does
    return out


def test_kill_one_family_failing_is_still_valid():
    valid, reasons = intervention_gate(cell(irregular_past=2), "pronoun_gender_ref", "kill")
    assert valid
    assert any("irregular_past RECOVERED+valid in 1/3 seeds (FAILED)" in r for r in reasons)


def test_kill_two_families_failing_is_intervention_invalid():
    g = intervention_gate(cell(irregular_past=2, det_an_choice=3), "pronoun_gender_ref", "kill")
    assert not g.valid and g.label == "INTERVENTION-INVALID"
    assert g.reasons[-1].endswith("2 of 4 control families failed (1 allowed) -> INTERVENTION-INVALID")


def test_one_failing_seed_of_three_still_meets_the_quorum():
    data = cell(irregular_past=1, det_an_choice=1, a_an_adjective=1, negation_bare_verb=1)
    assert intervention_gate(data, "pronoun_gender_ref", "kill").valid


def test_agree_control_failure_counts_as_not_recovered():
    data = cell()
    data["irregular_past"] = [NOT_VALID] * 3
    data["negation_bare_verb"] = [OK, NOT_VALID, NOT_VALID]
    assert not intervention_gate(data, "pronoun_gender_ref", "kill").valid


def test_killing_an_a_an_rule_drops_the_families_it_moves():
    # det_an_choice's kill also moves a_an_adjective (same counter); only the other two gate it
    assert {"det_an_choice", "a_an_adjective"} <= related_families("det_an_choice")
    data = cell(det_an_choice=3, a_an_adjective=3, irregular_past=2)
    valid, reasons = intervention_gate(data, "det_an_choice", "kill")
    assert valid
    assert any("not used as control" in r for r in reasons)
    assert not intervention_gate(cell(irregular_past=2, negation_bare_verb=3), "det_an_choice", "kill").valid


def test_rescue_g3_needs_both_a_an_families_failing():
    assert intervention_gate(cell(det_an_choice=3), "pronoun_gender_ref", "rescue").valid
    g = intervention_gate(cell(det_an_choice=3, a_an_adjective=2), "pronoun_gender_ref", "timing")
    assert not g.valid
    _, reasons = intervention_gate(cell(det_an_choice=3), "pronoun_gender_ref", "rescue")
    assert any(r.startswith("RS prediction (not a gate): not held") for r in reasons)


def test_ladder_ak5_against_the_base_cell():
    base = {f: [OK] * 3 for f in ("pronoun_gender_ref", "negation_bare_verb", "irregular_past")}
    near = {f: [OK.model_copy(update={"conflict_final": 0.92})] * 3 for f in base}
    far = dict(near, negation_bare_verb=[OK.model_copy(update={"conflict_final": 0.85})] * 3)
    assert intervention_gate(near, "det_an_choice", "ladder", base=base).valid
    g = intervention_gate(far, "det_an_choice", "ladder", base=base)
    assert not g.valid and any("negation_bare_verb mean conflict final 0.850 vs base 0.950 (FAILED)" in r
                               for r in g.reasons)
    with pytest.raises(UngrokError, match="needs the base cell"):
        intervention_gate(near, "det_an_choice", "ladder")


def _rows(run, family, conflict, agree):
    rows = []
    for i, (c, a) in enumerate(zip(conflict, agree, strict=True)):
        step = 100 * (i + 1)
        rows.append(
            dict(run=run, step=step, family=family, condition="conflict", split="heldout", accuracy=c)
        )
        rows.append(dict(run=run, step=step, family=family, condition="agree", split="heldout", accuracy=a))
    return rows


def test_trajectory_table_input():
    good, lost = [1.0] * 12, [1.0] * 4 + [0.0] * 8
    rows = []
    for seed in ("s42", "s43", "s44"):
        for fam in KS:
            conflict = lost if fam in ("irregular_past", "negation_bare_verb") else good
            rows += _rows(seed, fam, conflict, [1.0] * 12)
    by_fam = verdicts_by_family(rows)
    assert [v.cls for v in by_fam["irregular_past"]] == ["DISPLACED"] * 3
    assert not intervention_gate(rows, "pronoun_gender_ref", "kill").valid
    rows = [r for r in rows if r["family"] != "negation_bare_verb"]
    with pytest.raises(UngrokError, match="no verdicts for control family negation_bare_verb"):
        intervention_gate(rows, "pronoun_gender_ref", "kill")


def test_unknown_kind_is_refused():
    with pytest.raises(UngrokError, match="unknown intervention kind"):
        intervention_gate(cell(), "pronoun_gender_ref", "filter")  # type: ignore[arg-type]



@pytest.mark.parametrize(
    ("rule", "kind", "n"),
    [("pronoun_gender_ref", "kill", 4), ("det_an_choice", "kill", 2), ("pronoun_gender_ref", "rescue", 2)],
)
def test_the_gate_allows_the_failures_the_shared_rule_allows(rule, kind, n):
    # one rule (fate.gates.allowed_failures) for this gate and the prereg evaluator's
    allowed = allowed_failures(n)
    _, reasons = intervention_gate(cell(), rule, kind)
    assert f"of {n} control families failed ({allowed} allowed)" in reasons[-1 if kind == "kill" else -2]
