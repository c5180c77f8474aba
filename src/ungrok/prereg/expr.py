"""The expression language inside predictions: per-seed tests, measure arithmetic, quorums.

Parsing is declarative (`ungrok.prereg.grammar`, a lark LALR grammar; never `eval`): a
registered prediction is data, and text that is not in the grammar is a one-line error
naming where it stopped. Evaluation is three-valued (Kleene): a seed whose measure is None
(no zero crossing, no onset) is *unknown*, and unknown never silently becomes true or false.
Unicode ≥ ≤ ≠ − × are accepted for >= <= != - *.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from ungrok.fate._series import EPS

ATOMS = frozenset({"valid", "cm_valid", "died", "emerged", "transient", "artifact", "timing"})
KEYWORDS = frozenset(
    {
        "and", "or", "not", "in", "of", "is", "are", "has", "have", "over", "cell", "cells",
        "seed", "seeds", "run", "runs", "mean", "spearman", "pooled", "each", "any", "all",
        "every", "no", "none", "strictly", "increases", "decreases", "by", "abs", "within",
        "letter", "fate", "families",
    }
)
LETTERS = frozenset("RDPNUrdpnu")
_CMP = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul}


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
        return _CMP[self.op](lhs, rhs)

    @property
    def at_least(self) -> bool:
        return self.op in (">=", ">")

    def needed(self, n: int) -> int | None:
        """Seeds an "at least" quorum needs out of n (None: it can never be met)."""
        return next((k for k in range(n + 1) if self.satisfied(k, n)), None)


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
    """Threshold comparison with the classifier's float slack (fate._series.EPS): `>=` and `<=`
    forgive EPS, `>` and `<` demand more than EPS, `==` means within EPS."""
    if op in ("==", "!="):
        return (abs(a - b) <= EPS) == (op == "==")
    return _CMP[op](a, b + (EPS if op in ("<=", ">") else -EPS))


def eval_arith(node: object, env: Env) -> float | None:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Var):
        v = env.measure(node.name)
        return None if v is None else float(v)
    if isinstance(node, (Neg, Abs)):
        v = eval_arith(node.x, env)
        return None if v is None else (-v if isinstance(node, Neg) else abs(v))
    if isinstance(node, Arith):
        a, b = eval_arith(node.left, env), eval_arith(node.right, env)
        if a is None or b is None:
            return None
        if node.op in _ARITH:
            return _ARITH[node.op](a, b)
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
