"""Revision grids (Pythia full and thinned, OLMo from refs), step parsing, and list handling."""

from __future__ import annotations

import pytest

from ungrok.errors import UngrokError
from ungrok.hub.revisions import (
    Revision,
    family_of,
    parse_revision_spec,
    parse_step,
    plan_steps,
    pythia_grid,
    resolve_revisions,
)


def test_pythia_full_grid_is_every_published_revision():
    grid = pythia_grid()
    steps = [parse_step(r) for r in grid]
    assert steps[:11] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert steps[11:] == list(range(1000, 143_001, 1000))
    assert len(grid) == 154 and grid[-1] == "step143000"


def test_pythia_thinned_grid_is_the_paper_codes():
    grid = pythia_grid(thinned=True)
    steps = [parse_step(r) for r in grid]
    # docs/method.md §10: 41 revisions, 33 of them at step >= 100.
    assert len(grid) == 41 and sum(s >= 100 for s in steps) == 33
    assert steps[11:14] == [1000, 6000, 11000] and steps[-2:] == [141_000, 143_000]
    assert steps == sorted(steps)


def test_steps_come_from_the_step_part_of_the_name():
    assert parse_step("step99000-tokens415B") == 99000
    assert parse_step("stage1-step140000-tokens294B") == 140000  # OLMo-2
    assert parse_step("step0") == 0
    assert parse_step("main") is None and parse_step("step") is None and parse_step("step12abc") is None
    assert parse_step("mystep12") is None and parse_step("stage1-step7x-tokens1B") is None


def test_families():
    assert (
        family_of("EleutherAI/pythia-70m") == "pythia"
        and family_of("EleutherAI/pythia-1.4b-deduped") == "pythia"
    )
    assert family_of("allenai/OLMo-1B-hf") == "olmo"
    assert family_of("gpt2") is None and family_of("org/pythiaX") is None


def test_resolving_keywords_and_lists():
    assert resolve_revisions("EleutherAI/pythia-70m", "auto") == pythia_grid()
    assert resolve_revisions("EleutherAI/pythia-70m", "thinned") == pythia_grid(thinned=True)
    refs = {"main", "step20000-tokens84B", "step1000-tokens4B", "step330000-tokens1384B", "stage1-x"}
    assert resolve_revisions("allenai/OLMo-1B-hf", "auto", refs) == [
        "step1000-tokens4B", "step20000-tokens84B", "step330000-tokens1384B"]
    assert resolve_revisions("org/any", ["step5", "main"]) == ["step5", "main"]
    for model, spec, needle in (("gpt2", "auto", "no known revision grid for gpt2"),
                                ("allenai/OLMo-1B-hf", "thinned", "thinned is Pythia's grid")):
        with pytest.raises(UngrokError, match=needle):
            resolve_revisions(model, spec, refs)
    with pytest.raises(UngrokError, match="no stepN-tokensM branches"):
        resolve_revisions("allenai/OLMo-1B-hf", "auto", {"main"})
    with pytest.raises(UngrokError, match="cannot list its branches"):
        resolve_revisions("allenai/OLMo-1B-hf", "auto", None)


def test_revision_spec_parsing():
    assert parse_revision_spec(" auto ") == "auto" and parse_revision_spec("thinned") == "thinned"
    assert parse_revision_spec("step1, step2,,step1") == ["step1", "step2"]
    assert parse_revision_spec(["step3", " step4 "]) == ["step3", "step4"]
    with pytest.raises(UngrokError, match="keyword on its own"):
        parse_revision_spec("step1,auto")
    with pytest.raises(UngrokError, match="is empty"):
        parse_revision_spec([])


def test_names_without_a_step_or_repeating_one_are_set_aside():
    kept, aside = plan_steps(["step2000", "main", "step10", "step2000-tokens9B"])
    assert kept == [Revision("step10", 10), Revision("step2000", 2000)]
    assert [n for n, _ in aside] == ["main", "step2000-tokens9B"]
    assert "names no training step" in aside[0][1] and "is step 2000, like 'step2000'" in aside[1][1]
