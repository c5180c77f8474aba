"""The lark grammar gives exactly the structures the hand-written parser gave (pinned from it),
and refuses deep nesting with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ungrok.errors import UngrokError
from ungrok.prereg.expr import (  # noqa: F401  (names for eval of the pinned reprs)
    Abs,
    And,
    Arith,
    Atom,
    Cmp,
    FateIs,
    LetterIs,
    Neg,
    Not,
    Num,
    Or,
    Quorum,
    Term,
    Var,
    Within,
)
from ungrok.prereg.grammar import parse_arith, parse_quorum, parse_term, parse_test, parse_threshold  # noqa: F401  (names for eval of the pinned reprs)
from ungrok.prereg.shorthand import parse_shorthand

# Every `expr:` of examples/paper.yaml, src/ungrok/experiment/demo.yaml and the test fixtures,
# and every short string literal of tests/prereg, fed to each entry point of the parser that
# was replaced (git: src/ungrok/prereg/expr.py before the lark grammar): its repr, or ERROR.
PINNED = json.loads((Path(__file__).parent / "data" / "expr_pinned.json").read_text(encoding="utf-8"))
PARSERS = {
    "shorthand": lambda t: parse_shorthand(t, "w"),
    "test": lambda t: parse_test(t, "w"),
    "arith": lambda t: parse_arith(t, "w"),
    "quorum": lambda t: parse_quorum(t, "w"),
    "threshold": lambda t: parse_threshold(t, "w"),
    "term": lambda t: parse_term(t, "w"),
}


def test_the_pinned_inputs_cover_every_shorthand_form():
    kinds = {eval(r["shorthand"])["kind"] for r in PINNED.values() if r["shorthand"] != "ERROR"}
    assert kinds == {"seeds", "mean", "compare", "spearman", "trend"}
    assert sum(r["shorthand"] != "ERROR" for r in PINNED.values()) > 100


@pytest.mark.parametrize("start", sorted(PARSERS))
def test_every_pinned_input_parses_to_the_same_structure(start):
    diffs = []
    for text, results in PINNED.items():
        try:
            got = repr(PARSERS[start](text))
        except UngrokError as e:
            assert "\n" not in str(e), text
            got = "ERROR"
        if got != results[start]:
            diffs.append((text, results[start], got))
    assert diffs == []


@pytest.mark.parametrize(
    ("fn", "text"),
    [
        (parse_test, "(" * 5000 + "cm_final < 0" + ")" * 5000),
        (parse_arith, "(" * 5000 + "cm_final" + ")" * 5000),
        (parse_shorthand, "r has " + "(" * 5000 + "cm_final < 0" + ")" * 5000 + " in all seeds of cell a"),
    ],
)
def test_deep_nesting_is_refused_with_one_line(fn, text):
    with pytest.raises(UngrokError) as e:
        fn(text, "prediction X")
    assert "nested parentheses" in str(e.value) and "\n" not in str(e.value)


def test_long_flat_chains_parse_without_recursion():
    node = parse_test(" and ".join(["valid"] * 3000) + " or " + "not " * 3000 + "died", "t")
    assert isinstance(node, Or)
    assert isinstance(parse_arith(" + ".join(["cm_final"] * 3000), "t"), Arith)
