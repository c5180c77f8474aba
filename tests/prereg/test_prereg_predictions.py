"""Compiling registered predictions: shorthand and YAML forms agree, names are checked, gates resolved."""

from __future__ import annotations

import pytest
from prereg_helpers import VOCAB

from ungrok.errors import UngrokError
from ungrok.prereg.predictions import (
    AllOf,
    Gates,
    SeedsPrediction,
    compile_predictions,
    dump,
    governed_cells,
    load,
    seed_sets,
)


def one(item):
    (p,) = compile_predictions([item], VOCAB)
    return p


def test_shorthand_and_yaml_compile_to_the_same_frozen_prediction():
    short = one({"name": "P1", "expr": "pronoun_gender_ref is RECOVERED+valid in 2/3 seeds of cell ts"})
    long = one({"name": "P1", "kind": "seeds", "family": "pronoun_gender_ref", "cells": ["ts"],
                "test": "RECOVERED+valid", "quorum": ">= 2/3"})
    assert short.model_copy(update={"source": None}) == long
    assert short.source == "pronoun_gender_ref is RECOVERED+valid in 2/3 seeds of cell ts"
    assert long.family == ["pronoun_gender_ref"] and long.quorum == ">= 2/3"


def test_globs_expand_in_experiment_order_and_the_frozen_form_round_trips():
    p = one(
        {
            "name": "K2",
            "expr": "spearman(rate, mean cm_final of pronoun_gender_ref) over cells kill_* <= -0.8",
        }
    )
    assert p.cells == ["kill_0", "kill_1", "kill_2", "kill_3"]
    assert load(dump([p])) == [p]


@pytest.mark.parametrize(
    ("test", "agree", "cm_guard"),
    [
        ("RECOVERED+valid", False, False),  # a seed with a failed control lacks the property: a "no"
        ("RECOVERED", True, False),  # a bare fate counts classifiable (agree-valid) verdicts only
        ("died", True, False),
        ("transient", True, False),
        ("conflict_final >= 0.8", False, False),  # a raw measure: no gate unless asked
        ("letter == R", False, False),  # the letter's case already carries the gate
        ("not valid", False, False),  # a test about the gate failing must see failed seeds
        ("artifact", False, False),
        ("cm_final < 0", False, True),
        ("timing", False, True),
        ("within(1)", False, True),
        ("cm_valid and cm_final < 0", False, True),
        ("not cm_valid", False, False),
        ("RECOVERED and cm_final > 0", True, True),
    ],
)
def test_auto_gates_resolve_to_explicit_booleans(test, agree, cm_guard):
    p = one({"name": "G", "kind": "seeds", "family": "pronoun_gender_ref", "cells": "web", "test": test})
    assert (p.gates.agree, p.gates.cm_guard) == (agree, cm_guard)


@pytest.mark.parametrize(
    ("item", "cm_guard"),
    [
        ("mean cm_final of pronoun_gender_ref in cell web < 0", False),  # the paper averages every seed
        ("spearman(rate, mean cm_final of pronoun_gender_ref) over cells kill_* <= -0.8", False),
        ("mean cm_final of pronoun_gender_ref decreases strictly over cells kill_0, kill_1, kill_2", False),
        ("mean cm_final of pronoun_gender_ref in cell kill_1 < in cell kill_0", False),
        ("cm_final of pronoun_gender_ref in cell kill_1 < in cell kill_0 in >= 2/3 seeds", True),  # per seed
        ({"expr": "mean cm_final of pronoun_gender_ref in cell web < 0", "gates": {"cm_guard": True}}, True),
    ],
)
def test_cm_guard_is_off_for_cell_means_unless_registered(item, cm_guard):
    p = one({"name": "G", **({"expr": item} if isinstance(item, str) else item)})
    assert p.gates.cm_guard is cm_guard


def test_explicit_gates_win_and_intervention_names_its_families():
    p = one({"name": "P2", "kind": "seeds", "family": "det_an_choice", "cells": "web", "test": "RECOVERED",
             "quorum": "all", "gates": {"agree": False, "intervention": "ks"}})
    assert p.gates == Gates(agree=False, cm_guard=False, min_valid_seeds=2,
                            intervention=["det_an_choice", "a_an_adjective", "irregular_past", "negation_bare_verb"])


def test_composites_compile_their_parts_and_report_governed_cells():
    p = one({"name": "P1", "kind": "all", "of": [
        "pronoun_gender_ref is RECOVERED+valid in all seeds of cell ts",
        {"kind": "seeds", "family": "pronoun_gender_ref", "cells": "web", "test": "died", "seeds": "quarantined"},
        "conflict_final of pronoun_gender_ref in cell kill_1 < in cell kill_0 in all seeds",
    ]})
    assert isinstance(p, AllOf) and isinstance(p.of[0], SeedsPrediction)
    assert governed_cells(p) == ["ts", "web", "kill_1", "kill_0"]
    assert seed_sets(p) == {"governed", "quarantined"}


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ({"name": "X", "expr": "pronoun_gender_rf is RECOVERED in all seeds of cell ts"}, "unknown family 'pronoun_gender_rf'"),
        ({"name": "X", "expr": "pronoun_gender_ref is RECOVERED in all seeds of cell tss"}, "unknown cell 'tss'"),
        ({"name": "X", "expr": "pronoun_gender_ref is RECOVERED in all seeds of cell zz_*"}, "matches no cell"),
        ({"name": "X", "expr": "pronoun_gender_ref has cm_finl < 0 in all seeds of cell ts"}, "unknown measure 'cm_finl'"),
        ({"name": "X", "expr": "mean cm_finl of pronoun_gender_ref in cell ts < 0"}, "unknown measure 'cm_finl'"),
        ({"name": "X", "expr": "pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds"}, "expected 'of'"),
        ({"name": "X", "expr": "spearman(rate, mean cm_final of pronoun_gender_ref) over cells ts, web <= -0.8"},
         "at least 3 cells"),
        ({"name": "X", "expr": "spearman(rate, mean cm_final) over cells kill_* <= -0.8"}, "needs its family"),
        ({"name": "X", "expr": "spearman(cm_final, mean cm_final of pronoun_gender_ref) over cells kill_* < 0"},
         "per-seed measure"),
        ({"name": "X", "expr": "spearman(rate, mean cm_final of pronoun_gender_ref) over cells kill_* <= -2"},
         "[-1, 1]"),
        ({"name": "X", "kind": "seeds", "family": "pronoun_gender_ref", "cells": "ts", "test": "valid",
          "quorum": "most"}, "seed count"),
        ({"name": "X", "kind": "seeds", "family": "pronoun_gender_ref", "cells": "ts", "test": "valid",
          "colour": "red"}, "colour"),
        ({"name": "X", "kind": "vibes"}, "kind"),
        ({"name": "X"}, "needs an expr or a kind"),
        ({"expr": "pronoun_gender_ref is RECOVERED in all seeds of cell ts"}, "needs a name"),
        ({"name": "X", "expr": "pronoun_gender_ref is RECOVERED in all seeds of cell ts", "cells": "web"},
         "either in expr or as a field"),
        ({"name": "X", "kind": "compare", "family": "pronoun_gender_ref", "measure": "cm_final", "a": "ts",
          "b": "web", "test": "a > b and valid"}, "reads only a and b"),
        ({"name": "X", "kind": "compare", "family": "pronoun_gender_ref", "measure": "cm_final", "a": "ts",
          "b": "ts"}, "reference cell ts is also"),
        ({"name": "X", "kind": "all", "of": ["pronoun_gender_ref is NEVER in any seed of cell ts"]}, "at least two"),
        ({"name": "X", "kind": "all", "of": [{"expr": "pronoun_gender_ref is NEVER in any seed of cell ts",
                                               "falsifier": True},
                                              "pronoun_gender_ref is NEVER in any seed of cell web"]}, "falsifier"),
        ({"name": "X", "kind": "trend", "family": "det_an_choice", "measure": "conflict_final",
          "cells": "kill_*", "direction": "decreasing"}, "needs order_by"),
        ({"name": "X", "kind": "seeds", "family": "pronoun_gender_ref", "cells": "ts", "test": "valid",
          "gates": {"intervention": ["no_such_family"]}}, "unknown family 'no_such_family'"),
    ],
)
def test_bad_predictions_are_one_line_errors_naming_the_prediction(item, needle):
    with pytest.raises(UngrokError) as e:
        compile_predictions([item], VOCAB)
    msg = str(e.value)
    assert needle in msg, msg
    assert "\n" not in msg
    assert "prediction" in msg


def test_names_are_unique_across_the_registry():
    item = {"name": "P1", "expr": "pronoun_gender_ref is NEVER in any seed of cell ts"}
    with pytest.raises(UngrokError, match="P1: the name is already registered"):
        compile_predictions([item, item], VOCAB)
    with pytest.raises(UngrokError, match="already registered"):
        compile_predictions([item], VOCAB, taken=["P1"])


def test_declared_cell_numbers_are_checked():
    from dataclasses import replace

    vocab = replace(VOCAB, numbers=frozenset({"rate"}))
    (p,) = compile_predictions(
        [{"name": "K", "expr": "spearman(rate, mean cm_final of pronoun_gender_ref) over cells kill_* < 0"}],
        vocab,
    )
    assert p.x == "rate"
    with pytest.raises(UngrokError, match="unknown cell number 'rte'"):
        compile_predictions(
            [
                {
                    "name": "K",
                    "expr": "spearman(rte, mean cm_final of pronoun_gender_ref) over cells kill_* < 0",
                }
            ],
            vocab,
        )
