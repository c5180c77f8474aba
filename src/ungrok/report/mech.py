"""The mechanism analyses read and summarised for the report (docs/method.md §11 and §13; the
section is sections/mech.py): decomposition strips, head shares and cue decodability over training, the dominant head at the CM peak and the final
checkpoint (the paper's Table 10), patching (Table 11), direction removal, and the n-gram
baseline's verdicts beside the neural ones (Tables 6-9).

Everything here is descriptive: no verdict, gate or registered prediction reads it, and the
section says so. It reads, for each seed folder experiment.json lists:

    cells/<CELL>/seed<S>/traj.mech.parquet    run, step, rule, instrument, component, metric, value
    cells/<CELL>/seed<S>/traj.ngram.parquet   traj.parquet rows with run "<run>#ngram<N>"

and the run's own traj.margins.parquet for the raw CM that picks the peak checkpoint. A
run without either file gets no mechanism section at all; a missing or unreadable file
among others becomes a note.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ungrok.errors import UngrokError
from ungrok.fate.summary import summarize
from ungrok.mech.run import peak_step
from ungrok.report.data import TRAJ_COLUMNS, ReportData, finite, heldout_curves, one_run, read_parquet

MECH_COLUMNS = ("run", "step", "rule", "instrument", "component", "metric", "value")
INSTRUMENTS = ("decomp", "decode", "heads", "patch", "direction")
NGRAM_RUN = re.compile(r"#ngram(\d+)$")

SeriesKey = tuple[str, str, str, str]  # (rule, instrument, component, metric)


def natural_key(component: str) -> tuple:
    """Sort components by their numbers: attn:L2 < attn:L10, L1H0 < L1H1 < L2H0, block1 < block2."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", component))


@dataclass
class MechRun:
    """One training run's traj.mech.parquet: value per step for each (rule, instrument, component, metric)."""

    series: dict[SeriesKey, dict[int, float]] = field(default_factory=dict)

    def add(self, r: dict[str, Any]) -> None:
        """One store row into its series (a later row for the same step replaces it)."""
        key = (str(r["rule"]), str(r["instrument"]), str(r["component"]), str(r["metric"]))
        self.series.setdefault(key, {})[int(r["step"])] = float(r["value"])

    def rules(self) -> set[str]:
        return {k[0] for k in self.series}

    def by_component(self, rule: str, instrument: str, metric: str) -> dict[str, dict[int, float]]:
        """component -> {step: value}, components in natural order."""
        found = {k[2]: v for k, v in self.series.items() if k[0] == rule and k[1] == instrument and k[3] == metric}
        return {c: found[c] for c in sorted(found, key=natural_key)}

    def steps(self, rule: str, instrument: str | None = None) -> list[int]:
        """Steps with rows for the rule from the instrument (from any instrument when None)."""
        found = (v for k, v in self.series.items() if k[0] == rule and instrument in (None, k[1]))
        return sorted({s for v in found for s in v})


@dataclass(frozen=True)
class NgramFamily:
    """One family of one n-gram order in one run: its summarize() record, or why there is none,
    and the raw held-out accuracies at its last step."""

    record: dict[str, Any] | None
    why: str | None
    conflict_last: float | None
    agree_last: float | None


@dataclass
class MechData:
    runs: dict[tuple[str, int], MechRun] = field(default_factory=dict)  # (cell, seed)
    ngram: dict[tuple[str, int, int], dict[str, NgramFamily]] = field(default_factory=dict)  # (cell, seed, n)
    without_mech: list[str] = field(default_factory=list)  # seed folders with no traj.mech.parquet


# --------------------------------------------------------------------------- loading
def _load_mech_run(data: ReportData, path: Path, where: str) -> MechRun | None:
    rows = read_parquet(path, MECH_COLUMNS, data.notes, where, "its mechanism analyses are omitted")
    if rows is None:
        return None
    run = MechRun()
    unknown: set[str] = set()
    dropped = 0
    for r in one_run(rows, where, data.notes):
        if r["instrument"] not in INSTRUMENTS:
            unknown.add(str(r["instrument"]))
            continue
        if r["step"] is None or not r["rule"] or not r["component"] or not r["metric"]:
            dropped += 1
            continue
        if not finite(r["value"]):
            continue  # NaN is how the instruments write "undefined" (no attribution yet, no cue token)
        run.add(r)
    if unknown:
        data.notes.append(f"{where}: unknown instrument(s) {', '.join(sorted(unknown))} left out")
    if dropped:
        data.notes.append(f"{where}: {dropped} row(s) without a step or a name left out")
    return run


def _load_ngram(data: ReportData, path: Path, where: str) -> dict[int, dict[str, NgramFamily]]:
    rows = read_parquet(path, TRAJ_COLUMNS, data.notes, where, "its n-gram baseline is omitted")
    if rows is None:
        return {}
    by_order: dict[int, dict[str, list[dict[str, Any]]]] = {}
    odd = sorted({str(r["run"]) for r in rows if not NGRAM_RUN.search(str(r["run"]))})
    if odd:
        data.notes.append(f"{where}: run(s) not named '<run>#ngram<N>' (e.g. a non-default α) left out: {', '.join(odd)}")
    for n in sorted({int(m.group(1)) for r in rows if (m := NGRAM_RUN.search(str(r["run"])))}):
        mine = [r for r in rows if (m := NGRAM_RUN.search(str(r["run"]))) and int(m.group(1)) == n]
        for r in one_run(mine, f"{where} ({n}-gram)", data.notes):
            by_order.setdefault(n, {}).setdefault(r["family"], []).append(r)
    out: dict[int, dict[str, NgramFamily]] = {}
    for n, fams in by_order.items():
        for fam, fam_rows in sorted(fams.items()):
            curves = heldout_curves(fam_rows)
            last = {cond: c.values[-1] for (_, _, cond), c in curves.items()}
            try:
                recs = summarize(fam_rows, None, data.classifier)
                rec, why = (recs[0], None) if recs else (None, "no held-out rows")
            except UngrokError as e:
                rec, why = None, str(e)
            out.setdefault(n, {})[fam] = NgramFamily(rec, why, last.get("conflict"), last.get("agree"))
    return out


def load_mech(data: ReportData, run_dir: Path) -> MechData | None:
    """The mechanism store and n-gram baseline of every listed seed folder; None when no
    folder has either (the report then has no mechanism section)."""
    mech = MechData()
    found = False
    for cell in data.cells:
        for seed in data.seeds:
            sdir = run_dir / "cells" / cell / f"seed{seed}"
            where = f"cells/{cell}/seed{seed}"
            if (sdir / "traj.mech.parquet").is_file():
                found = True
                run = _load_mech_run(data, sdir / "traj.mech.parquet", f"{where}/traj.mech.parquet")
                if run is not None:
                    mech.runs[(cell, seed)] = run
            else:
                mech.without_mech.append(where)
            if (sdir / "traj.ngram.parquet").is_file():
                found = True
                for n, fams in _load_ngram(data, sdir / "traj.ngram.parquet", f"{where}/traj.ngram.parquet").items():
                    mech.ngram[(cell, seed, n)] = fams
    return mech if found else None


# --------------------------------------------------------------------------- facts
def mech_rules(data: ReportData) -> list[str]:
    """Rules with mechanism rows: the anchor first, then by name."""
    assert data.mech is not None
    names = set().union(*(run.rules() for run in data.mech.runs.values()))
    return sorted(names, key=lambda r: (r != data.classifier.anchor_family, r))


def raw_cm(data: ReportData, cell: str, seed: int, rule: str) -> tuple[dict[int, float], str]:
    """Raw CM per step from the run's margins, else the model's own logit gap from the
    decomposition (both say how far the rule leads its prior); and which one it is."""
    mc = data.margins.get((cell, seed, rule))
    if mc is not None:
        return dict(zip(mc.steps, mc.cm, strict=True)), "CM"
    run = data.mech.runs.get((cell, seed)) if data.mech else None
    if run is not None:
        gap = run.by_component(rule, "decomp", "nats").get("gap")
        if gap:
            return dict(gap), "gap"
    return {}, "CM"


PAIR_SOURCES = {
    "mech": "the pair `ungrok mech` patched",
    "direction": "the pair `ungrok mech` removed directions at",
    "CM": "argmax of the raw CM",
    "gap": "argmax of the model's own gap (no margins: approximate)",
}


def peak_and_final(data: ReportData, cell: str, seed: int, rule: str) -> tuple[int | None, int | None, str]:
    """The run's CM-peak and final checkpoints, and where the peak came from (a PAIR_SOURCES key).

    `ungrok mech` picks the pair itself (the argmax of the raw CM, the later step on a tie,
    docs/method.md §5.2) and measures patching and direction removal there, so the pair is read
    back from those rows when present: patch rows sit at their destination (final -> peak
    at the peak), direction rows at the peak and the final. Without them the peak is the
    argmax of the raw CM (traj.margins.parquet, else the decomposed gap) over the
    checkpoints the head report measured, from the classifier's min_step on, as `ungrok mech` picks it. The final is the last measured checkpoint."""
    assert data.mech is not None
    run = data.mech.runs[(cell, seed)]
    steps = run.steps(rule, "heads") or run.steps(rule, "decomp")
    final = max([*steps, *run.steps(rule, "patch"), *run.steps(rule, "direction")], default=None)
    into_peak = run.by_component(rule, "patch", "recovery_final_to_peak")
    patched = sorted({s for v in into_peak.values() for s in v})
    if patched:
        return patched[-1], final, "mech"
    directed = run.steps(rule, "direction")
    if directed:
        return directed[0], final, "direction"
    cm, source = raw_cm(data, cell, seed, rule)
    with_cm = {s: cm[s] for s in steps if s in cm and not math.isnan(cm[s])}
    peak = peak_step(with_cm, data.classifier.min_step)[0] if with_cm else None
    return peak, final, source


@dataclass(frozen=True)
class HeadAt:
    """The dominant head at one checkpoint: a cell of the paper's Table 10."""

    step: int
    cm: float | None
    head: str | None
    share: float | None
    attribution: float | None
    ablation_dcm: float | None
    ov_cos: float | None


def top_head(run: MechRun, rule: str, step: int, cm: float | None) -> HeadAt:
    """The head with the largest share of the attribution at `step` (first in natural order on a tie)."""
    shares = {h: v[step] for h, v in run.by_component(rule, "heads", "share").items() if step in v}
    if not shares:
        return HeadAt(step, cm, None, None, None, None, None)
    head = max(shares, key=lambda h: shares[h])

    def metric(name: str) -> float | None:
        return run.by_component(rule, "heads", name).get(head, {}).get(step)

    return HeadAt(step, cm, head, shares[head], metric("attribution"), metric("ablation_dcm"), metric("ov_cos"))


@dataclass(frozen=True)
class PatchBest:
    """The single patched component that recovered most at one destination checkpoint (Table 11)."""

    step: int
    component: str
    recovery: float
    all_recovery: float | None  # patching every component at once, when measured


def best_patch(run: MechRun, rule: str, metric: str) -> PatchBest | None:
    """At the latest destination step with rows for `metric`; "all" is reported apart, not ranked."""
    comps = run.by_component(rule, "patch", metric)
    steps = sorted({s for v in comps.values() for s in v})
    if not steps:
        return None
    step = steps[-1]
    vals = {c: v[step] for c, v in comps.items() if step in v and c != "all"}
    if not vals:
        return None
    best = max(vals, key=lambda c: vals[c])
    return PatchBest(step, best, vals[best], comps.get("all", {}).get(step))


@dataclass(frozen=True)
class DirectionAt:
    """At one checkpoint, the block whose cue direction, projected out, moved CM the most."""

    step: int
    block: str
    dcm: float
    other_abs_delta: float | None
    dbpb: float | None


def direction_effects(run: MechRun, rule: str) -> list[DirectionAt]:
    dcm = run.by_component(rule, "direction", "dcm")
    other = run.by_component(rule, "direction", "other_abs_delta")
    dbpb = run.by_component(rule, "direction", "dbpb")
    out = []
    for step in run.steps(rule, "direction"):
        at = {b: v[step] for b, v in dcm.items() if step in v}
        if not at:
            continue
        block = max(at, key=lambda b: abs(at[b]))
        out.append(DirectionAt(step, block, at[block], other.get(block, {}).get(step), dbpb.get(block, {}).get(step)))
    return out


def max_decomp_error(data: ReportData, rule: str) -> float | None:
    """The largest |gap - sum of parts| the decomposition reported for the rule, over all runs."""
    assert data.mech is not None
    errs = [abs(v) for run in data.mech.runs.values()
            for v in run.by_component(rule, "decomp", "nats").get("error", {}).values()]
    return max(errs) if errs else None
