"""The expression language: parse trees, three-valued evaluation, quorums, and the one-line shorthand."""

from __future__ import annotations

import pytest

from ungrok.errors import UngrokError
from ungrok.prereg.expr import (
    Abs,
    And,
    Arith,
    Atom,
    Cmp,
    FateIs,
    LetterIs,
    MissingField,
    Neg,
    Not,
    Num,
    Or,
    Var,
    Within,
    eval_arith,
    eval_test,
    negated,
    reads,
)
from ungrok.prereg.grammar import parse_arith, parse_quorum, parse_term, parse_test, parse_threshold
from ungrok.prereg.shorthand import parse_shorthand


class Env:
    """A hand-made record: measures from a dict (absent -> MissingField), atoms from a dict."""

    def __init__(self, measures=None, atoms=None, fate="RECOVERED", valid=True, letter="R", within=None):
        self.m, self.a, self.f, self.v, self.l, self.w = (
            measures or {},
            atoms or {},
            fate,
            valid,
            letter,
            within,
        )

    def measure(self, name):
        if name not in self.m:
            raise MissingField(name)
        return self.m[name]

    def atom(self, name):
        return self.a[name]

    def fate_is(self, fate, valid):
        return self.f == fate and (self.v or not valid)

    def letter(self):
        return self.l

    def within(self, k):
        return self.w


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("RECOVERED+valid", FateIs("RECOVERED", True)),
        ("RECOVERED + valid", FateIs("RECOVERED", True)),
        ("DISPLACED", FateIs("DISPLACED", False)),
        ("fate != NEVER", Not(FateIs("NEVER", False))),
        ("letter == d", LetterIs("==", "d")),
        ("within(1)", Within(1)),
        ("transient and not valid", And((Atom("transient"), Not(Atom("valid"))))),
        ("cm_final < 0", Cmp("<", Var("cm_final"), Num(0.0))),
        ("cm_final ≤ −0.5", Cmp("<=", Var("cm_final"), Neg(Num(0.5)))),
        (
            "abs(a - b) <= 0.05",
            Cmp("<=", Abs(Arith("-", Var("a"), Var("b"))), Num(0.05)),
        ),
        (
            "conflict_max >= conflict_final + 0.15",
            Cmp(">=", Var("conflict_max"), Arith("+", Var("conflict_final"), Num(0.15))),
        ),
        # precedence: * binds tighter than -, and "and" tighter than "or"
        (
            "1 - 2 * pm_final > 0",
            Cmp(">", Arith("-", Num(1.0), Arith("*", Num(2.0), Var("pm_final"))), Num(0.0)),
        ),
        (
            "DISPLACED or died and valid",
            Or((FateIs("DISPLACED", False), And((Atom("died"), Atom("valid"))))),
        ),
        # a parenthesised arithmetic left side and a parenthesised test both parse
        ("(pm_final - pm_at_peak) > 0", Cmp(">", Arith("-", Var("pm_final"), Var("pm_at_peak")), Num(0.0))),
        (
            "(DISPLACED or NEVER) and valid",
            And((Or((FateIs("DISPLACED", False), FateIs("NEVER", False))), Atom("valid"))),
        ),
    ],
)
def test_parse_test_builds_the_expected_tree(text, tree):
    assert parse_test(text, "t") == tree


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("RECOVERED+", "expected 'valid'"),
        ("cm_final <", "expected a number or a measure"),
        ("cm_final", "expected a comparison"),
        ("0 < cm_final < 1", "chained comparisons"),
        ("letter == X", "verdict letter"),
        ("fate == GONE", "expected a fate"),
        ("within(x)", "whole number"),
        ("cm_final < 0 cm_peak", "unexpected text"),
        ("cm_final $ 0", "unexpected character '$'"),
        ("import os", "expected"),
        ("__import__('os')", "expected"),
    ],
)
def test_bad_tests_are_one_line_errors_naming_the_place(text, needle):
    with pytest.raises(UngrokError) as e:
        parse_test(text, "prediction X test")
    msg = str(e.value)
    assert needle in msg and "prediction X test" in msg and "\n" not in msg


def test_arithmetic_evaluates_like_hand_arithmetic():
    env = Env({"pm_final": 1.5, "pm_at_peak": 0.25, "cm_final": -0.4})
    assert eval_arith(parse_arith("pm_final - pm_at_peak * 2", "m"), env) == pytest.approx(1.0)
    assert eval_arith(parse_arith("abs(cm_final) / 2", "m"), env) == pytest.approx(0.2)
    assert eval_arith(parse_arith("-(pm_final - 1)", "m"), env) == pytest.approx(-0.5)
    assert (
        eval_arith(parse_arith("pm_final / (cm_final + 0.4)", "m"), env) is None
    )  # division by zero: unknown


def test_kleene_logic_keeps_unknowns_unknown():
    unknown = Env({"cm_zero_crossing": None}, {"valid": True, "died": False})
    assert eval_test(parse_test("cm_zero_crossing > 100", "t"), unknown) is None
    assert eval_test(parse_test("cm_zero_crossing > 100 and died", "t"), unknown) is False  # F and ? = F
    assert eval_test(parse_test("cm_zero_crossing > 100 or valid", "t"), unknown) is True  # ? or T = T
    assert eval_test(parse_test("cm_zero_crossing > 100 or died", "t"), unknown) is None
    assert eval_test(parse_test("not (cm_zero_crossing > 100)", "t"), unknown) is None


def test_comparisons_use_the_classifier_float_slack():
    # 1.0 - 0.8 is 0.19999999999999996 in binary; a registered ">= 0.2" reads it as 0.2
    env = Env({"x": 1.0 - 0.8})
    assert eval_test(parse_test("x >= 0.2", "t"), env) is True
    assert eval_test(parse_test("x < 0.2", "t"), env) is False
    assert eval_test(parse_test("x == 0.2", "t"), env) is True


def test_fate_atoms_and_letters():
    invalid_d = Env(fate="DISPLACED", valid=False, letter="d")
    assert eval_test(parse_test("DISPLACED", "t"), invalid_d) is True
    assert eval_test(parse_test("DISPLACED+valid", "t"), invalid_d) is False
    assert eval_test(parse_test("letter == d", "t"), invalid_d) is True
    assert eval_test(parse_test("letter == D", "t"), invalid_d) is False


def test_missing_measure_is_missing_data_not_false():
    with pytest.raises(MissingField) as e:
        eval_test(parse_test("cm_final < 0", "t"), Env({}))
    assert e.value.name == "cm_final"


def test_reads_and_negated_atoms():
    node = parse_test("RECOVERED+valid and not cm_valid and cm_final > 0", "t")
    assert reads(node) == {"fate+valid", "cm_valid", "cm_final"}  # X+valid states the gate itself
    assert reads(parse_test("RECOVERED", "t")) == {"fate"}
    assert negated(node) == {"cm_valid"}
    assert negated(parse_test("not (valid or artifact)", "t")) == {"valid", "artifact"}
    assert negated(parse_test("not not valid", "t")) == set()


@pytest.mark.parametrize(
    ("text", "n", "yes", "no"),
    [
        (">= 2/3", 3, [2, 3], [0, 1]),
        ("2/3", 3, [2, 3], [1]),
        (">= 2/3", 2, [2], [1]),  # ceil(4/3) = 2
        (">= 4/6", 6, [4, 5, 6], [3]),
        ("all", 3, [3], [2]),
        ("any", 3, [1, 2, 3], [0]),
        ("no", 3, [0], [1]),
        ("<= 1/3", 3, [0, 1], [2]),
        (">= 2", 3, [2, 3], [1]),
        ("> 1", 3, [2], [1]),
    ],
)
def test_quorum_arithmetic_is_exact(text, n, yes, no):
    q = parse_quorum(text, "q")
    assert all(q.satisfied(k, n) for k in yes)
    assert not any(q.satisfied(k, n) for k in no)
    assert parse_quorum(q.text, "q") == q  # the canonical text parses back to the same quorum


@pytest.mark.parametrize(("text", "needle"), [("3/2", "above 1"), ("2/0", "denominator"), ("!= 1", "cannot"),
                                              ("most", "seed count")])
def test_bad_quorums(text, needle):
    with pytest.raises(UngrokError, match=needle):
        parse_quorum(text, "q")


def test_threshold_and_terms():
    assert parse_threshold("<= -0.8", "t") == ("<=", -0.8)
    assert parse_threshold("≥ 0", "t") == (">=", 0.0)
    with pytest.raises(UngrokError, match="comparison"):
        parse_threshold("-0.8", "t")
    t = parse_term("mean cm_final - pm_final of pronoun_gender_ref", "x")
    assert (t.attr, t.family, t.measure) == (
        None,
        "pronoun_gender_ref",
        Arith("-", Var("cm_final"), Var("pm_final")),
    )
    assert parse_term("rate", "x").attr == "rate"
    with pytest.raises(UngrokError):
        parse_term("rate dose", "x")


# --------------------------------------------------------------------------- shorthand
@pytest.mark.parametrize(
    ("text", "fields"),
    [
        (
            "pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell ts",
            dict(kind="seeds", family="pronoun_gender_ref", test="RECOVERED+valid", quorum=">= 2/3", cells="ts",
                 combine="each"),
        ),
        (
            "pronoun_gender_ref has cm_final < 0 in all seeds of cell web",
            dict(kind="seeds", family="pronoun_gender_ref", test="cm_final < 0", quorum="all", cells="web",
                 combine="each"),
        ),
        (
            "det_an_choice, a_an_adjective have conflict_final ≥ 0.8 in 3/3 seeds of cells ts_*, web pooled",
            dict(kind="seeds", family=["det_an_choice", "a_an_adjective"], test="conflict_final >= 0.8",
                 quorum="all", cells=["ts_*", "web"], combine="pooled"),
        ),
        (
            "pronoun_gender_ref has within(1) in >= 2/3 seeds of cell web",
            dict(kind="seeds", family="pronoun_gender_ref", test="within(1)", quorum=">= 2/3", cells="web",
                 combine="each"),
        ),
        (
            "mean cm_final of pronoun_gender_ref in cell web < 0",
            dict(kind="mean", family="pronoun_gender_ref", measure="cm_final", cells="web", test="< 0.0",
                 combine="each"),
        ),
        (
            "spearman(rate, mean cm_final of pronoun_gender_ref) over cells kill_* <= -0.8",
            dict(kind="spearman", x="rate", y="mean cm_final of pronoun_gender_ref", cells="kill_*",
                 test="<= -0.8", combine="each"),
        ),
        (
            "spearman(support_ratio, mean conflict_final) over families a, b, c in cells web, 'web-dn5' > 0",
            dict(kind="spearman", x="support_ratio", y="mean conflict_final", over="families",
                 families=["a", "b", "c"], cells=["web", "web-dn5"], test="> 0.0", combine="each"),
        ),
        (
            "conflict_final of pronoun_gender_ref in cell web <= in cell web_dn1.5 in >= 2/3 seeds",
            dict(kind="compare", by="seed", family="pronoun_gender_ref", measure="conflict_final", a="web",
                 b="web_dn1.5", test="a <= b", quorum=">= 2/3", combine="each"),
        ),
        (
            "mean cm_final of pronoun_gender_ref in cell early > in cell late",
            dict(kind="compare", by="mean", family="pronoun_gender_ref", measure="cm_final", a="early",
                 b="late", test="a > b", combine="each"),
        ),
        (
            "mean conflict_final of det_an_choice decreases strictly over cells base, an_1, an_2 by rate",
            dict(kind="trend", family="det_an_choice", measure="conflict_final", cells=["base", "an_1", "an_2"],
                 direction="decreasing", strict=True, order_by="rate"),
        ),
    ],
)
def test_shorthand_forms_parse_into_fields(text, fields):
    assert parse_shorthand(text) == fields


def test_shorthand_glues_touching_tokens_into_one_cell_pattern():
    assert parse_shorthand("r is NEVER in any seed of cells *_dn5, web-packed")["cells"] == [
        "*_dn5",
        "web-packed",
    ]
    # separated by a space, they are two things, and the parser says where it stopped
    with pytest.raises(UngrokError, match="unexpected text"):
        parse_shorthand("r is NEVER in any seed of cells kill_ *")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds", "expected 'of'"),
        ("pronoun_gender_ref is RECOVERED+valid of cell ts", "expected 'in'"),
        ("spearman(rate) over cells k <= -0.8", "expected ','"),
        ("mean cm_final of r in cell web", "expected a comparison"),
        ("mean cm_final of r strictly in cell web < 0", "'strictly' belongs"),
        ("pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell ts and more", "unexpected text"),
        ("", "expected"),
    ],
)
def test_bad_shorthand(text, needle):
    with pytest.raises(UngrokError) as e:
        parse_shorthand(text)
    assert needle in str(e.value) and "\n" not in str(e.value)
