"""Facts derived from a run's data: smoothed views, ladders, per-cell tallies, and the summary text.

Everything the report says in words is computed here from the records, so the text can
be checked against the data: each sentence states counts and values, never a reading
the data do not carry.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ungrok.fate._series import le
from ungrok.fate.classify import LETTERS, smooth
from ungrok.fate.config import ClassifierConfig
from ungrok.report.data import Curve, MarginCurve, ReportData, RunKey


def families(data: ReportData) -> list[str]:
    """Every rule with a verdict or a trajectory: the anchor first, then confirmatory, then exploratory."""
    names = {r["family"] for r in data.records or []} | {k[2] for k in data.conflict}
    cfg = data.classifier
    return sorted(names, key=lambda f: (f != cfg.anchor_family, not cfg.is_confirmatory(f), f))


def record_index(data: ReportData) -> dict[RunKey, dict[str, Any]]:
    return {(r["cell"], r["seed"], r["family"]): r for r in data.records or []}


def classifier_view(curve: Curve, cfg: ClassifierConfig) -> tuple[list[int], list[float]]:
    """The series the classifier judges: steps >= min_step, then the centred k-smoothing."""
    kept = [(s, v) for s, v in zip(curve.steps, curve.values, strict=True) if s >= cfg.min_step]
    return [s for s, _ in kept], smooth([v for _, v in kept], cfg.smooth_k)


def cm_view(curve: MarginCurve, cfg: ClassifierConfig) -> tuple[list[int], list[float]]:
    """CM as the margin instrument smooths it: every checkpoint, step 0 included."""
    return list(curve.steps), smooth(curve.cm, cfg.smooth_k)


def mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def fmt(x: float | None, nd: int = 2, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.{nd}f}" if signed else f"{x:.{nd}f}"


def fmt_num(x: float) -> str:
    """A dose or rate as written in the experiment (0.437, 1, 0.01)."""
    return f"{x:g}"


def cell_label(data: ReportData, cell: str) -> str:
    """What a cell is, in words: its kind, and for a ladder cell its rate or dose and parent."""
    c = data.cells[cell]
    if c.kind == "kill" and c.rate is not None:
        return f"kill {fmt_num(c.rate)} of {c.parent}"
    if c.kind == "rescue" and c.dose is not None:
        return f"rescue {fmt_num(c.dose)} on {c.parent}"
    return c.kind


def record_letter(r: dict[str, Any]) -> str:
    """The record's Table-4 letter (lower-case when the agree gate failed), derived if absent."""
    if r.get("letter"):
        return str(r["letter"])
    ch = LETTERS[r["fate"]]
    return ch if r["agree_gate"] == "pass" else ch.lower()


def recovered_valid(r: dict[str, Any]) -> bool:
    return r["fate"] == "RECOVERED" and r["agree_gate"] == "pass"


# --------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class CellTally:
    """One rule in one cell over the experiment's seeds (the columns of the paper's Table 5)."""

    seeds: int  # seeds with a record
    recovered_valid: int
    died: int  # conflict_final <= displaced threshold
    gate_failed: int
    mean_conflict_final: float | None
    cm_seeds: int  # seeds with a CM record
    cm_valid: int  # instrument-valid seeds
    mean_cm_final: float | None


def seed_records(data: ReportData, cell: str, family: str) -> list[dict[str, Any]]:
    idx = record_index(data)
    return [idx[(cell, s, family)] for s in data.seeds if (cell, s, family) in idx]


def tally(data: ReportData, cell: str, family: str) -> CellTally:
    recs = seed_records(data, cell, family)
    cms = [r for r in recs if r.get("cm_final") is not None]
    cfg = data.classifier
    return CellTally(
        seeds=len(recs),
        recovered_valid=sum(recovered_valid(r) for r in recs),
        died=sum(le(r["conflict_final"], cfg.displaced_thr) for r in recs),
        gate_failed=sum(r["agree_gate"] == "fail" for r in recs),
        mean_conflict_final=mean([r["conflict_final"] for r in recs]) if recs else None,
        cm_seeds=len(cms),
        cm_valid=sum(bool(r.get("cm_instrument_valid")) for r in cms),
        mean_cm_final=mean([r["cm_final"] for r in cms]) if cms else None,
    )


def support_row(data: ReportData, cell: str, rule: str) -> dict[str, Any] | None:
    row = data.support.get(cell, {}).get("rules", {}).get(rule)
    return row if isinstance(row, dict) else None


# --------------------------------------------------------------------------- ladders
@dataclass(frozen=True)
class Ladder:
    """A parent cell and the cells edited from it, ordered by rate (kill) or dose (rescue)."""

    kind: str  # "kill" or "rescue"
    parent: str
    points: tuple[tuple[float, str], ...]  # (x, cell); the parent at x = 0
    rule: str | None  # the targeted rule when experiment.json names it

    @property
    def axis(self) -> str:
        return "kill rate" if self.kind == "kill" else "rescue dose"


def ladders(data: ReportData) -> list[Ladder]:
    """Group kill cells (by rate) and rescue cells (by dose) under their parent."""
    groups: dict[tuple[str, str], list[tuple[float, str]]] = {}
    rules: dict[tuple[str, str], str | None] = {}
    for cell in data.cells.values():
        if cell.kind not in ("kill", "rescue") or cell.parent not in data.cells:
            continue
        x = cell.rate if cell.kind == "kill" else cell.dose
        if x is None:
            continue
        key = (cell.kind, cell.parent)
        groups.setdefault(key, []).append((float(x), cell.name))
        rules[key] = rules.get(key) or cell.rule
    return [
        Ladder(kind, parent, tuple([(0.0, parent), *sorted(pts)]), rules[(kind, parent)])
        for (kind, parent), pts in groups.items()
    ]


def ladder_rules(data: ReportData, ladder: Ladder) -> tuple[list[str], str]:
    """The rule(s) a ladder is plotted for, and why: the named rule, else the anchor rule,
    else the rules with margins, else the first rule."""
    fams = families(data)
    if ladder.rule:
        return [ladder.rule], "the rule experiment.json names for this edit"
    if data.classifier.anchor_family in fams:
        return [data.classifier.anchor_family], "the anchor rule (experiment.json names no target rule)"
    with_cm = sorted({r["family"] for r in data.records or [] if r.get("cm_final") is not None})
    if with_cm:
        return with_cm, "the rules with margins (experiment.json names no target rule)"
    return fams[:1], "the first rule (experiment.json names no target rule)"


def ladder_series(data: ReportData, ladder: Ladder, rule: str) -> list[tuple[float, str, CellTally]]:
    return [(x, cell, tally(data, cell, rule)) for x, cell in ladder.points]


# --------------------------------------------------------------------------- scoreboard
def scoreboard_counts(sb: dict[str, Any]) -> dict[str, int]:
    """Counted from the outcomes themselves: predictions and falsifiers apart, as prereg does."""
    plain = [o for o in sb["outcomes"] if not o.get("falsifier")]
    fals = [o for o in sb["outcomes"] if o.get("falsifier")]
    return {
        "PASS": sum(o["status"] == "PASS" for o in plain),
        "FAIL": sum(o["status"] == "FAIL" for o in plain),
        "UNSCOREABLE": sum(o["status"] == "UNSCOREABLE" for o in plain),
        "falsifiers": len(fals),
        "triggered": sum(o["status"] == "PASS" for o in fals),
        "silent": sum(o["status"] == "FAIL" for o in fals),
        "falsifiers_unscoreable": sum(o["status"] == "UNSCOREABLE" for o in fals),
    }


# --------------------------------------------------------------------------- summary text
def seeds_text(seeds: Sequence[int]) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(s) for s in seeds)


def _cell_sentence(data: ReportData, cell: str, fams: list[str]) -> str:
    info = data.cells[cell]
    n = len(data.seeds)
    good, others = [], []
    for fam in fams:
        recs = seed_records(data, cell, fam)
        if len(recs) == n and all(recovered_valid(r) for r in recs):
            good.append(fam)
            continue
        if not recs:
            others.append(f"{fam} has no verdict")
            continue
        parts = [f"{fate} in {k}/{len(recs)}" for fate, k in Counter(r["fate"] for r in recs).items()]
        text = f"{fam} {', '.join(parts)}"
        failed = sum(r["agree_gate"] == "fail" for r in recs)
        if failed:
            text += f" (agree gate failed in {failed})"
        if len(recs) < n:
            text += f" (no verdict for {n - len(recs)} seed{'s' if n - len(recs) > 1 else ''})"
        others.append(text)
    head = f"In cell '{cell}' ({info.kind})"
    if not others:
        which = {1: "its one rule", 2: "both rules"}.get(len(good), f"all {len(good)} rules")
        return f"{head}, {which} ended RECOVERED with the agree gate passed in every seed."
    if not good:
        return f"{head}, no rule ended RECOVERED with the agree gate passed in every seed: " + "; ".join(others) + "."
    return (f"{head}, {len(good)} of {len(fams)} rules ended RECOVERED with the agree gate passed in every "
            f"seed; the others: " + "; ".join(others) + ".")


def transient_definition(cfg: ClassifierConfig) -> str:
    """What the records' `transient` flag means, in the classifier's own thresholds."""
    return (f"smoothed held-out conflict accuracy reached ≥ {cfg.emerged_thr:g}, then ended "
            f"≤ {cfg.displaced_thr:g}")


def _transient_sentence(data: ReportData) -> str:
    recs = data.records or []
    hits = [r for r in recs if r.get("transient")]
    sig = f"the emerge-then-collapse transient ({transient_definition(data.classifier)})"
    known = [r for r in recs if r.get("transient") is not None]
    if not hits:
        return f"No run showed {sig} in any of the {len(known)} (run, rule) pairs."
    groups: dict[tuple[str, str], list[int]] = {}
    for r in hits:
        groups.setdefault((r["family"], r["cell"]), []).append(r["seed"])
    where = "; ".join(f"{fam} in '{cell}' {seeds_text(sorted(seeds))}" for (fam, cell), seeds in groups.items())
    return f"{len(hits)} of {len(known)} (run, rule) pairs showed {sig}: {where}."


def _ladder_sentences(data: ReportData) -> list[str]:
    from ungrok.fate.stats import spearman

    out = []
    for lad in ladders(data):
        rules, _ = ladder_rules(data, lad)
        for rule in rules:
            series = ladder_series(data, lad, rule)
            if not any(t.seeds for _, _, t in series):
                continue
            xs = ", ".join(fmt_num(x) for x, _, _ in series)
            rec = ", ".join(f"{t.recovered_valid}/{t.seeds}" for _, _, t in series)
            acc = ", ".join(fmt(t.mean_conflict_final) for _, _, t in series)
            text = (f"{'Kill' if lad.kind == 'kill' else 'Rescue'} ladder on '{lad.parent}' for {rule} "
                    f"({lad.axis} {xs}): RECOVERED with the agree gate passed in {rec} seeds; mean final "
                    f"conflict accuracy {acc}")
            cms = [t.mean_cm_final for _, _, t in series]
            if all(c is not None for c in cms):
                text += "; mean CM_final " + ", ".join(fmt(c, signed=True) for c in cms) + " nats"
                if len(series) >= 3:
                    rho = spearman([x for x, _, _ in series], cms).rho  # type: ignore[arg-type]
                    text += f" (Spearman ρ({lad.axis}, mean CM_final) = {fmt(rho)} over {len(series)} points)"
            out.append(text + ".")
            if lad.kind == "rescue":
                out.extend(_rescue_sentences(series, lad, rule))
    return out


def _rescue_sentences(series: list[tuple[float, str, CellTally]], lad: Ladder, rule: str) -> list[str]:
    base = series[0][2]
    out = []
    for x, cell, t in series[1:]:
        if not t.seeds:
            continue
        against = f"against {base.recovered_valid} of {base.seeds} in the parent '{lad.parent}'"
        if t.recovered_valid == 0:
            out.append(f"Rescue at dose {fmt_num(x)} ('{cell}') did not restore {rule} in any seed "
                       f"(0 of {t.seeds} RECOVERED with the agree gate passed, {against}).")
        else:
            out.append(f"Rescue at dose {fmt_num(x)} ('{cell}') restored {rule} (RECOVERED with the agree gate "
                       f"passed) in {t.recovered_valid} of {t.seeds} seeds, {against}.")
    return out


def _sign_sentence(data: ReportData) -> str | None:
    both = [r for r in data.records or [] if r.get("cm_final") is not None]
    if not both:
        return None
    agree = sum((r["cm_final"] > 0) == (r["conflict_final"] > 0.5) for r in both)
    return (f"Final CM was positive exactly when final conflict accuracy was above 0.5 in {agree} of "
            f"{len(both)} (run, rule) pairs with margins.")


def _forecast_sentence(data: ReportData) -> str | None:
    idx = record_index(data)
    survive = lost = risk = survive_ok = lost_ok = 0
    for cell in data.cells:
        for rule, row in data.support.get(cell, {}).get("rules", {}).items():
            recs = [idx[(cell, s, rule)] for s in data.seeds if (cell, s, rule) in idx]
            if not recs or not isinstance(row, dict):
                continue
            fc = row.get("forecast")
            if fc == "likely survives":
                survive += 1
                survive_ok += len(recs) == len(data.seeds) and all(recovered_valid(r) for r in recs)
            elif fc == "likely lost":
                lost += 1
                lost_ok += not any(r["fate"] == "RECOVERED" for r in recs)
            elif fc == "at risk":
                risk += 1
    if not survive + lost + risk:
        return None
    return (f"Support forecasts from the counted rule:prior ratios: of {survive} (cell, rule) pairs forecast "
            f"'likely survives', {survive_ok} ended RECOVERED with the agree gate passed in every seed; of "
            f"{lost} forecast 'likely lost', {lost_ok} had no RECOVERED seed; {risk} {'was' if risk == 1 else 'were'} 'at risk'.")


def _scoreboard_sentence(data: ReportData) -> str:
    sb = data.scoreboard
    if sb is None:
        return "There is no scoreboard: no pre-registered prediction was scored in this run directory."
    c = scoreboard_counts(sb)
    text = (f"Pre-registered predictions: {c['PASS']} PASS, {c['FAIL']} FAIL, {c['UNSCOREABLE']} "
            f"UNSCOREABLE")
    if c["falsifiers"]:
        text += (f"; falsifiers: {c['triggered']} of {c['triggered'] + c['silent']} applicable triggered"
                 + (f" ({c['falsifiers_unscoreable']} unscoreable)" if c["falsifiers_unscoreable"] else ""))
    return text + "."


def summary_sentences(data: ReportData) -> list[str]:
    """The "what the runs show" paragraph, one fact per sentence."""
    if data.records is None:
        return ["No verdicts are available (fates.json is missing), so nothing is claimed about the runs.",
                _scoreboard_sentence(data)]
    fams = families(data)
    runs = sorted({(r["cell"], r["seed"]) for r in data.records})
    expected = len(data.cells) * len(data.seeds)
    out = [f"This report covers {len(runs)} training run{'s' if len(runs) != 1 else ''} "
           f"({len(data.cells)} cells × {len(data.seeds)} seeds: {', '.join(map(str, data.seeds))}) "
           f"and {len(fams)} rules."]
    if len(runs) < expected:
        have = set(runs)
        missing = [f"{c}/seed{s}" for c in data.cells for s in data.seeds if (c, s) not in have]
        out.append(f"{len(missing)} of {expected} runs have no verdicts: {', '.join(missing)}.")
    out += [_cell_sentence(data, cell, fams) for cell in data.cells if any(
        r["cell"] == cell for r in data.records)]
    out.append(_transient_sentence(data))
    out += _ladder_sentences(data)
    for extra in (_sign_sentence(data), _forecast_sentence(data)):
        if extra:
            out.append(extra)
    out.append(_scoreboard_sentence(data))
    if data.monitor:
        n = sum(len(w["warnings"]) for lines in data.monitor.values() for w in lines)
        runs_w = sum(1 for lines in data.monitor.values() if lines)
        out.append(f"The live monitor raised {n} warning{'s' if n != 1 else ''} in {runs_w} of "
                   f"{len(data.monitor)} monitored runs.")
    return out
