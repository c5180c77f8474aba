"""The expression language inside predictions: per-seed tests, measure arithmetic, quorums.

A small tokenizer and recursive-descent parser (never `eval`): a registered prediction
is data, and text that is not in the grammar is a one-line error naming where it
stopped. Evaluation is three-valued (Kleene): a seed whose measure is None (no zero
crossing, no onset) is *unknown*, and unknown never silently becomes true or false.

Test grammar (per seed, over one verdict record):
    test     := or
    or       := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | "(" test ")" | atom | compare
    atom     := FATE ["+valid"] | "fate" ("=="|"!=") FATE | "letter" ("=="|"!=") LETTER
              | "within" "(" INT ")" | valid | cm_valid | died | emerged | transient | artifact | timing
    compare  := arith CMP arith                      CMP: >= <= > < == !=
    arith    := term (("+"|"-") term)* ; term := unary (("*"|"/") unary)*
    unary    := "-" unary | NUMBER | MEASURE | "abs" "(" arith ")" | "(" arith ")"
Unicode ≥ ≤ ≠ − × are accepted for >= <= != - *.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from ungrok.errors import UngrokError
from ungrok.fate._series import EPS
from ungrok.fate.classify import FATES

ATOMS = frozenset({"valid", "cm_valid", "died", "emerged", "transient", "artifact", "timing"})
CMP_OPS = (">=", "<=", "==", "!=", ">", "<")
KEYWORDS = frozenset(
    {
        "and", "or", "not", "in", "of", "is", "are", "has", "have", "over", "cell", "cells",
        "seed", "seeds", "run", "runs", "mean", "spearman", "pooled", "each", "any", "all",
        "every", "no", "none", "strictly", "increases", "decreases", "by", "abs", "within",
        "letter", "fate", "families",
    }
)  # fmt: skip
LETTERS = frozenset("RDPNUrdpnu")
_UNICODE = {"≥": ">=", "≤": "<=", "≠": "!=", "−": "-", "–": "-", "×": "*"}
_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<str>'[^']*'|\"[^\"]*\")"
    r"|(?P<op>>=|<=|==|!=|[<>+\-*/(),:?])"
)


# --------------------------------------------------------------------------- tokens
@dataclass(frozen=True)
class Token:
    kind: str  # num | name | str | op | end
    text: str
    pos: int
    glued: bool  # no whitespace before it (lets the shorthand read `kill_*` as one cell pattern)


def normalize(text: str) -> str:
    for u, a in _UNICODE.items():
        text = text.replace(u, a)
    return text


def tokenize(text: str, what: str) -> list[Token]:
    out: list[Token] = []
    pos, glued = 0, False
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise UngrokError(f"{what}: unexpected character {text[pos]!r} (column {pos + 1}) in {text!r}")
        kind = m.lastgroup or ""
        if kind == "ws":
            glued = False
        else:
            out.append(Token(kind, m.group(), pos, glued and bool(out)))
            glued = True
        pos = m.end()
    out.append(Token("end", "", len(text), False))
    return out


# --------------------------------------------------------------------------- AST
@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Neg:
    x: object


@dataclass(frozen=True)
class Arith:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Abs:
    x: object


@dataclass(frozen=True)
class Cmp:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class Atom:
    name: str


@dataclass(frozen=True)
class FateIs:
    fate: str
    valid: bool  # RECOVERED+valid: the class AND the agree control passed


@dataclass(frozen=True)
class LetterIs:
    op: str
    letter: str


@dataclass(frozen=True)
class Within:
    k: int


@dataclass(frozen=True)
class And:
    items: tuple


@dataclass(frozen=True)
class Or:
    items: tuple


@dataclass(frozen=True)
class Not:
    x: object


# --------------------------------------------------------------------------- parser
class Parser:
    """Cursor over the tokens of one expression; every error names the expression and the column."""

    def __init__(self, text: str, what: str) -> None:
        self.text = normalize(text)
        self.what = what
        self.toks = tokenize(self.text, what)
        self.i = 0

    # cursor helpers
    def peek(self, k: int = 0) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def at(self, *texts: str) -> bool:
        t = self.peek()
        return t.kind in ("op", "name") and t.text in texts

    def take(self) -> Token:
        t = self.peek()
        if t.kind != "end":
            self.i += 1
        return t

    def accept(self, *texts: str) -> Token | None:
        return self.take() if self.at(*texts) else None

    def expect(self, *texts: str) -> Token:
        if not self.at(*texts):
            raise self.error("expected " + " or ".join(repr(t) for t in texts))
        return self.take()

    def error(self, msg: str) -> UngrokError:
        t = self.peek()
        where = "the end" if t.kind == "end" else f"{t.text!r} (column {t.pos + 1})"
        return UngrokError(f"{self.what}: {msg} at {where} in {self.text!r}")

    def source(self, start: int) -> str:
        """The text of tokens [start, i), as the user wrote it."""
        end = self.toks[self.i].pos if self.i < len(self.toks) else len(self.text)
        return self.text[self.toks[start].pos : end].strip()

    def done(self) -> None:
        if self.peek().kind != "end":
            raise self.error("unexpected text")

    # tests
    def test(self) -> object:
        items = [self._and()]
        while self.accept("or"):
            items.append(self._and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _and(self) -> object:
        items = [self._not()]
        while self.accept("and"):
            items.append(self._not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _not(self) -> object:
        if self.accept("not"):
            return Not(self._not())
        t = self.peek()
        if t.kind == "op" and t.text == "(":
            start = self.i
            try:
                return self.compare()
            except UngrokError:
                self.i = start
            self.take()
            node = self.test()
            self.expect(")")
            return node
        if t.kind == "name":
            node = self._atom()
            if node is not None:
                return node
        return self.compare()

    def _atom(self) -> object | None:
        t = self.peek()
        if t.text in FATES:
            self.take()
            if self.accept("+"):
                self.expect("valid")
                return FateIs(t.text, True)
            return FateIs(t.text, False)
        if t.text == "fate":
            self.take()
            op = self.expect("==", "!=").text
            f = self.take()
            if f.text not in FATES:
                self.i -= 1
                raise self.error("expected a fate (" + ", ".join(FATES) + ")")
            node = FateIs(f.text, False)
            return node if op == "==" else Not(node)
        if t.text == "letter":
            self.take()
            op = self.expect("==", "!=").text
            v = self.take()
            letter = v.text.strip("'\"")
            if v.kind not in ("name", "str") or letter not in LETTERS:
                self.i -= 1
                raise self.error("expected a verdict letter (R D P N U, lower case = agree gate failed)")
            return LetterIs(op, letter)
        if t.text == "within":
            self.take()
            self.expect("(")
            k = self.take()
            if k.kind != "num" or not k.text.isdigit():
                self.i -= 1
                raise self.error("expected a whole number of checkpoints")
            self.expect(")")
            return Within(int(k.text))
        if t.text in ATOMS and not (
            self.peek(1).kind == "op" and self.peek(1).text in (*CMP_OPS, "+", "-", "*", "/")
        ):
            self.take()
            return Atom(t.text)
        return None

    def compare(self) -> Cmp:
        left = self.arith()
        if not self.at(*CMP_OPS):
            raise self.error("expected a comparison (>=, <=, >, <, ==, !=)")
        op = self.take().text
        right = self.arith()
        if self.at(*CMP_OPS):
            raise self.error("chained comparisons are not supported; join them with 'and'")
        return Cmp(op, left, right)

    # arithmetic
    def arith(self) -> object:
        node = self._term()
        while self.at("+", "-"):
            op = self.take().text
            node = Arith(op, node, self._term())
        return node

    def _term(self) -> object:
        node = self._unary()
        while self.at("*", "/"):
            op = self.take().text
            node = Arith(op, node, self._unary())
        return node

    def _unary(self) -> object:
        if self.accept("-"):
            return Neg(self._unary())
        t = self.peek()
        if t.kind == "num":
            self.take()
            return Num(float(t.text))
        if self.accept("abs"):
            self.expect("(")
            node = self.arith()
            self.expect(")")
            return Abs(node)
        if self.accept("("):
            node = self.arith()
            self.expect(")")
            return node
        if t.kind == "name" and t.text not in KEYWORDS and t.text not in ATOMS and t.text not in FATES:
            self.take()
            return Var(t.text)
        raise self.error("expected a number or a measure")

    def number(self) -> float:
        neg = bool(self.accept("-"))
        t = self.peek()
        if t.kind != "num":
            raise self.error("expected a number")
        self.take()
        return -float(t.text) if neg else float(t.text)


def parse_test(text: str, what: str) -> object:
    p = Parser(text, what)
    node = p.test()
    p.done()
    return node


def parse_arith(text: str, what: str) -> object:
    p = Parser(text, what)
    node = p.arith()
    p.done()
    return node


def parse_threshold(text: str, what: str) -> tuple[str, float]:
    """`<= -0.8`: a comparison against a constant (Spearman rho, a cell mean)."""
    p = Parser(text, what)
    if not p.at(*CMP_OPS):
        raise p.error("expected a comparison such as '<= -0.8'")
    op = p.take().text
    value = p.number()
    p.done()
    return op, value


# --------------------------------------------------------------------------- quorum
@dataclass(frozen=True)
class Quorum:
    """How many seeds must satisfy a test: a count (`>= 2`) or a fraction of the seeds (`>= 2/3`)."""

    op: str
    num: int
    den: int | None  # None: an absolute count

    @property
    def text(self) -> str:
        """Canonical text; it parses back to the same quorum."""
        if self.op == ">=" and self.den is not None and self.num == self.den:
            return "all"
        if self.op == ">=" and self.den is None and self.num == 1:
            return "any"
        if self.op == "<=" and self.num == 0:
            return "no"
        return f"{self.op} {self.num}" + ("" if self.den is None else f"/{self.den}")

    def satisfied(self, k: int, n: int) -> bool:
        """Exact arithmetic: 2/3 of 3 seeds is 2, never 1.9999."""
        lhs, rhs = (Fraction(k, n), Fraction(self.num, self.den)) if self.den is not None else (k, self.num)
        return {
            ">=": lhs >= rhs,
            ">": lhs > rhs,
            "<=": lhs <= rhs,
            "<": lhs < rhs,
            "==": lhs == rhs,
            "!=": lhs != rhs,
        }[self.op]

    @property
    def at_least(self) -> bool:
        return self.op in (">=", ">")


def read_quorum(p: Parser) -> Quorum:
    if p.accept("all", "every"):
        return Quorum(">=", 1, 1)
    if p.accept("any"):
        return Quorum(">=", 1, None)
    if p.accept("no", "none"):
        return Quorum("<=", 0, None)
    op = p.take().text if p.at(*CMP_OPS) else ">="
    if op == "!=":
        p.i -= 1
        raise p.error("a quorum cannot be '!='")
    t = p.peek()
    if t.kind != "num" or not t.text.isdigit():
        raise p.error("expected a seed count such as 2, a fraction such as 2/3, 'all', 'any' or 'no'")
    p.take()
    num, den = int(t.text), None
    if p.accept("/"):
        d = p.peek()
        if d.kind != "num" or not d.text.isdigit() or int(d.text) == 0:
            raise p.error("expected a positive whole denominator")
        p.take()
        den = int(d.text)
        if num > den:
            p.i -= 1
            raise p.error(f"fraction {num}/{den} is above 1")
    return Quorum(op, num, den)


def parse_quorum(text: str | int, what: str) -> Quorum:
    p = Parser(str(text), what)
    q = read_quorum(p)
    p.done()
    return q


# --------------------------------------------------------------------------- analysis
def walk(node: object) -> list[object]:
    """Every node of the tree, parents first."""
    out = [node]
    for child in _children(node):
        out.extend(walk(child))
    return out


def _children(node: object) -> tuple:
    if isinstance(node, (And, Or)):
        return node.items
    if isinstance(node, (Not, Neg, Abs)):
        return (node.x,)
    if isinstance(node, (Arith, Cmp)):
        return (node.left, node.right)
    return ()


def reads(node: object) -> set[str]:
    """What a test reads: measure names, atom names, and 'fate' / 'fate+valid' / 'letter' / 'within'.

    `X+valid` reads 'fate+valid', not 'fate': it states the agree control itself (a seed whose
    control failed lacks the property), so it must not switch the agree gate on (docs/method.md §7).
    """
    out: set[str] = set()
    for n in walk(node):
        if isinstance(n, (Var, Atom)):
            out.add(n.name)
        elif isinstance(n, FateIs):
            out.add("fate+valid" if n.valid else "fate")
        elif isinstance(n, LetterIs):
            out.add("letter")
        elif isinstance(n, Within):
            out.add("within")
    return out


def negated(node: object, under: bool = False) -> set[str]:
    """Atoms (valid, cm_valid, artifact, ...) read under an odd number of `not`s: a test about a
    gate *failing*, which that gate must not filter away."""
    if isinstance(node, Not):
        return negated(node.x, not under)
    if isinstance(node, (And, Or)):
        return set().union(*(negated(x, under) for x in node.items))
    return {node.name} if under and isinstance(node, Atom) else set()


def variables(node: object) -> set[str]:
    return {n.name for n in walk(node) if isinstance(n, Var)}


# --------------------------------------------------------------------------- evaluation
class MissingField(Exception):
    """The evidence lacks a field the test reads: the prediction is unscoreable (missing data)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Env(Protocol):
    """One record's view for evaluation; methods raise MissingField for absent data."""

    def measure(self, name: str) -> float | None: ...
    def atom(self, name: str) -> bool | None: ...
    def fate_is(self, fate: str, valid: bool) -> bool: ...
    def letter(self) -> str: ...
    def within(self, k: int) -> bool | None: ...


def compare(op: str, a: float, b: float) -> bool:
    """Threshold comparison with the classifier's float slack (fate._series.EPS)."""
    if op == ">=":
        return a >= b - EPS
    if op == "<=":
        return a <= b + EPS
    if op == ">":
        return a > b + EPS
    if op == "<":
        return a < b - EPS
    if op == "==":
        return abs(a - b) <= EPS
    return abs(a - b) > EPS


def eval_arith(node: object, env: Env) -> float | None:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Var):
        v = env.measure(node.name)
        return None if v is None else float(v)
    if isinstance(node, Neg):
        v = eval_arith(node.x, env)
        return None if v is None else -v
    if isinstance(node, Abs):
        v = eval_arith(node.x, env)
        return None if v is None else abs(v)
    if isinstance(node, Arith):
        a, b = eval_arith(node.left, env), eval_arith(node.right, env)
        if a is None or b is None:
            return None
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        return None if b == 0 else a / b
    raise TypeError(f"not an arithmetic node: {node!r}")


def eval_test(node: object, env: Env) -> bool | None:
    """True / False / None (unknown), with Kleene `and` / `or` / `not`."""
    if isinstance(node, And):
        vals = [eval_test(x, env) for x in node.items]
        return False if False in vals else (None if None in vals else True)
    if isinstance(node, Or):
        vals = [eval_test(x, env) for x in node.items]
        return True if True in vals else (None if None in vals else False)
    if isinstance(node, Not):
        v = eval_test(node.x, env)
        return None if v is None else not v
    if isinstance(node, Cmp):
        a, b = eval_arith(node.left, env), eval_arith(node.right, env)
        return None if a is None or b is None else compare(node.op, a, b)
    if isinstance(node, FateIs):
        return env.fate_is(node.fate, node.valid)
    if isinstance(node, LetterIs):
        return (env.letter() == node.letter) == (node.op == "==")
    if isinstance(node, Within):
        return env.within(node.k)
    if isinstance(node, Atom):
        return env.atom(node.name)
    raise TypeError(f"not a test node: {node!r}")


# --------------------------------------------------------------------------- terms
@dataclass(frozen=True)
class Term:
    """A Spearman axis: a number attached to each point (`rate`, `support_ratio`) or the
    seed mean of a measure expression (`mean cm_final of pronoun_gender_ref`)."""

    attr: str | None
    measure: object | None = None
    family: str | None = None


def parse_term(text: str, what: str) -> Term:
    p = Parser(text, what)
    if p.accept("mean"):
        node = p.arith()
        family = None
        if p.accept("of"):
            t = p.take()
            if t.kind not in ("name", "str"):
                p.i -= 1
                raise p.error("expected a family name")
            family = t.text.strip("'\"")
        p.done()
        return Term(None, node, family)
    t = p.take()
    if t.kind != "name" or t.text in KEYWORDS:
        p.i -= 1
        raise p.error("expected a number's name (e.g. rate, dose) or 'mean MEASURE of FAMILY'")
    p.done()
    return Term(t.text)
