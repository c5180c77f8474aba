"""A stored prediction (its YAML fields) rendered as the one-line `expr:` shorthand, for display.

The fields are what is stored; the shorthand is how a person reads them. For every prediction
`expressible` says yes to, the line parses back (`parse_shorthand`) to the same fields: seeds,
mean, spearman (over cells or over families), trend, and compare (by seed or by cell means)
whose test is `a OP b`. Text fields (a per-seed test, a measure, a Spearman term) are shown as
written, with line breaks folded. Quorums and thresholds are shown in canonical form.

Display only (the line does not parse back to the same fields):
- `all` / `any` composites: `all of: [PART]; [PART]` (the shorthand has no composite form);
- a compare whose test is another expression over a and b:
  `cm_final of F: abs(a - b) <= 0.05 with a = cell x, b = cell y, in >= 2/3 seeds`;
- a compare by cell means with a quorum other than the default, which it never uses and the
  line leaves out.
Fields the shorthand never carries (name, gates, seeds, falsifier, group, note) are not shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ungrok.fate.classify import FATES
from ungrok.prereg.expr import (
    ATOMS,
    KEYWORDS,
    And,
    Atom,
    FateIs,
    Not,
    Or,
)
from ungrok.prereg.grammar import parse_quorum, parse_test, parse_threshold

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_CELL = re.compile(r"[A-Za-z0-9_.*?\-]+")
_RESERVED = KEYWORDS | ATOMS | set(FATES) | {"strictly", "families", "valid", "not", "abs"}
_STATES = frozenset({"valid", "cm_valid", "transient", "artifact"})
_CMP_AB = re.compile(r"a (>=|<=|==|!=|>|<) b")


def _get(p: Any, field: str, default: Any = None) -> Any:
    return p.get(field, default) if isinstance(p, Mapping) else getattr(p, field, default)


def _list(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v or [])


def _line(text: Any) -> str:
    """A text field on one line (unchanged when it already is one)."""
    s = str(text)
    return " ".join(s.split()) if "\n" in s or "\r" in s else s


def _quoted(name: str, plain: re.Pattern[str]) -> str:
    if plain.fullmatch(name) and name.lower() not in _RESERVED:
        return name
    return f'"{name}"' if "'" in name else f"'{name}'"


def _names(names: Any) -> str:
    return ", ".join(_quoted(n, _NAME) for n in _list(names))


def _cells(cells: Any, combine: str = "each") -> str:
    cs = _list(cells)
    one = len(cs) == 1 and not any(ch in cs[0] for ch in "*?[")
    text = ("cell " if one else "cells ") + ", ".join(_quoted(c, _CELL) for c in cs)
    return text if combine == "each" else f"{text} {combine}"


def _threshold(test: str) -> str:
    op, value = parse_threshold(test, "threshold")
    num = repr(value)
    return f"{op} {num[:-2] if num.endswith('.0') else num}"  # `< 0` parses back to the stored `< 0.0`


def _quorum(q: Any) -> str:
    return parse_quorum(q, "quorum").text


def _verb(test: str, families: Any) -> str:
    """'is' when the test is made of states (RECOVERED+valid, DISPLACED or PARTIAL, not valid),
    'has' when it reads anything else (cm_final < 0, within(1), died)."""
    stack, state = [parse_test(test, "test")], True
    while stack and state:
        node = stack.pop()
        if isinstance(node, (And, Or)):
            stack.extend(node.items)
        elif isinstance(node, Not):
            stack.append(node.x)
        else:
            state = isinstance(node, FateIs) or (isinstance(node, Atom) and node.name in _STATES)
    plural = len(_list(families)) > 1
    return ("are" if plural else "is") if state else ("have" if plural else "has")


def expressible(p: Any) -> bool:
    """Does the shorthand carry every field of this prediction (so the rendered line parses back)?"""
    kind = _get(p, "kind")
    if kind == "compare":
        by_mean = _get(p, "by", "seed") == "mean"
        test = _get(p, "test", "a > b")
        return bool(_CMP_AB.fullmatch(test)) and not (
            by_mean and _quorum(_get(p, "quorum", ">= 2/3")) != ">= 2/3"
        )
    if kind == "spearman":
        return bool(_get(p, "families")) == (_get(p, "over", "cells") == "families")
    return kind in ("seeds", "mean", "trend")


def render_prediction(p: Any) -> str:
    """One line for a prediction (a model from `predictions`, or a mapping of its fields).

    The shorthand when `expressible(p)`; otherwise a readable line for display only."""
    kind = _get(p, "kind")
    if kind in ("all", "any"):
        return f"{kind} of: " + "; ".join(f"[{render_prediction(x)}]" for x in _get(p, "of"))
    return {"seeds": _seeds, "mean": _mean, "compare": _compare, "spearman": _spearman, "trend": _trend}[
        kind
    ](p)


def _seeds(p: Any) -> str:
    fam, test = _get(p, "family"), _line(_get(p, "test"))
    return (f"{_names(fam)} {_verb(test, fam)} {test} in {_quorum(_get(p, 'quorum', '>= 2/3'))} seeds "
            f"of {_cells(_get(p, 'cells'), _get(p, 'combine', 'each'))}")


def _mean(p: Any) -> str:
    return (f"mean {_line(_get(p, 'measure'))} of {_names(_get(p, 'family'))} in "
            f"{_cells(_get(p, 'cells'), _get(p, 'combine', 'each'))} {_threshold(_get(p, 'test'))}")


def _compare(p: Any) -> str:
    by_mean = _get(p, "by", "seed") == "mean"
    what = f"{'mean ' if by_mean else ''}{_line(_get(p, 'measure'))} of {_names(_get(p, 'family'))}"
    a, b, test = (
        _cells(_get(p, "a"), _get(p, "combine", "each")),
        _cells(_get(p, "b")),
        _get(p, "test", "a > b"),
    )
    seeds = "" if by_mean else f" in {_quorum(_get(p, 'quorum', '>= 2/3'))} seeds"
    cmp = _CMP_AB.fullmatch(test)
    if cmp:
        return f"{what} in {a} {cmp.group(1)} in {b}{seeds}"
    return f"{what}: {_line(test)} with a = {a}, b = {b}" + (f",{seeds}" if seeds else "")


def _spearman(p: Any) -> str:
    fams = _get(p, "families") if _get(p, "over", "cells") == "families" else None
    over = f"families {_names(fams)} in " if fams else ""
    return (f"spearman({_line(_get(p, 'x'))}, {_line(_get(p, 'y'))}) over {over}"
            f"{_cells(_get(p, 'cells'), _get(p, 'combine', 'each'))} {_threshold(_get(p, 'test'))}")


def _trend(p: Any) -> str:
    strict = "strictly " if _get(p, "strict", True) else ""
    direction = "increases" if _get(p, "direction") == "increasing" else "decreases"
    cells: Sequence[str] = _list(_get(p, "cells"))
    by = _get(p, "order_by")
    return (
        f"mean {_line(_get(p, 'measure'))} of {_names(_get(p, 'family'))} {strict}{direction} over cells "
        + ", ".join(_quoted(c, _CELL) for c in cells)
        + (f" by {_quoted(by, _NAME)}" if by else "")
    )
