"""The one grammar of the prediction language: per-seed tests, measure arithmetic, quorums,
thresholds, Spearman terms and the one-line `expr:` shorthand, declared for `lark` (LALR).

`parse(text, start, what)` returns what the transformer builds: expression trees
(`ungrok.prereg.expr`), a Quorum, an (op, value) threshold, a Term, or the shorthand's
prediction fields. Every error is one UngrokError line naming the expression and the column.
Unicode ≥ ≤ ≠ − × are accepted for >= <= != - *.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from ungrok.errors import UngrokError
from ungrok.fate.classify import FATES
from ungrok.prereg import expr as E

MAX_NESTING = 100
_UNICODE = str.maketrans({"≥": ">=", "≤": "<=", "≠": "!=", "−": "-", "–": "-", "×": "*"})
_ATOMS = "|".join(sorted(E.ATOMS, key=len, reverse=True))
_FATES = "|".join(sorted(FATES, key=len, reverse=True))
_END = r"(?![A-Za-z0-9_.])"

GRAMMAR = rf"""
?start_test: test
?start_arith: arith
?start_quorum: quorum
start_threshold: cmp signed
?start_term: term
?start_shorthand: shorthand

// ---- per-seed tests
?test: and_ ("or" and_)*       -> or_
?and_: not_ ("and" not_)*      -> and_
not_: NOT* base
?base: "(" test ")" | atom | compare
atom: FATE ("+" VALID)?                 -> fate_is
    | "fate" EQ FATE                    -> fate_cmp
    | "letter" EQ (NAME | STRING)       -> letter_is
    | "within" "(" (NUMBER | NAME) ")" -> within
    | ATOM                              -> atom
compare: arith cmp arith
cmp: CMP
EQ: "==" | "!="

// ---- arithmetic
arith: term_ (ADDOP term_)*
term_: unary (MULOP unary)*
unary: NEG* primary
?primary: NUMBER -> num
    | "abs" "(" arith ")" -> abs_
    | "(" arith ")"
    | NAME -> var
NEG: "-"
ADDOP: "+" | "-"
MULOP: "*" | "/"
signed: NEG? NUMBER

// ---- quorums
quorum: ALL | ANY | NONE | CMP? NUMBER ("/" NUMBER)?
ALL: /(?:all|every){_END}/
ANY: /any{_END}/
NONE: /(?:none|no){_END}/

// ---- Spearman terms
term: MEAN arith ("of" name)? -> mean_term
    | NAME                     -> attr_term
MEAN: "mean"

// ---- the one-line shorthand
?shorthand: seeds | by_seed | mean_cmp | trend | spearman
seeds: names IS src_test "in" quorum SEEDS "of" cells
by_seed: src_arith "of" names "in" cells cmp "in" "cell" cell "in" quorum SEEDS
mean_cmp: MEAN src_arith "of" names "in" cells cmp ("in" "cell" cell | signed)
trend: MEAN src_arith "of" names STRICTLY? DIRECTION STRICTLY? "over" "cells" cell ("," cell)* (BY name)?
spearman: "spearman" "(" src_term "," src_term ")" "over" (FAMILIES names "in")? cells cmp signed
src_test: test
src_arith: arith
src_term: term
names: name ("," name)*
name: NAME | STRING
cells: CELLWORD cell ("," cell)* COMBINE?
cell: CELL | STRING
CELLWORD: /(?:cells|cell){_END}/
COMBINE: /(?:pooled|each|any){_END}/
IS: /(?:is|are|has|have){_END}/
SEEDS: /(?:seeds|seed|runs|run){_END}/
STRICTLY: "strictly"
DIRECTION: /(?:increases|decreases){_END}/
BY: "by"
FAMILIES: "families"
NOT: "not"
VALID: "valid"

// ---- tokens
CMP: />=|<=|==|!=|>|</
ATOM.3: /(?:{_ATOMS}){_END}/
FATE.3: /(?:{_FATES}){_END}/
NUMBER: /(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?/
NAME: /[A-Za-z_][A-Za-z0-9_.]*/
STRING: /'[^']*'|"[^"]*"/
CELL.-1: /[A-Za-z0-9_.*?\-]+/
%ignore /\s+/
"""

_STARTS = ("test", "arith", "quorum", "threshold", "term", "shorthand")


@cache
def _parser() -> Lark:
    return Lark(
        GRAMMAR, parser="lalr", lexer="contextual", start=[f"start_{s}" for s in _STARTS],
        propagate_positions=True, maybe_placeholders=False,
    )


class _Fail(Exception):
    def __init__(self, msg: str, tok: Any) -> None:
        super().__init__(msg)
        self.msg, self.tok = msg, tok


def _one(names: list[str]) -> str | list[str]:
    return names[0] if len(names) == 1 else names


def _whole(tok: Token, msg: str) -> int:
    if not tok.isdigit():
        raise _Fail(msg, tok)
    return int(tok)


class _Build(Transformer):
    """Parse tree -> expression trees and prediction fields (the structures the evaluator reads)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def _src(self, meta: Any) -> str:
        return self.text[meta.start_pos : meta.end_pos].strip()

    def start_threshold(self, c):  # the other starts are inlined (`?start_...`)
        return c[0], c[1]

    # tests
    def or_(self, c):
        return c[0] if len(c) == 1 else E.Or(tuple(c))

    def and_(self, c):
        return c[0] if len(c) == 1 else E.And(tuple(c))

    def not_(self, c):
        node = c[-1]
        for _ in c[:-1]:
            node = E.Not(node)
        return node

    def fate_is(self, c):
        return E.FateIs(str(c[0]), len(c) > 1)

    def fate_cmp(self, c):
        node = E.FateIs(str(c[1]), False)
        return node if c[0] == "==" else E.Not(node)

    def letter_is(self, c):
        letter = str(c[1]).strip("'\"")
        if letter not in E.LETTERS:
            raise _Fail("expected a verdict letter (R D P N U, lower case = agree gate failed)", c[1])
        return E.LetterIs(str(c[0]), letter)

    def within(self, c):
        return E.Within(_whole(c[0], "expected a whole number of checkpoints"))

    def atom(self, c):
        return E.Atom(str(c[0]))

    def compare(self, c):
        return E.Cmp(c[1], c[0], c[2])

    def cmp(self, c):
        return str(c[0])

    # arithmetic
    def arith(self, c):
        node = c[0]
        for op, right in zip(c[1::2], c[2::2], strict=True):
            node = E.Arith(str(op), node, right)
        return node

    term_ = arith

    def unary(self, c):
        node = c[-1]
        for _ in c[:-1]:
            node = E.Neg(node)
        return node

    def num(self, c):
        return E.Num(float(c[0]))

    def abs_(self, c):
        return E.Abs(c[0])

    def var(self, c):
        if c[0] in E.KEYWORDS or c[0] in E.ATOMS or c[0] in FATES:
            raise _Fail("expected a number or a measure", c[0])
        return E.Var(str(c[0]))

    def signed(self, c):
        return -float(c[1]) if len(c) == 2 else float(c[0])

    # quorums
    def quorum(self, c):
        first = c[0]
        if first.type == "ALL":
            return E.Quorum(">=", 1, 1)
        if first.type == "ANY":
            return E.Quorum(">=", 1, None)
        if first.type == "NONE":
            return E.Quorum("<=", 0, None)
        op = ">="
        if first.type == "CMP":
            op, c = str(first), c[1:]
            if op == "!=":
                raise _Fail("a quorum cannot be '!='", first)
        seed_count = "expected a seed count such as 2, a fraction such as 2/3, 'all', 'any' or 'no'"
        num, den = _whole(c[0], seed_count), None
        if len(c) > 1:
            den = _whole(c[1], "expected a positive whole denominator")
            if den == 0:
                raise _Fail("expected a positive whole denominator", c[1])
            if num > den:
                raise _Fail(f"fraction {num}/{den} is above 1", c[1])
        return E.Quorum(op, num, den)

    # terms
    def mean_term(self, c):
        return E.Term(None, c[1], c[2] if len(c) > 2 else None)

    def attr_term(self, c):
        if c[0] in E.KEYWORDS:
            raise _Fail("expected a number's name (e.g. rate, dose) or 'mean MEASURE of FAMILY'", c[0])
        return E.Term(str(c[0]))

    # the shorthand
    def name(self, c):
        t = c[0]
        return str(t)[1:-1] if t.type == "STRING" else str(t)

    cell = name

    def names(self, c):
        return list(c)

    def cells(self, c):
        combine = str(c[-1]) if _is(c[-1], "COMBINE") else "each"
        return [x for x in c[1:] if not _is(x, "COMBINE")], combine

    @v_args(meta=True)
    def src_test(self, meta, c):
        return self._src(meta)

    src_arith = src_term = src_test

    def seeds(self, c):
        families, _, test, q, _, (cells, combine) = c
        return {"kind": "seeds", "family": _one(families), "test": test, "quorum": q.text, "cells": _one(cells),
                "combine": combine}

    def by_seed(self, c):
        measure, families, (a, combine), op, b, q, _ = c
        return {"kind": "compare", "by": "seed", "family": _one(families), "measure": measure, "a": _one(a),
                "b": b, "test": f"a {op} b", "quorum": q.text, "combine": combine}

    def mean_cmp(self, c):
        _, measure, families, (cells, combine), op, rhs = c
        if isinstance(rhs, str):
            return {"kind": "compare", "by": "mean", "family": _one(families), "measure": measure,
                    "a": _one(cells), "b": rhs, "test": f"a {op} b", "combine": combine}
        return {"kind": "mean", "family": _one(families), "measure": measure, "cells": _one(cells),
                "test": f"{op} {rhs!r}", "combine": combine}

    def trend(self, c):
        _, measure, families, *rest = c
        order_by = rest.pop() if _is(rest[-2], "BY") else None
        out: dict[str, Any] = {"kind": "trend", "family": _one(families), "measure": measure,
                               "cells": [x for x in rest if isinstance(x, str) and not isinstance(x, Token)],
                               "direction": "increasing" if any(_is(x, "DIRECTION") and x == "increases" for x in rest)
                               else "decreasing", "strict": any(_is(x, "STRICTLY") for x in rest)}
        if order_by is not None:
            out["order_by"] = order_by
        return out

    def spearman(self, c):
        x, y, *rest = c
        out: dict[str, Any] = {"kind": "spearman", "x": x, "y": y}
        if isinstance(rest[0], Token):  # FAMILIES
            out["over"] = "families"
            out["families"] = rest[1]
            rest = rest[2:]
        (cells, combine), op, value = rest
        out.update(cells=_one(cells), combine=combine, test=f"{op} {value!r}")
        return out


def _is(x: Any, kind: str) -> bool:
    return isinstance(x, Token) and x.type == kind


# --------------------------------------------------------------------------- entry point
def _nesting(text: str) -> int:
    depth = deepest = 0
    quote = ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    return deepest


_CMP_TEXT = "a comparison (>=, <=, >, <, ==, !=)"
_NAMED = {
    "NUMBER": "a number", "NAME": "a name", "STRING": "a quoted name", "CELL": "a cell name", "ATOM": "a test",
    "FATE": "a fate (" + ", ".join(FATES) + ")", "CELLWORD": "'cell' or 'cells'", "IS": "'is' or 'has'",
    "SEEDS": "'seeds'", "ALL": "'all'", "ANY": "'any'", "NONE": "'no'", "COMBINE": "'pooled', 'each' or 'any'",
    "DIRECTION": "'increases' or 'decreases'", "EQ": "'==' or '!='", "ADDOP": "'+' or '-'", "MULOP": "'*' or '/'",
    "NEG": "'-'", "MEAN": "'mean'",
}


def _expected(expected: set[str], start: str) -> str:
    if "NUMBER" in expected and "NAME" in expected:
        return "a number or a measure"
    if "CMP" in expected and not {"ALL", "NUMBER"} & expected:
        return _CMP_TEXT
    if {"ALL", "NUMBER"} <= expected:
        return "a seed count such as 2, a fraction such as 2/3, 'all', 'any' or 'no'"
    if expected <= {"FATE"}:
        return _NAMED["FATE"]
    if expected and expected <= {"NAME", "STRING"} and start == "term":
        return "a family name"
    terminals = {t.name: t for t in _parser().terminals}
    out = []
    for name in sorted(expected, key=lambda n: (n in ("AND", "OR", "ADDOP", "MULOP", "NEG"), n)):
        if name in _NAMED:
            out.append(_NAMED[name])
        elif name == "CMP":
            out.append(_CMP_TEXT)
        elif name in terminals and terminals[name].pattern.type == "str":
            out.append(repr(terminals[name].pattern.value))
        elif name != "$END":
            out.append(name.lower())
    return " or ".join(dict.fromkeys(out)) or "the end"


def parse(text: str, start: str, what: str) -> Any:
    """Parse `text` from one of the grammar's starts (test, arith, quorum, threshold, term, shorthand)."""
    text = text.translate(_UNICODE)

    def fail(msg: str, pos: int | None, tok: str | None = None) -> UngrokError:
        where = "the end" if pos is None else f"{tok or text[pos:].split()[0]!r} (column {pos + 1})"
        return UngrokError(f"{what}: {msg} at {where} in {text!r}")

    if _nesting(text) > MAX_NESTING:
        raise UngrokError(f"{what}: more than {MAX_NESTING} nested parentheses; write a flatter expression")
    try:
        tree = _parser().parse(text, start=f"start_{start}")
        return _Build(text).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, _Fail):
            tok = e.orig_exc.tok
            raise fail(e.orig_exc.msg, tok.start_pos, str(tok)) from None
        raise
    except UnexpectedCharacters as e:
        raise UngrokError(
            f"{what}: unexpected character {text[e.pos_in_stream]!r} (column {e.pos_in_stream + 1}) in {text!r}"
        ) from None
    except UnexpectedToken as e:
        tok = e.token
        pos = None if tok.type == "$END" else tok.start_pos
        fail_at = lambda msg: fail(msg, pos, None if pos is None else str(tok))  # noqa: E731
        # what this parse stack accepts (the lexer's list omits the end, LALR's merged states add too much)
        expected = (
            set(e.interactive_parser.accepts()) if e.interactive_parser is not None else set(e.expected)
        )
        if tok.type == "CMP" and "CMP" not in expected and start in ("test", "shorthand"):
            raise fail_at("chained comparisons are not supported; join them with 'and'") from None
        if tok.type != "$END" and "$END" in expected:
            raise fail_at("unexpected text") from None
        if expected <= {"DIRECTION"}:
            before = text.rfind("strictly", 0, pos)
            raise fail(
                "'strictly' belongs to 'increases' or 'decreases'", before if before >= 0 else pos
            ) from None
        raise fail_at("expected " + _expected(expected, start)) from None
    except UnexpectedInput as e:  # pragma: no cover - lark's other input errors
        raise UngrokError(f"{what}: cannot parse {text!r} ({type(e).__name__})") from None


# --------------------------------------------------------------------------- entry points
def parse_test(text: str, what: str) -> object:
    return parse(str(text), "test", what)


def parse_arith(text: str, what: str) -> object:
    return parse(str(text), "arith", what)


def parse_threshold(text: str, what: str) -> tuple[str, float]:
    """`<= -0.8`: a comparison against a constant (Spearman rho, a cell mean)."""
    return parse(str(text), "threshold", what)  # type: ignore[no-any-return]


def parse_quorum(text: str | int, what: str) -> E.Quorum:
    return parse(str(text), "quorum", what)  # type: ignore[no-any-return]


def parse_term(text: str, what: str) -> E.Term:
    return parse(str(text), "term", what)  # type: ignore[no-any-return]
