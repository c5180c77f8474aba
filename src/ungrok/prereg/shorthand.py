"""One-line prediction expressions (`expr:`), parsed into the same fields as the YAML forms.

    FAMILY[, FAMILY] is|has TEST in QUORUM seeds of cell(s) CELLS [pooled|each|any]
        pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell ts
        pronoun_gender_ref has cm_final < 0 in all seeds of cell web
        pronoun_gender_ref has within(1) in >= 2/3 seeds of cell web
    mean MEASURE of FAMILY in cell(s) CELLS CMP NUMBER
        mean cm_final of pronoun_gender_ref in cell web < 0
    MEASURE of FAMILY in cell A CMP in cell B in QUORUM seeds        (paired by seed)
    mean MEASURE of FAMILY in cell A CMP in cell B                   (cell means)
        conflict_final of pronoun_gender_ref in cell web_packed <= in cell web_dn1.5 in >= 2/3 seeds
    spearman(X, Y) over cells CELLS CMP NUMBER
    spearman(X, Y) over families F1, F2, F3 in cell(s) CELLS CMP NUMBER
        spearman(rate, mean cm_final of pronoun_gender_ref) over cells kill_* <= -0.8
    mean MEASURE of FAMILY decreases|increases [strictly] over cells C1, C2, ... [by ATTR]

Cell names may be glob patterns (`kill_*`); quote a name that is a keyword or has spaces.
"""

from __future__ import annotations

from typing import Any

from ungrok.prereg.expr import CMP_OPS, Parser, read_quorum

_GLUE_OPS = ("*", "?", "-")


def parse_shorthand(text: str, what: str = "prediction expression") -> dict[str, Any]:
    """The fields of one prediction (kind, family, cells, test, ...) from its one-line form."""
    p = Parser(text, what)
    if p.at("spearman"):
        out = _spearman(p)
    elif p.at("mean"):
        out = _mean(p)
    else:
        start = p.i
        _names(p)
        is_seed_claim = p.at("is", "are", "has", "have")
        p.i = start
        out = _seeds(p) if is_seed_claim else _compare_by_seed(p)
    p.done()
    return out


def _one(names: list[str]) -> str | list[str]:
    return names[0] if len(names) == 1 else names


def _name(p: Parser) -> str:
    t = p.peek()
    if t.kind == "str":
        p.take()
        return t.text[1:-1]
    if t.kind != "name":
        raise p.error("expected a name")
    p.take()
    return t.text


def _names(p: Parser) -> list[str]:
    out = [_name(p)]
    while p.accept(","):
        out.append(_name(p))
    return out


def _cell_name(p: Parser) -> str:
    """A cell name or glob; touching tokens are glued, so `kill_*` and `web-packed` read as one."""
    t = p.peek()
    if t.kind == "str":
        p.take()
        return t.text[1:-1]
    if not (t.kind in ("name", "num") or (t.kind == "op" and t.text in _GLUE_OPS)):
        raise p.error("expected a cell name")
    parts = [p.take().text]
    while True:
        n = p.peek()
        if n.glued and (n.kind in ("name", "num") or (n.kind == "op" and n.text in _GLUE_OPS)):
            parts.append(p.take().text)
        else:
            return "".join(parts)


def _cells(p: Parser) -> tuple[list[str], str]:
    p.expect("cell", "cells")
    names = [_cell_name(p)]
    while p.accept(","):
        names.append(_cell_name(p))
    combine = p.take().text if p.at("pooled", "each", "any") else "each"
    return names, combine


def _seeds_word(p: Parser) -> None:
    p.expect("seed", "seeds", "run", "runs")


def _seeds(p: Parser) -> dict[str, Any]:
    families = _names(p)
    p.expect("is", "are", "has", "have")
    start = p.i
    p.test()
    test = p.source(start)
    p.expect("in")
    q = read_quorum(p)
    _seeds_word(p)
    p.expect("of")
    cells, combine = _cells(p)
    return {"kind": "seeds", "family": _one(families), "test": test, "quorum": q.text, "cells": _one(cells),
            "combine": combine}  # fmt: skip


def _cmp(p: Parser) -> str:
    if not p.at(*CMP_OPS):
        raise p.error("expected a comparison (>=, <=, >, <, ==, !=)")
    return p.take().text


def _compare_by_seed(p: Parser) -> dict[str, Any]:
    start = p.i
    p.arith()
    measure = p.source(start)
    p.expect("of")
    families = _names(p)
    p.expect("in")
    a, combine = _cells(p)
    op = _cmp(p)
    p.expect("in")
    p.expect("cell")
    b = _cell_name(p)
    p.expect("in")
    q = read_quorum(p)
    _seeds_word(p)
    return {"kind": "compare", "by": "seed", "family": _one(families), "measure": measure, "a": _one(a),
            "b": b, "test": f"a {op} b", "quorum": q.text, "combine": combine}  # fmt: skip


def _mean(p: Parser) -> dict[str, Any]:
    p.expect("mean")
    start = p.i
    p.arith()
    measure = p.source(start)
    p.expect("of")
    families = _names(p)
    strict = bool(p.accept("strictly"))
    if p.at("increases", "decreases"):
        direction = "increasing" if p.take().text == "increases" else "decreasing"
        strict = bool(p.accept("strictly")) or strict
        p.expect("over")
        p.expect("cells")
        cells = [_cell_name(p)]
        while p.accept(","):
            cells.append(_cell_name(p))
        out: dict[str, Any] = {"kind": "trend", "family": _one(families), "measure": measure, "cells": cells,
                               "direction": direction, "strict": strict}  # fmt: skip
        if p.accept("by"):
            out["order_by"] = _name(p)
        return out
    if strict:
        p.i -= 1
        raise p.error("'strictly' belongs to 'increases' or 'decreases'")
    p.expect("in")
    cells, combine = _cells(p)
    op = _cmp(p)
    if p.accept("in"):
        p.expect("cell")
        b = _cell_name(p)
        return {"kind": "compare", "by": "mean", "family": _one(families), "measure": measure,
                "a": _one(cells), "b": b, "test": f"a {op} b", "combine": combine}  # fmt: skip
    value = p.number()
    return {"kind": "mean", "family": _one(families), "measure": measure, "cells": _one(cells),
            "test": f"{op} {value!r}", "combine": combine}  # fmt: skip


def _term(p: Parser) -> str:
    start = p.i
    if p.accept("mean"):
        p.arith()
        if p.accept("of"):
            _name(p)
    else:
        _name(p)
    return p.source(start)


def _spearman(p: Parser) -> dict[str, Any]:
    p.expect("spearman")
    p.expect("(")
    x = _term(p)
    p.expect(",")
    y = _term(p)
    p.expect(")")
    p.expect("over")
    out: dict[str, Any] = {"kind": "spearman", "x": x, "y": y}
    if p.accept("families"):
        out["over"] = "families"
        out["families"] = _names(p)
        p.expect("in")
    cells, combine = _cells(p)
    op = _cmp(p)
    value = p.number()
    out.update(cells=_one(cells), combine=combine, test=f"{op} {value!r}")
    return out
