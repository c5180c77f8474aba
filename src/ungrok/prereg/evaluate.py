"""Evaluate one resolved prediction against the evidence: PASS, FAIL or UNSCOREABLE.

Standing rule (docs/method.md §7): a violated validity gate or missing data yields
UNSCOREABLE, never PASS or FAIL. Seed quorums:
- "at least" quorums (>= 2/3, all, any): seeds that fail a gate, or whose test is
  undetermined (e.g. no zero crossing), are not counted; the claim is scoreable only if
  at least as many seeds are counted as the quorum needs (the paper's M4a/M4b rule);
- "at most" quorums (<= 1/3, no): the uncounted seeds could each go either way, so the
  claim is PASS or FAIL only when every way they could go gives the same answer.
Composites use Kleene logic: `all` fails as soon as one clause fails on valid data.
`RECOVERED+valid` is not a gate but a property: a seed whose agree control failed lacks it
and counts as "no" (docs/method.md §7); only the registered gates (agree for bare verdicts,
the CM guard, intervention validity) and missing data leave a seed uncounted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ungrok.errors import UngrokError
from ungrok.fate._series import ge
from ungrok.fate.classify import died, transient_signature
from ungrok.fate.config import ClassifierConfig
from ungrok.fate.gates import InterventionGate, artifact_seed, intervention_valid, meets_quorum
from ungrok.fate.margins import timing_test, within_checkpoints
from ungrok.fate.stats import spearman
from ungrok.prereg.evidence import Evidence, SeedRecord
from ungrok.prereg.expr import (
    MissingField,
    Quorum,
    Term,
    compare,
    eval_arith,
    eval_test,
)
from ungrok.prereg.grammar import parse_arith, parse_quorum, parse_term, parse_test, parse_threshold
from ungrok.prereg.predictions import (
    AllOf,
    AnyOf,
    ComparePrediction,
    Gates,
    MeanPrediction,
    SeedsPrediction,
    SpearmanPrediction,
    TrendPrediction,
)

Status = Literal["PASS", "FAIL", "UNSCOREABLE"]


@dataclass(frozen=True)
class Result:
    status: Status
    reason: str
    value: float | str | None = None


class Unscoreable(Exception):
    """Raised inside an evaluation to end it as UNSCOREABLE with this reason."""


# --------------------------------------------------------------------------- record view
class RecordEnv:
    """A verdict record seen by a test; thresholds come from the frozen classifier constants."""

    def __init__(self, rec: SeedRecord, cfg: ClassifierConfig) -> None:
        self.rec, self.cfg = rec, cfg

    def _need(self, name: str) -> Any:
        if not self.rec.has(name):
            raise MissingField(name)
        return self.rec.get(name)

    def measure(self, name: str) -> float | None:
        return self._need(name)

    def atom(self, name: str) -> bool | None:
        v, cfg = self.rec.verdict(), self.cfg
        if name == "valid":
            return self.rec.valid
        if name == "cm_valid":
            return self._need("cm_instrument_valid")
        if name == "died":
            return died(v, cfg)
        if name == "emerged":
            return ge(v.conflict_max, cfg.emerged_thr)
        if name == "transient":
            return transient_signature(v, cfg)
        if name == "artifact":
            return artifact_seed(v, cfg)
        if name == "timing":
            outcome = timing_test(
                self._need("cm_zero_crossing"), self.rec.onset, cfg.timing_lo, cfg.timing_hi
            )
            return None if outcome is None else outcome == "PASS"
        raise MissingField(name)

    def fate_is(self, fate: str, valid: bool) -> bool:
        return self.rec.fate == fate and (self.rec.valid or not valid)

    def letter(self) -> str:
        return self.rec.letter_or_derived()

    def within(self, k: int) -> bool | None:
        steps = self._need("steps")
        crossing = self._need("cm_zero_crossing")
        if steps is None:
            raise MissingField("steps")
        try:
            return within_checkpoints(crossing, self.rec.onset, steps, k)
        except UngrokError as e:
            raise Unscoreable(f"{self.rec.cell} seed {self.rec.seed} {self.rec.family}: {e}") from None


class PairEnv:
    """The `a` / `b` values of a compare test."""

    def __init__(self, a: float, b: float) -> None:
        self.values = {"a": a, "b": b}

    def measure(self, name: str) -> float | None:
        return self.values[name]

    def atom(self, name: str) -> bool | None:
        raise MissingField(name)

    def fate_is(self, fate: str, valid: bool) -> bool:
        raise MissingField("fate")

    def letter(self) -> str:
        raise MissingField("letter")

    def within(self, k: int) -> bool | None:
        raise MissingField("within")


# --------------------------------------------------------------------------- context
@dataclass
class Context:
    """Everything a prediction is evaluated against."""

    evidence: Evidence
    cfg: ClassifierConfig
    governed: list[int]
    quarantined: list[int]
    quarantine_locked: bool
    invalid_cells: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = self.evidence.index()
        self._gates: dict[tuple[str, tuple[str, ...], tuple[int, ...]], InterventionGate] = {}

    def seeds(self, pred: Any) -> list[int]:
        if pred.seeds == "quarantined":
            if self.quarantine_locked:
                raise Unscoreable(
                    "reads the quarantined seeds, which stay locked until `ungrok prereg unlock`"
                )
            seeds = self.quarantined
        else:
            seeds = self.governed
        if not seeds:
            raise Unscoreable(f"the registry lists no {pred.seeds} seeds")
        return seeds

    def record(self, cell: str, seed: int, family: str) -> SeedRecord:
        rec = self.index.get((cell, seed, family))
        if rec is None:
            raise Unscoreable(f"no evidence for {family} in cell {cell} seed {seed}")
        why = rec.problem()
        if why is not None:
            raise Unscoreable(why)
        return rec

    def check_cell(self, cell: str, gates: Gates, seeds: Sequence[int]) -> None:
        if cell in self.invalid_cells:
            raise Unscoreable(f"cell {cell} is INTERVENTION-INVALID ({self.invalid_cells[cell]})")
        if not gates.intervention:
            return
        fams = tuple(gates.intervention)  # type: ignore[arg-type]
        key = (cell, fams, tuple(seeds))
        if key not in self._gates:
            verdicts = {f: [self.record(cell, s, f).verdict() for s in seeds] for f in fams}
            self._gates[key] = intervention_valid(verdicts, fams)
        g = self._gates[key]
        if not g.valid:
            raise Unscoreable(
                f"cell {cell} is INTERVENTION-INVALID: {', '.join(g.failed)} not RECOVERED+valid in >= 2/3 seeds"
            )

    def number(self, cell: str, name: str, family: str | None = None) -> float:
        if family is None:
            v = self.evidence.cells.get(cell, {}).get(name)
            where = f"cell {cell}"
        else:
            v = self.evidence.families.get(cell, {}).get(family, {}).get(name)
            where = f"family {family} in cell {cell}"
        if v is None:
            raise Unscoreable(f"the evidence gives no {name!r} for {where}")
        if not math.isfinite(v):
            raise Unscoreable(f"the evidence gives {name} = {v} for {where}, not a finite number")
        return float(v)


def _gate_failure(rec: SeedRecord, gates: Gates) -> str | None:
    """Why this seed is not counted under the prediction's gates (None: it is counted)."""
    if gates.agree and not rec.valid:
        return "agree gate failed"
    if gates.cm_guard:
        if not rec.has("cm_instrument_valid"):
            raise Unscoreable(f"no CM margins for {rec.family} in cell {rec.cell} seed {rec.seed}")
        if not rec.cm_instrument_valid:
            return "CM instrument guard failed"
    return None


def _on(rec: SeedRecord, ctx: Context, fn: Any, node: object) -> Any:
    """`fn(node)` (eval_test or eval_arith) on one record; a field the record lacks makes the
    prediction UNSCOREABLE."""
    try:
        return fn(node, RecordEnv(rec, ctx.cfg))
    except MissingField as m:
        raise Unscoreable(
            f"the evidence for {rec.family} in cell {rec.cell} seed {rec.seed} lacks {m.name}"
        ) from None


def _fmt(x: float) -> str:
    return f"{x:+.3f}" if abs(x) < 1000 else f"{x:.4g}"


# --------------------------------------------------------------------------- quorum
def decide(q: Quorum, n: int, counted: int, true: int) -> tuple[Status, str]:
    """Score a seed quorum with `counted` seeds determined, `true` of them satisfying."""
    if q.at_least:
        needed = q.needed(n)
        if needed is None:
            return "UNSCOREABLE", f"the quorum {q.text} cannot be met with {n} seeds"
        if counted < needed:
            return "UNSCOREABLE", f"only {counted} of {n} seeds are scoreable; the quorum needs {needed}"
        return ("PASS" if q.satisfied(true, n) else "FAIL"), f"need {q.text}"
    unknown = n - counted
    outcomes = {q.satisfied(k, n) for k in range(true, true + unknown + 1)}
    if outcomes == {True}:
        return "PASS", f"need {q.text}"
    if outcomes == {False}:
        return "FAIL", f"need {q.text}"
    return "UNSCOREABLE", f"need {q.text}; the {unknown} seed(s) not scoreable could decide it"


Vote = bool | str | None  # a seed's test value; a string says which gate failed; None: undetermined


def _counted(v: Vote) -> bool:
    return v is not None and not isinstance(v, str)


def _tally(q: Quorum, votes: Sequence[tuple[str, Vote]], claim: str) -> Result:
    """Score a seed quorum from each seed's vote, naming the seeds that were not counted."""
    n = len(votes)
    counted = [bool(v) for _, v in votes if _counted(v)]
    true = sum(counted)
    status, note = decide(q, n, len(counted), true)
    reason = f"{true}/{n} seeds satisfy {claim}; {note}"
    skipped = [f"{label} {v or 'undetermined'}" for label, v in votes if not _counted(v)]
    if skipped:
        reason += f" ({'; '.join(skipped)})"
    return Result(status, reason, f"{true}/{n}")


def _combine(results: Sequence[Result], mode: str, labels: Sequence[str]) -> Result:
    """Kleene all/any over per-unit results; a single unit's result passes through unchanged."""
    if len(results) == 1:
        return results[0]
    pairs = list(zip(labels, results, strict=True))
    value = "; ".join(f"{lab}: {r.value}" for lab, r in pairs if r.value is not None) or None
    decisive: Status = "FAIL" if mode == "all" else "PASS"
    for target in (decisive, "UNSCOREABLE"):
        for lab, r in pairs:
            if r.status == target:
                return Result(target, f"{lab}: {r.reason}", value)  # type: ignore[arg-type]
    status: Status = "PASS" if mode == "all" else "FAIL"
    return Result(status, "; ".join(f"{lab}: {r.reason}" for lab, r in pairs), value)


def _guarded(fn: Any, *args: Any) -> Result:
    try:
        return fn(*args)
    except Unscoreable as e:
        return Result("UNSCOREABLE", str(e))


def _each(pred: Any, fn: Any, cells: Sequence[Any], name: Callable[[Any], str] = str) -> Result:
    """`fn(family, cell)` for every family and cell (or group of cells, labelled by `name`),
    combined as the prediction's `combine` says (pooled: all)."""
    units = [(f, c) for f in pred.family for c in cells]
    results = [_guarded(fn, f, c) for f, c in units]
    labels = [f"{f} @ {name(c)}" for f, c in units]
    return _combine(results, "any" if pred.combine == "any" else "all", labels)


# --------------------------------------------------------------------------- kinds
def evaluate(pred: Any, ctx: Context) -> Result:
    """PASS / FAIL / UNSCOREABLE with a one-line reason and the measured value."""
    if isinstance(pred, (AllOf, AnyOf)):
        results = [evaluate(p, ctx) for p in pred.of]
        labels = [p.name or f"part {i + 1}" for i, p in enumerate(pred.of)]
        return _combine(results, "all" if isinstance(pred, AllOf) else "any", labels)
    fn = {
        SeedsPrediction: _seeds,
        MeanPrediction: _mean,
        ComparePrediction: _compare,
        SpearmanPrediction: _spearman,
        TrendPrediction: _trend,
    }[type(pred)]
    return _guarded(fn, pred, ctx)


def _seeds(pred: SeedsPrediction, ctx: Context) -> Result:
    node = parse_test(pred.test, f"prediction {pred.name} test")
    q = parse_quorum(pred.quorum, f"prediction {pred.name} quorum")
    seeds = ctx.seeds(pred)

    def unit(family: str, cells: list[str]) -> Result:
        for c in cells:
            ctx.check_cell(c, pred.gates, seeds)
        votes: dict[tuple[str, int], Vote] = {}
        for c in cells:
            for s in seeds:
                rec = ctx.record(c, s, family)
                votes[c, s] = _gate_failure(rec, pred.gates) or _on(rec, ctx, eval_test, node)
        if pred.gates.cm_guard:
            for c in cells:
                valid = sum(_counted(v) for (cell, _), v in votes.items() if cell == c)
                if valid < pred.gates.min_valid_seeds:
                    raise Unscoreable(
                        f"cell {c}: {valid} CM-instrument-valid seed(s); a CM verdict needs "
                        f"{pred.gates.min_valid_seeds}"
                    )
        labels = [f"{c}/{s}" if len(cells) > 1 else f"seed {s}" for c, s in votes]
        return _tally(q, list(zip(labels, votes.values(), strict=True)), f"`{pred.test}`")

    groups = [pred.cells] if pred.combine == "pooled" else [[c] for c in pred.cells]
    return _each(pred, unit, groups, "+".join)


def _cell_mean(
    pred: Any, ctx: Context, node: object, family: str, cell: str, seeds: list[int], text: str
) -> float:
    """Seed mean of a measure in one cell. Gated: over the seeds that pass (at least
    min_valid_seeds of them); ungated: every seed must give a value."""
    ctx.check_cell(cell, pred.gates, seeds)
    gated = pred.gates.agree or pred.gates.cm_guard
    vals = []
    for s in seeds:
        rec = ctx.record(cell, s, family)
        if _gate_failure(rec, pred.gates) is not None:
            continue
        v = _on(rec, ctx, eval_arith, node)
        if v is None:
            if not gated:
                raise Unscoreable(f"{text} of {family} is undefined in cell {cell} seed {s}")
            continue
        vals.append(v)
    need = pred.gates.min_valid_seeds if gated else len(seeds)
    if len(vals) < need:
        which = "CM-instrument-valid" if pred.gates.cm_guard else "gate-passing"
        raise Unscoreable(f"cell {cell}: {len(vals)} {which} seed(s) for {family}; the mean needs {need}")
    return math.fsum(vals) / len(vals)


def _mean(pred: MeanPrediction, ctx: Context) -> Result:
    node = parse_arith(pred.measure, f"prediction {pred.name} measure")
    op, thr = parse_threshold(pred.test, f"prediction {pred.name} test")
    seeds = ctx.seeds(pred)

    def unit(fam: str, cell: str) -> Result:
        m = _cell_mean(pred, ctx, node, fam, cell, seeds, pred.measure)
        ok = compare(op, m, thr)
        return Result("PASS" if ok else "FAIL", f"mean {pred.measure} = {_fmt(m)}; need {op} {thr:g}", m)

    return _each(pred, unit, pred.cells)


def _compare(pred: ComparePrediction, ctx: Context) -> Result:
    node = parse_arith(pred.measure, f"prediction {pred.name} measure")
    test = parse_test(pred.test, f"prediction {pred.name} test")
    seeds = ctx.seeds(pred)

    def by_mean(fam: str, a: str) -> Result:
        ma = _cell_mean(pred, ctx, node, fam, a, seeds, pred.measure)
        mb = _cell_mean(pred, ctx, node, fam, pred.b, seeds, pred.measure)
        ok = eval_test(test, PairEnv(ma, mb))
        return Result("PASS" if ok else "FAIL", f"a = {_fmt(ma)} ({a}), b = {_fmt(mb)} ({pred.b}); `{pred.test}`",
                      ma - mb)

    def paired(ra: SeedRecord, rb: SeedRecord) -> bool | None:
        va, vb = (_on(r, ctx, eval_arith, node) for r in (ra, rb))
        return None if va is None or vb is None else eval_test(test, PairEnv(va, vb))

    def by_seed(fam: str, a: str) -> Result:
        q = parse_quorum(pred.quorum, f"prediction {pred.name} quorum")
        for c in (a, pred.b):
            ctx.check_cell(c, pred.gates, seeds)
        votes: list[tuple[str, Vote]] = []
        for s in seeds:
            ra, rb = ctx.record(a, s, fam), ctx.record(pred.b, s, fam)
            why = _gate_failure(ra, pred.gates) or _gate_failure(rb, pred.gates)
            votes.append((f"seed {s}", why or paired(ra, rb)))
        counted = sum(_counted(v) for _, v in votes)
        if pred.gates.cm_guard and counted < pred.gates.min_valid_seeds:
            raise Unscoreable(
                f"{counted} seed pair(s) pass the CM instrument guard; needs {pred.gates.min_valid_seeds}"
            )
        return _tally(q, votes, f"`{pred.test}` (a = {a}, b = {pred.b})")

    return _each(pred, by_seed if pred.by == "seed" else by_mean, pred.a)


def _point(
    pred: Any, ctx: Context, term: Term, text: str, cell: str, family: str | None, seeds: list[int]
) -> float:
    """One Spearman coordinate: a number the evidence gives, or a seed mean of a measure."""
    if term.attr is not None:
        return ctx.number(cell, term.attr, family)
    return _cell_mean(pred, ctx, term.measure, term.family or family, cell, seeds, text)  # type: ignore[arg-type]


def _spearman(pred: SpearmanPrediction, ctx: Context) -> Result:
    op, thr = parse_threshold(pred.test, f"prediction {pred.name} test")
    tx, ty = (parse_term(t, f"prediction {pred.name} term") for t in (pred.x, pred.y))
    seeds = ctx.seeds(pred)
    alternative = "less" if op in ("<", "<=") else ("greater" if op in (">", ">=") else None)

    def rho_of(xs: list[float], ys: list[float], labels: list[str], note: str = "") -> Result:
        r = spearman(xs, ys, alternative)  # type: ignore[arg-type]
        if math.isnan(r.rho):
            raise Unscoreable(f"rho is undefined: constant values over {', '.join(labels)}")
        status: Status = "PASS" if compare(op, r.rho, thr) else "FAIL"
        reason = f"rho = {r.rho:+.3f} over {r.n} points (one-sided p = {r.p:.3g}); need {op} {thr:g}{note}"
        return Result(status, reason, r.rho)

    for c in pred.cells:
        ctx.check_cell(c, pred.gates, seeds)
    if pred.over == "cells":
        xs = [_point(pred, ctx, tx, pred.x, c, None, seeds) for c in pred.cells]
        ys = [_point(pred, ctx, ty, pred.y, c, None, seeds) for c in pred.cells]
        return rho_of(xs, ys, pred.cells)

    # Over families, the agree gate acts on whole families (the paper's F1 "over the
    # control-valid (>= 2/3) families"); their seed means then use every seed.
    per_family = pred.model_copy(update={"gates": pred.gates.model_copy(update={"agree": False})})

    def per_cell(cell: str) -> Result:
        dropped = [f for f in pred.families if pred.gates.agree
                   and not meets_quorum(sum(ctx.record(cell, s, f).valid for s in seeds), len(seeds))]
        fams = [f for f in pred.families if f not in dropped]
        if len(fams) < 3:
            raise Unscoreable(f"cell {cell}: {len(fams)} control-valid families; Spearman needs 3")
        xs = [_point(per_family, ctx, tx, pred.x, cell, f, seeds) for f in fams]
        ys = [_point(per_family, ctx, ty, pred.y, cell, f, seeds) for f in fams]
        return rho_of(xs, ys, fams, f" (dropped, control-invalid: {', '.join(dropped)})" if dropped else "")

    results = [_guarded(per_cell, c) for c in pred.cells]
    return _combine(results, pred.combine if pred.combine == "any" else "all", pred.cells)


def _trend(pred: TrendPrediction, ctx: Context) -> Result:
    node = parse_arith(pred.measure, f"prediction {pred.name} measure")
    seeds = ctx.seeds(pred)
    cells = list(pred.cells)
    if pred.order_by is not None:
        keys = {c: ctx.number(c, pred.order_by) for c in cells}
        if len(set(keys.values())) < len(keys):
            raise Unscoreable(f"two cells share a {pred.order_by}; the order is ambiguous")
        cells.sort(key=keys.__getitem__)
    means = [_cell_mean(pred, ctx, node, pred.family, c, seeds, pred.measure) for c in cells]
    op = (">" if pred.strict else ">=") if pred.direction == "decreasing" else ("<" if pred.strict else "<=")
    breaks = [
        f"{cells[i]} -> {cells[i + 1]}"
        for i in range(len(cells) - 1)
        if not compare(op, means[i], means[i + 1])
    ]
    chain = " -> ".join(f"{m:.3f}" for m in means)
    what = f"{'strictly ' if pred.strict else ''}{pred.direction} over {', '.join(cells)}"
    if breaks:
        return Result("FAIL", f"means {chain}: not {what} (broken at {', '.join(breaks)})", chain)
    return Result("PASS", f"means {chain}: {what}", chain)
