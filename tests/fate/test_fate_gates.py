"""Registered gates over per-seed verdicts, and the frozen config."""

from __future__ import annotations

import pydantic
import pytest

from ungrok.errors import UngrokError
from ungrok.fate import (
    DEFAULT_CONFIG,
    G3_FAMILIES,
    KS_FAMILIES,
    ClassifierConfig,
    Verdict,
    allowed_failures,
    blanket_artifact,
    cell_claim,
    cm_cell_valid,
    cm_summary,
    intervention_valid,
    meets_quorum,
    recovered_valid,
    timing_test,
)


def V(cls="RECOVERED", valid=True, final=1.0):
    return Verdict(
        cls=cls,
        valid=valid,
        conflict_final=final,
        conflict_max=1.0,
        agree_final=1.0 if valid else 0.5,
        agree_max=1.0,
        n_checkpoints=113,
    )


R, r, U = V(), V(valid=False), V("UNSTABLE", final=0.5)


def test_recovered_valid():
    assert recovered_valid(R)
    assert not recovered_valid(r)
    assert not recovered_valid(U)


def test_quorum_two_of_three():
    assert meets_quorum(2, 3) and not meets_quorum(1, 3)
    assert meets_quorum(3, 3)
    assert cell_claim([R, R, U], recovered_valid)
    assert not cell_claim([R, r, U], recovered_valid)
    with pytest.raises(UngrokError):
        cell_claim([], recovered_valid)


def test_blanket_artifact():
    # rescue d = 1: s44 alone is R-with-failed-control -> one seed, no artifact clause
    assert not blanket_artifact([V("UNSTABLE", False, 0.2), V("UNSTABLE", False, 0.58), r])
    # two seeds with conflict_final >= .8 and an invalid agree control -> artifact
    assert blanket_artifact([V(valid=False, final=0.92), V("UNSTABLE", False, 0.8), R])
    # high final but control valid is a recovery, not an artifact
    assert not blanket_artifact([R, R, R])
    # invalid control but conflict_final below .8 is not blanket-she
    assert not blanket_artifact([V("PARTIAL", False, 0.79)] * 3)


def _cell(**fails):
    """KS control verdicts: every family 3/3 R+valid unless overridden."""
    return {f: fails.get(f, [R, R, R]) for f in KS_FAMILIES}


def test_ks_gate_valid_when_all_pass():
    g = intervention_valid(_cell(), KS_FAMILIES)
    assert g.valid and g.label == "VALID" and g.failed == ()


def test_ks_gate_two_of_three_seeds_suffice():
    g = intervention_valid(_cell(irregular_past=[R, R, r]), KS_FAMILIES)
    assert g.valid and g.failed == ()


def test_ks_gate_one_failing_family_is_tolerated():
    g = intervention_valid(_cell(det_an_choice=[R, U, U]), KS_FAMILIES)
    assert g.valid and g.failed == ("det_an_choice",)


def test_ks_gate_two_failing_families_invalidate():
    # kill p = .645: the cell is INTERVENTION-INVALID and yields no K verdict
    g = intervention_valid(_cell(det_an_choice=[U, U, R], a_an_adjective=[r, r, R]), KS_FAMILIES)
    assert not g.valid and g.label == "INTERVENTION-INVALID"
    assert g.failed == ("det_an_choice", "a_an_adjective")


def test_g3_gate_both_failing():
    fams = {"det_an_choice": [U, U, U], "a_an_adjective": [R, R, R]}
    assert intervention_valid(fams, G3_FAMILIES).valid
    fams["a_an_adjective"] = [U, R, U]
    assert not intervention_valid(fams, G3_FAMILIES).valid


def test_gate_missing_family_is_an_error():
    cell = _cell()
    del cell["negation_bare_verb"]
    with pytest.raises(UngrokError, match="negation_bare_verb"):
        intervention_valid(cell, KS_FAMILIES)


def test_cm_cell_valid_needs_two_valid_seeds():
    ok = cm_summary([0, 100, 200, 300], [0, 1, 1, 1])
    bad = cm_summary([0, 100, 200, 300], [0, 0.1, 0.1, 0.1])
    assert cm_cell_valid([ok, ok, bad])
    assert not cm_cell_valid([ok, bad, bad])


# ---------------------------------------------------------------- config


def test_config_defaults_are_the_papers_constants():
    c = DEFAULT_CONFIG
    assert (c.smooth_k, c.min_step, c.final_min_ckpts) == (3, 100, 3)
    assert (c.emerged_thr, c.recovered_thr, c.displaced_thr) == (0.8, 0.8, 0.6)
    assert (c.agree_valid_thr, c.agree_drop_thr, c.unstable_range) == (0.8, 0.15, 0.2)
    assert (c.final_frac, c.onset_thr, c.cm_guard_nats) == (0.10, 0.5, 0.5)
    assert c.exploratory_families == frozenset({"comparative_er"})
    assert c.anchor_family == "pronoun_gender_ref"
    assert not c.is_confirmatory("comparative_er") and c.is_confirmatory("det_an_choice")
    # the timing-test defaults mirror the config's window
    assert timing_test.__defaults__ == (c.timing_lo, c.timing_hi)


def test_config_frozen_and_strict():
    with pytest.raises(pydantic.ValidationError):
        DEFAULT_CONFIG.min_step = 0  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        ClassifierConfig(smoothing=5)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        ClassifierConfig(smooth_k=4)


def test_config_hash():
    h = DEFAULT_CONFIG.sha256()
    assert len(h) == 64 and int(h, 16) >= 0
    assert ClassifierConfig().sha256() == h
    # any constant changes the hash
    assert ClassifierConfig(unstable_range=0.3).sha256() != h
    assert ClassifierConfig(exploratory_families={"comparative_er", "x"}).sha256() != h
    # set order never matters
    a = ClassifierConfig(exploratory_families=["b", "a", "c"])
    b = ClassifierConfig(exploratory_families=["c", "a", "b"])
    assert a.sha256() == b.sha256()
    # pinned: changing a default constant must be a deliberate, visible edit
    assert h == "da5baf11200e69423ab905570c51f5269acade6d9e2912ebc8d41bc1cd4e5e7d"
    # the canonical JSON round-trips to an equal config
    assert ClassifierConfig.model_validate_json(DEFAULT_CONFIG.canonical_json()) == DEFAULT_CONFIG


@pytest.mark.parametrize(("n", "allowed"), [(4, 1), (3, 1), (2, 1), (1, 0)])
def test_one_failure_rule_for_every_gate(n, allowed):
    # KS: >= 2 of 4 fail; G3: both of 2; a gate over one family fires when that family fails
    assert allowed_failures(n) == allowed
    fams = KS_FAMILIES[:n]
    lost = {f: [U, U, U] for f in fams[: allowed + 1]}
    assert not intervention_valid({**{f: [R, R, R] for f in fams}, **lost}, fams).valid
    if allowed:
        assert intervention_valid({**{f: [R, R, R] for f in fams}, fams[0]: [U, U, U]}, fams).valid
