"""A stored prediction rendered as the one-line shorthand: it parses back to the same fields
(every pinned shorthand input, every prediction of the shipped experiments), and a few exact
lines written by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prereg_helpers import VOCAB

from ungrok.fate.gates import G3_FAMILIES, KS_FAMILIES
from ungrok.prereg.predictions import (
    LEAF_KINDS,
    AllOf,
    AnyOf,
    Vocabulary,
    compile_predictions,
    dump,
    leaves,
    load,
)
from ungrok.prereg.registry import read_experiment
from ungrok.prereg.render import expressible, render_prediction
from ungrok.prereg.shorthand import parse_shorthand
from ungrok.rules.registry import load_rules

ROOT = Path(__file__).resolve().parents[2]
PINNED = json.loads((Path(__file__).parent / "data" / "expr_pinned.json").read_text(encoding="utf-8"))
SHORTHANDS = sorted(t for t, r in PINNED.items() if r["shorthand"] != "ERROR")
EXPERIMENTS = [*sorted((ROOT / "examples").glob("*.yaml")), ROOT / "src/ungrok/experiment/demo.yaml"]
_CARRIED = ("name", "falsifier", "group", "note", "source", "gates", "seeds")  # not in the shorthand


def _roundtrip(leaf):
    """The leaf rebuilt from its rendered line plus the fields the shorthand never carries."""
    kept = {k: v for k, v in leaf.model_dump().items() if k in _CARRIED}
    return type(leaf).model_validate({**kept, **parse_shorthand(render_prediction(leaf), "rendered")})


def _experiment_predictions():
    out = []
    for path in EXPERIMENTS:
        try:
            exp = read_experiment(path)
        except Exception:  # noqa: BLE001  (a training-only YAML has no cells or predictions)
            continue
        families = set(load_rules(None)) | set(KS_FAMILIES) | set(G3_FAMILIES)
        for raw in exp.predictions:  # families named only in the experiment's batteries
            for part in [raw, *raw.get("of", [])]:
                if isinstance(part, dict) and "family" in part:
                    families |= set([part["family"]] if isinstance(part["family"], str) else part["family"])
                if isinstance(part, dict) and "families" in part:
                    families |= set(part["families"])
        vocab = Vocabulary(
            families=frozenset(families), cells=tuple(exp.cells), measures=frozenset(exp.measures)
        )
        out += [(path.name, p) for p in compile_predictions(exp.predictions, vocab)]
    return out


def test_every_pinned_shorthand_round_trips():
    assert len(SHORTHANDS) > 100
    bad = []
    for text in SHORTHANDS:
        fields = parse_shorthand(text, "pinned")
        line = render_prediction(fields)
        if not expressible(fields) or parse_shorthand(line, "rendered") != fields:
            bad.append((text, line))
    assert bad == []


def test_every_shipped_prediction_renders_and_its_leaves_round_trip():
    found = _experiment_predictions()
    assert {name for name, _ in found} >= {"paper.yaml", "demo.yaml"}
    kinds, bad = set(), []
    for name, pred in found:
        line = render_prediction(pred)
        assert line and "\n" not in line, (name, pred.name)
        for leaf in leaves(pred):
            kinds.add(leaf.kind)
            if expressible(leaf) and _roundtrip(leaf) != leaf:
                bad.append((name, pred.name, render_prediction(leaf)))
    assert bad == []
    assert kinds == {"seeds", "mean", "compare", "spearman", "trend"}


def test_a_frozen_prediction_renders_as_it_did_before_freezing():
    preds = _experiment_predictions()
    assert [render_prediction(p) for _, p in preds] == [
        render_prediction(p) for p in load(dump([p for _, p in preds]))
    ]


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (
            {
                "kind": "seeds",
                "family": "pronoun_gender_ref",
                "cells": "ts",
                "test": "RECOVERED+valid",
                "quorum": "2/3",
            },
            "pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell ts",
        ),
        (
            {
                "kind": "seeds",
                "family": ["det_an_choice", "irregular_past"],
                "cells": ["web", "kill_*"],
                "combine": "pooled",
                "test": "cm_final < 0",
                "quorum": 3,
            },
            "det_an_choice, irregular_past have cm_final < 0 in >= 3 seeds of cells web, kill_* pooled",
        ),
        (
            {
                "kind": "seeds",
                "family": "reflexive_gender",
                "cells": "web",
                "test": "DISPLACED or PARTIAL",
                "quorum": "3/3",
            },
            "reflexive_gender is DISPLACED or PARTIAL in all seeds of cell web",
        ),
        (
            {
                "kind": "seeds",
                "family": "reflexive_gender",
                "cells": "web",
                "test": "not valid",
                "quorum": "none",
            },
            "reflexive_gender is not valid in no seeds of cell web",
        ),
        (
            {
                "kind": "mean",
                "family": "pronoun_gender_ref",
                "cells": ["web"],
                "measure": "cm_final",
                "test": "<0",
            },
            "mean cm_final of pronoun_gender_ref in cell web < 0",
        ),
        (
            {
                "kind": "compare",
                "family": "pronoun_gender_ref",
                "measure": "conflict_final",
                "a": "web",
                "b": "web_dn1.5",
                "test": "a <= b",
            },
            "conflict_final of pronoun_gender_ref in cell web <= in cell web_dn1.5 in >= 2/3 seeds",
        ),
        (
            {
                "kind": "compare",
                "by": "mean",
                "family": "pronoun_gender_ref",
                "measure": "cm_final",
                "a": ["kill_0", "kill_1"],
                "b": "ts",
                "combine": "any",
            },
            "mean cm_final of pronoun_gender_ref in cells kill_0, kill_1 any > in cell ts",
        ),
        (
            {
                "kind": "spearman",
                "x": "rate",
                "y": "mean cm_final of pronoun_gender_ref",
                "cells": "kill_*",
                "test": "<= -0.8",
            },
            "spearman(rate, mean cm_final of pronoun_gender_ref) over cells kill_* <= -0.8",
        ),
        (
            {
                "kind": "spearman",
                "over": "families",
                "families": ["a", "b", "c"],
                "cells": ["web", "web-dn5"],
                "x": "support_ratio",
                "y": "mean conflict_final",
                "test": "> 0.25",
            },
            "spearman(support_ratio, mean conflict_final) over families a, b, c in cells web, web-dn5 > 0.25",
        ),
        (
            {
                "kind": "trend",
                "family": "pronoun_gender_ref",
                "measure": "cm_final",
                "cells": ["kill_0", "kill_1"],
                "direction": "decreasing",
            },
            "mean cm_final of pronoun_gender_ref strictly decreases over cells kill_0, kill_1",
        ),
        (
            {
                "kind": "trend",
                "family": "f",
                "measure": "cm_final",
                "cells": ["a", "b"],
                "direction": "increasing",
                "strict": False,
                "order_by": "rate",
            },
            "mean cm_final of f increases over cells a, b by rate",
        ),
        (
            {"kind": "seeds", "family": "valid", "cells": ["each", "my cell"], "test": "died"},
            "'valid' has died in >= 2/3 seeds of cells 'each', 'my cell'",
        ),
    ],
)
def test_known_lines(raw, line):
    assert render_prediction(raw) == line
    assert expressible(raw)
    assert parse_shorthand(line, "x")["kind"] == raw["kind"]


def test_a_resolved_prediction_shows_its_expanded_cells_and_canonical_quorum():
    (p,) = compile_predictions(
        [{"name": "P", "expr": "pronoun_gender_ref has cm_final < 0 in 2/3 seeds of cells kill_*"}], VOCAB
    )
    assert render_prediction(p) == (
        "pronoun_gender_ref has cm_final < 0 in >= 2/3 seeds of cells kill_0, kill_1, kill_2, kill_3"
    )
    assert _roundtrip(p) == p


def test_composites_and_general_compare_tests_are_display_only():
    (p,) = compile_predictions([{"name": "P", "kind": "all", "of": [
        "pronoun_gender_ref is RECOVERED+valid in all seeds of cell ts",
        {"kind": "any", "of": [
            "mean cm_final of pronoun_gender_ref in cell web < 0",
            {"kind": "compare", "family": "pronoun_gender_ref", "measure": "cm_final", "a": "web", "b": "ts",
             "test": "abs(a - b) <= 0.05", "quorum": "all"},
        ]},
    ]}], VOCAB)
    assert isinstance(p, AllOf) and isinstance(p.of[1], AnyOf)
    assert render_prediction(p) == (
        "all of: [pronoun_gender_ref is RECOVERED+valid in all seeds of cell ts]; "
        "[any of: [mean cm_final of pronoun_gender_ref in cell web < 0]; "
        "[cm_final of pronoun_gender_ref: abs(a - b) <= 0.05 with a = cell web, b = cell ts, in all seeds]]"
    )
    assert not expressible(p) and not expressible(p.of[1]) and not expressible(p.of[1].of[1])
    assert all(expressible(x) for x in (p.of[0], p.of[1].of[0]))


def test_every_leaf_kind_is_covered():
    assert {k.model_fields["kind"].annotation.__args__[0] for k in LEAF_KINDS} == {
        "seeds", "mean", "compare", "spearman", "trend"
    }


def test_the_score_table_shows_each_prediction_as_its_line(tmp_path, capsys):
    from cli_helpers import run
    from ungrok.fate.config import DEFAULT_CONFIG

    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "cells: [ts, web]\nseeds: [42, 43, 44]\npredictions:\n  - name: P1\n    kind: mean\n"
        "    family: pronoun_gender_ref\n    cells: [ts, web]\n    measure: conflict_final\n    test: '>0.5'\n"
    )
    recs = [
        dict(cell=c, seed=s, family="pronoun_gender_ref", fate="RECOVERED", agree_gate="pass", conflict_final=0.9,
             conflict_max=0.95, agree_final=0.95, agree_max=0.96, n_checkpoints=40)
        for c in ("ts", "web") for s in (42, 43, 44)
    ]
    ev = tmp_path / "ev.json"
    ev.write_text(json.dumps({"classifier_sha256": DEFAULT_CONFIG.sha256(), "records": recs}))
    assert run(["prereg", "freeze", exp, "--out", tmp_path / "run"], capsys)[0] == 0
    code, out, err = run(["prereg", "score", tmp_path / "run" / "registry.json", "--evidence", ev], capsys)
    assert code == 0, err
    column = " ".join(
        " ".join(ln.split("│")[3].split()) for ln in out.splitlines() if ln.count("│") > 3
    ).strip()
    assert column == "mean conflict_final of pronoun_gender_ref in cells ts, web > 0.5"  # the test column
