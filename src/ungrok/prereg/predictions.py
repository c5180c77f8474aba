"""Registered predictions: the YAML forms (a pydantic union by `kind`), the one-line
`expr:` shorthand, and their validation against the experiment's families, cells and measures.

Validation returns the *resolved* form that is frozen: cell globs expanded to the
experiment's cells, quorums in canonical text, and every `auto` gate turned into the
true/false the scorer will apply. A frozen registry therefore states exactly what is
tested and which gates apply, independently of later versions of these defaults.

Kinds:
  seeds    a test per seed (`RECOVERED+valid`, `cm_final < 0`, `within(1)`) in QUORUM seeds
  mean     the seed mean of a measure in a cell against a constant
  compare  a measure in cell(s) A against reference cell B, paired by seed or as cell means
  spearman rho between two numbers over cells (or over families within a cell)
  trend    cell means increase / decrease along an ordered list of cells
  all/any  a conjunction / disjunction of the above (Kleene: a failed clause decides `all`)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ungrok.errors import UngrokError, first_error
from ungrok.fate.gates import G3_FAMILIES, KS_FAMILIES
from ungrok.prereg.evidence import BUILTIN_MEASURES, CM_MEASURES
from ungrok.prereg.expr import (
    KEYWORDS,
    Term,
    negated,
    reads,
    variables,
)
from ungrok.prereg.grammar import parse_arith, parse_quorum, parse_term, parse_test, parse_threshold
from ungrok.prereg.shorthand import parse_shorthand

# What a test reads that makes a gate apply by default (see `resolve_gates`). The letter is
# not among them: its case already says whether the agree gate passed.
VERDICT_READS = frozenset({"fate", "died", "emerged", "transient"})
CM_READS = frozenset(CM_MEASURES) | {"timing", "within"}


class Gates(BaseModel):
    """Validity gates. A violated gate makes the prediction UNSCOREABLE, never PASS or FAIL.

    agree: only seeds whose agree control passed are counted (default: on when the test
      reads a bare verdict — a fate, died, emerged, transient — unless it is about the gate
      failing: `not valid`, `artifact`). `RECOVERED+valid` does not switch it on: it is a
      property a seed has or lacks, and a failed agree control makes the seed lack it
      (docs/method.md §7), so such a seed counts as "no", never as "not scoreable".
    cm_guard: only CM-instrument-valid seeds are counted, and a cell needs
      `min_valid_seeds` of them (default: on when a per-seed test reads anything
      CM/PM/timing, unless it reads `not cm_valid`; off for cell means, mean comparisons,
      trends and Spearman terms, which the paper takes over all seeds — docs/method.md §9.2
      R3/K2, §16 item 6 — unless the registration sets it).
    intervention: control families (`ks`, `g3` or a list) that must each be
      RECOVERED+valid in >= 2/3 seeds of every cell the prediction reads; two or more
      failing (the only one, for a gate over one family: `fate.gates.allowed_failures`)
      make the cell INTERVENTION-INVALID.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    agree: bool | Literal["auto"] = "auto"
    cm_guard: bool | Literal["auto"] = "auto"
    min_valid_seeds: int = Field(2, ge=1)
    intervention: Literal["none", "ks", "g3"] | list[str] = "none"


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    falsifier: bool = False
    group: str | None = None
    note: str | None = None
    source: str | None = None  # the one-line expression this was parsed from


class _Leaf(_Common):
    gates: Gates = Gates()
    seeds: Literal["governed", "quarantined"] = "governed"


def _listify(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


class SeedsPrediction(_Leaf):
    kind: Literal["seeds"]
    family: list[str]
    cells: list[str]
    combine: Literal["each", "any", "pooled"] = "each"
    test: str
    quorum: str = ">= 2/3"

    _lists = field_validator("family", "cells", mode="before")(_listify)

    @field_validator("quorum", mode="before")
    @classmethod
    def _str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


class MeanPrediction(_Leaf):
    kind: Literal["mean"]
    family: list[str]
    cells: list[str]
    combine: Literal["each", "any"] = "each"
    measure: str
    test: str  # e.g. "< 0"

    _lists = field_validator("family", "cells", mode="before")(_listify)


class ComparePrediction(_Leaf):
    kind: Literal["compare"]
    family: list[str]
    measure: str
    a: list[str]
    b: str
    by: Literal["seed", "mean"] = "seed"
    test: str = "a > b"  # an expression over a and b, e.g. "abs(a - b) <= 0.05"
    quorum: str = ">= 2/3"
    combine: Literal["each", "any"] = "each"

    _lists = field_validator("family", "a", mode="before")(_listify)


class SpearmanPrediction(_Leaf):
    kind: Literal["spearman"]
    x: str
    y: str
    over: Literal["cells", "families"] = "cells"
    cells: list[str]
    families: list[str] = []
    combine: Literal["each", "any"] = "each"
    test: str  # e.g. "<= -0.8"

    _lists = field_validator("cells", "families", mode="before")(_listify)


class TrendPrediction(_Leaf):
    kind: Literal["trend"]
    family: str
    measure: str
    cells: list[str]
    direction: Literal["increasing", "decreasing"]
    strict: bool = True
    order_by: str | None = None  # a cell number; default: the order of `cells`

    _lists = field_validator("cells", mode="before")(_listify)


class AllOf(_Common):
    kind: Literal["all"]
    of: list[Prediction]


class AnyOf(_Common):
    kind: Literal["any"]
    of: list[Prediction]


Prediction = Annotated[
    Union[
        SeedsPrediction, MeanPrediction, ComparePrediction, SpearmanPrediction, TrendPrediction, AllOf, AnyOf
    ],
    Field(discriminator="kind"),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
LEAF_KINDS = (SeedsPrediction, MeanPrediction, ComparePrediction, SpearmanPrediction, TrendPrediction)


class PredictionList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Prediction]


@dataclass(frozen=True)
class Vocabulary:
    """What a prediction may name: the experiment's families, cells (in order), extra
    per-seed measures, and (when declared) the cell / family numbers evidence will carry."""

    families: frozenset[str]
    cells: tuple[str, ...]
    measures: frozenset[str] = frozenset()
    numbers: frozenset[str] | None = None  # None: not declared, any name is accepted

    @classmethod
    def of(cls, families: Iterable[str], cells: Iterable[str], measures: Iterable[str],
           numbers: Iterable[str] | None) -> Vocabulary:
        """From the lists an experiment or a registry holds (numbers None: none declared)."""
        return cls(frozenset(families), tuple(cells), frozenset(measures),
                   None if numbers is None else frozenset(numbers))

    @property
    def all_measures(self) -> frozenset[str]:
        return frozenset(BUILTIN_MEASURES) | self.measures


# --------------------------------------------------------------------------- validation
def compile_predictions(
    raw: Sequence[Any], vocab: Vocabulary, taken: Iterable[str] = (), what: str = "prediction"
) -> list[Prediction]:
    """Parse, check and resolve registered predictions; any problem is one UngrokError line.

    `taken` are names already registered (amendments may not reuse them).
    """
    if not isinstance(raw, list):
        raise UngrokError(f"{what}s must be a list")
    seen = set(taken)
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise UngrokError(f"{what} #{i + 1}: expected a mapping with a name and an expr or a kind")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise UngrokError(f"{what} #{i + 1}: needs a name")
        if name in seen:
            raise UngrokError(f"{what} {name}: the name is already registered")
        seen.add(name)
        label = f"prediction {name}"
        out.append(_resolve(_validate(_expand(item, label), label), vocab, label, top=True))
    return out


def _expand(item: Any, label: str) -> dict[str, Any]:
    if isinstance(item, str):
        item = {"expr": item}
    if not isinstance(item, Mapping):
        raise UngrokError(f"{label}: expected a mapping or a one-line expression")
    data = dict(item)
    if "expr" in data:
        expr = data.pop("expr")
        if not isinstance(expr, str):
            raise UngrokError(f"{label}: expr must be a one-line string")
        fields = parse_shorthand(expr, label)
        clash = sorted(set(fields) & set(data))
        if clash:
            raise UngrokError(f"{label}: give {', '.join(clash)} either in expr or as a field, not both")
        data.update(fields, source=" ".join(expr.split()))
    if data.get("kind") in ("all", "any"):
        parts = data.get("of")
        if not isinstance(parts, list) or len(parts) < 2:
            raise UngrokError(f"{label}: kind {data['kind']} needs 'of' with at least two parts")
        data["of"] = [_expand(p, f"{label}[{j + 1}]") for j, p in enumerate(parts)]
    return data


def _validate(data: dict[str, Any], label: str) -> Prediction:
    try:
        return PredictionList.model_validate({"items": [data]}).items[0]
    except ValidationError as e:
        first = e.errors()[0]
        kinds = {"seeds", "mean", "compare", "spearman", "trend", "all", "any"}
        loc = ".".join(str(x) for x in first["loc"][2:] if x not in kinds) or "kind"
        msg = first["msg"]
        if first["type"] == "union_tag_not_found":
            msg = "needs an expr or a kind (seeds, mean, compare, spearman, trend, all, any)"
        raise UngrokError(f"{label}: {loc}: {msg}") from None


def _resolve(pred: Any, vocab: Vocabulary, label: str, top: bool) -> Any:
    if not top and pred.falsifier:
        raise UngrokError(f"{label}: only a whole prediction can be a falsifier, not one of its parts")
    if isinstance(pred, (AllOf, AnyOf)):
        parts = [_resolve(p, vocab, f"{label}[{j + 1}]", False) for j, p in enumerate(pred.of)]
        return pred.model_copy(update={"of": parts})
    resolve = {
        SeedsPrediction: _resolve_seeds,
        MeanPrediction: _resolve_mean,
        ComparePrediction: _resolve_compare,
        SpearmanPrediction: _resolve_spearman,
        TrendPrediction: _resolve_trend,
    }[type(pred)]
    return resolve(pred, vocab, label)


def _families(names: Sequence[str], vocab: Vocabulary, label: str) -> list[str]:
    if not names:
        raise UngrokError(f"{label}: names no family")
    for f in names:
        if f not in vocab.families:
            raise UngrokError(f"{label}: unknown family {f!r} (not a rule and not in the batteries)")
    return list(dict.fromkeys(names))


def resolve_cells(patterns: Sequence[str], vocab: Vocabulary, label: str) -> list[str]:
    """Expand names and glob patterns against the experiment's cells, keeping its order."""
    if not patterns:
        raise UngrokError(f"{label}: names no cell")
    out: list[str] = []
    for pat in patterns:
        if any(ch in pat for ch in "*?["):
            hits = [c for c in vocab.cells if fnmatch.fnmatchcase(c, pat)]
            if not hits:
                raise UngrokError(f"{label}: cell pattern {pat!r} matches no cell of the experiment")
        elif pat in vocab.cells:
            hits = [pat]
        else:
            raise UngrokError(f"{label}: unknown cell {pat!r} (cells: {', '.join(vocab.cells)})")
        out.extend(h for h in hits if h not in out)
    return out


def _measure(text: str, vocab: Vocabulary, label: str) -> object:
    node = parse_arith(text, f"{label} measure")
    _known_measures(variables(node), vocab, label)
    return node


def _known_measures(names: Iterable[str], vocab: Vocabulary, label: str) -> None:
    for m in sorted(names):
        if m not in vocab.all_measures:
            raise UngrokError(
                f"{label}: unknown measure {m!r} (known: {', '.join(sorted(vocab.all_measures))}; "
                "declare extra ones under measures:)"
            )


def _number_name(name: str, vocab: Vocabulary, label: str) -> None:
    if name in vocab.all_measures or name in KEYWORDS:
        raise UngrokError(f"{label}: {name!r} is a per-seed measure; write 'mean {name} of FAMILY'")
    if vocab.numbers is not None and name not in vocab.numbers:
        raise UngrokError(
            f"{label}: unknown cell number {name!r} (declared: {', '.join(sorted(vocab.numbers)) or 'none'})"
        )


def resolve_gates(
    gates: Gates, read: set[str], negs: set[str], vocab: Vocabulary, label: str, means: bool = False
) -> Gates:
    """Turn `auto` into the gate that applies (see Gates) and name the intervention families.

    `means`: the prediction reads cell means (mean, compare by mean, trend, Spearman), for
    which the CM guard is off unless asked for (the paper averages every seed there)."""
    agree = gates.agree
    if agree == "auto":
        agree = bool(read & VERDICT_READS) and "artifact" not in read and "valid" not in negs
    cm = gates.cm_guard
    if cm == "auto":
        cm = not means and bool(read & CM_READS) and "cm_valid" not in negs
    inter = gates.intervention
    named = {"none": [], "ks": list(KS_FAMILIES), "g3": list(G3_FAMILIES)}
    fams = named[inter] if isinstance(inter, str) else list(inter)
    fams = _families(fams, vocab, f"{label} intervention gate") if fams else []
    return Gates(agree=agree, cm_guard=cm, min_valid_seeds=gates.min_valid_seeds, intervention=fams)


def _resolve_seeds(pred: SeedsPrediction, vocab: Vocabulary, label: str) -> SeedsPrediction:
    node = parse_test(pred.test, f"{label} test")
    _known_measures(variables(node), vocab, label)
    q = parse_quorum(pred.quorum, f"{label} quorum")
    read = reads(node)
    return pred.model_copy(
        update={
            "family": _families(pred.family, vocab, label),
            "cells": resolve_cells(pred.cells, vocab, label),
            "quorum": q.text,
            "gates": resolve_gates(pred.gates, read, negated(node), vocab, label),
        }
    )


def _resolve_mean(pred: MeanPrediction, vocab: Vocabulary, label: str) -> MeanPrediction:
    node = _measure(pred.measure, vocab, label)
    op, value = parse_threshold(pred.test, f"{label} test")
    return pred.model_copy(
        update={
            "family": _families(pred.family, vocab, label),
            "cells": resolve_cells(pred.cells, vocab, label),
            "test": f"{op} {value!r}",
            "gates": resolve_gates(pred.gates, variables(node), set(), vocab, label, means=True),
        }
    )


def _resolve_compare(pred: ComparePrediction, vocab: Vocabulary, label: str) -> ComparePrediction:
    node = _measure(pred.measure, vocab, label)
    test = parse_test(pred.test, f"{label} test")
    if reads(test) - {"a", "b"} or not variables(test):
        raise UngrokError(f"{label}: a compare test reads only a and b (e.g. 'a > b', 'abs(a - b) <= 0.05')")
    a = resolve_cells(pred.a, vocab, label)
    (b,) = resolve_cells([pred.b], vocab, label)
    if b in a:
        raise UngrokError(f"{label}: the reference cell {b} is also among the compared cells")
    q = parse_quorum(pred.quorum, f"{label} quorum")
    return pred.model_copy(
        update={
            "family": _families(pred.family, vocab, label),
            "a": a,
            "b": b,
            "quorum": q.text,
            "gates": resolve_gates(pred.gates, variables(node), set(), vocab, label, means=pred.by == "mean"),
        }
    )


def _resolve_term(text: str, pred: SpearmanPrediction, vocab: Vocabulary, label: str) -> Term:
    term = parse_term(text, f"{label} term")
    if term.attr is not None:
        _number_name(term.attr, vocab, label)
        return term
    _known_measures(variables(term.measure), vocab, label)
    if pred.over == "cells" and term.family is None:
        raise UngrokError(f"{label}: over cells, a mean needs its family: 'mean MEASURE of FAMILY'")
    if pred.over == "families" and term.family is not None:
        raise UngrokError(f"{label}: over families, the family is the point; write 'mean MEASURE'")
    if term.family is not None:
        _families([term.family], vocab, label)
    return term


def _resolve_spearman(pred: SpearmanPrediction, vocab: Vocabulary, label: str) -> SpearmanPrediction:
    terms = [_resolve_term(t, pred, vocab, label) for t in (pred.x, pred.y)]
    op, value = parse_threshold(pred.test, f"{label} test")
    if not -1.0 <= value <= 1.0:
        raise UngrokError(f"{label}: a Spearman rho threshold must lie in [-1, 1], not {value}")
    cells = resolve_cells(pred.cells, vocab, label)
    families = _families(pred.families, vocab, label) if pred.over == "families" else []
    points = len(cells) if pred.over == "cells" else len(families)
    if points < 3:
        raise UngrokError(f"{label}: Spearman over {pred.over} needs at least 3 {pred.over}, got {points}")
    if pred.over == "cells" and pred.combine != "each":
        raise UngrokError(f"{label}: over cells, the cells are the points; 'combine' does not apply")
    read = set().union(*(variables(t.measure) for t in terms if t.measure is not None))
    return pred.model_copy(
        update={
            "cells": cells,
            "families": families,
            "test": f"{op} {value!r}",
            "gates": resolve_gates(pred.gates, read, set(), vocab, label, means=True),
        }
    )


def _resolve_trend(pred: TrendPrediction, vocab: Vocabulary, label: str) -> TrendPrediction:
    node = _measure(pred.measure, vocab, label)
    if any(ch in c for c in pred.cells for ch in "*?[") and pred.order_by is None:
        raise UngrokError(f"{label}: a trend over a cell pattern needs order_by (the order is the claim)")
    cells = resolve_cells(pred.cells, vocab, label)
    if len(cells) < 2:
        raise UngrokError(f"{label}: a trend needs at least 2 cells")
    if pred.order_by is not None:
        _number_name(pred.order_by, vocab, label)
    return pred.model_copy(
        update={
            "family": _families([pred.family], vocab, label)[0],
            "cells": cells,
            "gates": resolve_gates(pred.gates, variables(node), set(), vocab, label, means=True),
        }
    )


# --------------------------------------------------------------------------- queries
def leaves(pred: Any) -> list[Any]:
    """The leaf predictions of a (possibly composite) prediction."""
    if isinstance(pred, (AllOf, AnyOf)):
        return [leaf for p in pred.of for leaf in leaves(p)]
    return [pred]


def governed_cells(pred: Any) -> list[str]:
    """Every cell whose runs a prediction reads (for the read-before-register check)."""
    cells = [c for leaf in leaves(pred)
             for c in (leaf.a + [leaf.b] if isinstance(leaf, ComparePrediction) else leaf.cells)]
    return list(dict.fromkeys(cells))


def seed_sets(pred: Any) -> set[str]:
    """'governed' and/or 'quarantined': the seed sets a prediction reads."""
    return {leaf.seeds for leaf in leaves(pred)}


def dump(preds: Sequence[Any]) -> list[dict[str, Any]]:
    """The frozen JSON form of resolved predictions."""
    return PredictionList(items=list(preds)).model_dump(mode="json")["items"]


def load(data: Sequence[Any], what: str = "registry") -> list[Any]:
    """Frozen predictions back into models (already resolved; no vocabulary needed)."""
    try:
        return list(PredictionList.model_validate({"items": list(data)}).items)
    except ValidationError as e:
        raise UngrokError(f"{what}: a stored prediction is malformed ({first_error(e, raw=True)[1]})") from None


def _reads_means(leaf: Any) -> bool:
    """Does this leaf score cell means (rather than a per-seed quorum)?"""
    if isinstance(leaf, (MeanPrediction, TrendPrediction)):
        return True
    if isinstance(leaf, ComparePrediction):
        return leaf.by == "mean"
    if isinstance(leaf, SpearmanPrediction):
        return any(parse_term(t, "term").measure is not None for t in (leaf.x, leaf.y))
    return False


def unscoreable_by_design(pred: Any, seed_counts: Mapping[str, int]) -> list[str]:
    """Why a resolved prediction (or one of its parts) can only ever be UNSCOREABLE, whatever
    the data: checked at freeze time so the registrant hears it before the runs, not at
    scoring. `seed_counts`: how many governed / quarantined seeds the experiment lists."""
    out: list[str] = []
    parts = leaves(pred)
    for i, leaf in enumerate(parts):
        who = pred.name if len(parts) == 1 else f"{pred.name} (part {i + 1})"
        n = seed_counts.get(leaf.seeds, 0)
        if n == 0:
            out.append(f"{who} reads the {leaf.seeds} seeds, and the experiment lists none")
            continue
        g = leaf.gates
        if _reads_means(leaf):
            by_family = isinstance(leaf, SpearmanPrediction) and leaf.over == "families"
            gated = g.cm_guard or (g.agree and not by_family)  # over families, agree drops whole families
            if gated and g.min_valid_seeds > n:
                which = "CM-instrument-valid" if g.cm_guard else "agree-valid"
                out.append(
                    f"{who}: a cell mean over {which} seeds needs {g.min_valid_seeds} of them, but there are "
                    f"only {n} {leaf.seeds} seed(s) (set gates: {{cm_guard: false}} to average every seed)"
                )
            continue
        if isinstance(leaf, (SeedsPrediction, ComparePrediction)):
            pooled = isinstance(leaf, SeedsPrediction) and leaf.combine == "pooled"
            units = n * (len(leaf.cells) if pooled else 1)
            q = parse_quorum(leaf.quorum, "quorum")
            if q.at_least and q.needed(units) is None:
                out.append(f"{who}: the quorum {leaf.quorum} can never be met with {units} seed(s)")
            elif g.cm_guard and g.min_valid_seeds > n:
                out.append(
                    f"{who}: the CM guard needs {g.min_valid_seeds} instrument-valid seeds per cell, "
                    f"but there are only {n} {leaf.seeds} seed(s)"
                )
    return out
