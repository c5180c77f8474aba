"""The mechanism section of the report (docs/method.md §11 and §13): decomposition strips, head
shares and cue decodability over training, the dominant head at the CM peak and the final
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
from ungrok.report.data import ReportData, finite, heldout_curves, one_run, read_parquet
from ungrok.report.facts import fmt, record_index, record_letter
from ungrok.report.html import _img, _letters, _note, _table, esc, fate_badge

MECH_COLUMNS = ("run", "step", "rule", "instrument", "component", "metric", "value")
TRAJ_COLUMNS = ("run", "step", "family", "condition", "split", "accuracy")
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

    def rules(self) -> set[str]:
        return {k[0] for k in self.series}

    def by_component(self, rule: str, instrument: str, metric: str) -> dict[str, dict[int, float]]:
        """component -> {step: value}, components in natural order."""
        found = {k[2]: v for k, v in self.series.items() if k[0] == rule and k[1] == instrument and k[3] == metric}
        return {c: found[c] for c in sorted(found, key=natural_key)}

    def steps(self, rule: str, instrument: str) -> list[int]:
        return sorted({s for k, v in self.series.items() if k[0] == rule and k[1] == instrument for s in v})


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
    rows, err = read_parquet(path, MECH_COLUMNS)
    if err:
        data.notes.append(f"{where}: {err}; its mechanism analyses are omitted")
        return None
    assert rows is not None
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
        key = (str(r["rule"]), str(r["instrument"]), str(r["component"]), str(r["metric"]))
        run.series.setdefault(key, {})[int(r["step"])] = float(r["value"])
    if unknown:
        data.notes.append(f"{where}: unknown instrument(s) {', '.join(sorted(unknown))} left out")
    if dropped:
        data.notes.append(f"{where}: {dropped} row(s) without a step or a name left out")
    return run


def _load_ngram(data: ReportData, path: Path, where: str) -> dict[int, dict[str, NgramFamily]]:
    rows, err = read_parquet(path, TRAJ_COLUMNS)
    if err:
        data.notes.append(f"{where}: {err}; its n-gram baseline is omitted")
        return {}
    assert rows is not None
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
    names = set().union(*(run.rules() for run in data.mech.runs.values())) if data.mech.runs else set()
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
            for v in run.by_component(rule, "decomp", "nats").get("error", {}).values()]  # fmt: skip
    return max(errs) if errs else None


# --------------------------------------------------------------------------- html
DESCRIPTIVE = ("<p><strong>Descriptive only.</strong> These analyses look inside the trained models after "
               "the fact (docs/method.md §11). No verdict, agree gate or pre-registered prediction depends "
               "on them, and they are not scored; they describe how the rule's margin is carried, not "
               "whether the rule survived.</p>")  # fmt: skip


def _steps_label(step: int | None, peak: int | None, final: int) -> str:
    if step is None:
        return "–"
    tags = [t for t, s in (("peak", peak), ("final", final)) if s == step]
    return f"{'/'.join(tags)} {step}" if tags else str(step)


def _head_cells(h: HeadAt) -> list[str]:
    return [str(h.step), fmt(h.cm, signed=True), f"<code>{esc(h.head)}</code>" if h.head else "–", fmt(h.share),
            fmt(h.ablation_dcm, signed=True), fmt(h.ov_cos, signed=True)]  # fmt: skip


def _head_table(data: ReportData, rule: str) -> str:
    assert data.mech is not None
    rows = []
    for (cell, seed), run in data.mech.runs.items():
        if not run.steps(rule, "heads"):
            continue
        peak, final, source = peak_and_final(data, cell, seed, rule)
        cm, _ = raw_cm(data, cell, seed, rule)
        row = [esc(cell), str(seed)]
        for step in (peak, final):
            row += _head_cells(top_head(run, rule, step, cm.get(step))) if step is not None else ["–"] * 6
        rows.append([*row, esc(PAIR_SOURCES[source])])
    if not rows:
        return ""
    head = ["cell", "seed"] + [f"{w} {c}" for w in ("peak", "final")
                               for c in ("step", "CM", "top head", "share", "ΔCM ablated", "OV cos")] + ["peak is"]  # fmt: skip
    return ("<h4>Dominant head at the CM peak and the final checkpoint (Table 10 layout)</h4>"
            + _table(head, rows, num_cols=(1, 2, 3, 5, 6, 7, 8, 9, 11, 12, 13))
            + '<p class="meta">CM = the raw contrast margin at that checkpoint (the model\'s own pre-softcap logit '
              "gap when the run has no margins). Peak = the checkpoint `ungrok mech` took as the CM peak when it "
              "patched or removed directions, else the measured checkpoint with the highest raw CM (the later "
              "one on a tie); <em>peak is</em> says which. Share = |top "
              "head's attribution| / Σ|all heads' attributions|; ΔCM ablated = CM with that head zero-ablated "
              "minus CM; OV cos = the head's OV output for the cue tokens against the rule-minus-prior "
              "unembedding direction.</p>")  # fmt: skip


def _patch_table(data: ReportData, rule: str) -> str:
    assert data.mech is not None
    rows = []
    for (cell, seed), run in data.mech.runs.items():
        p2f = best_patch(run, rule, "recovery_peak_to_final")
        f2p = best_patch(run, rule, "recovery_final_to_peak")
        if p2f is None and f2p is None:
            continue
        row = [esc(cell), str(seed)]
        for b in (p2f, f2p):
            if b is None:
                row += ["–"] * 3
            else:
                row += [str(b.step), f"<code>{esc(b.component)}</code> {fmt(b.recovery, signed=True)}",
                        fmt(b.all_recovery, signed=True)]  # fmt: skip
        rows.append(row)
    if not rows:
        return ""
    head = ["cell", "seed", "into final (step)", "best single component, peak → final", "all components",
            "into peak (step)", "best single component, final → peak", "all components"]  # fmt: skip
    return ("<h4>Activation patching between the CM peak and the final checkpoint (Table 11 layout)</h4>"
            + _table(head, rows, num_cols=(1, 2, 4, 5, 7))
            + '<p class="meta">Recovery = (CM_patched − CM_destination) / (CM_source − CM_destination) when one '
              "component's activations from the source checkpoint are patched into the destination "
              "checkpoint; 1 = that component alone carries the whole difference.</p>")  # fmt: skip


def _direction_table(data: ReportData, rule: str) -> str:
    assert data.mech is not None
    rows = []
    for (cell, seed), run in data.mech.runs.items():
        effects = direction_effects(run, rule)
        if not effects:
            continue
        peak, final, _ = peak_and_final(data, cell, seed, rule)
        cm, _ = raw_cm(data, cell, seed, rule)
        for d in effects:
            rows.append([esc(cell), str(seed), _steps_label(d.step, peak, final), fmt(cm.get(d.step), signed=True),
                         f"<code>{esc(d.block)}</code>", fmt(d.dcm, signed=True), fmt(d.other_abs_delta),
                         fmt(d.dbpb, 3, signed=True)])  # fmt: skip
    if not rows:
        return ""
    head = ["cell", "seed", "checkpoint", "CM there", "block (largest |ΔCM|)", "ΔCM", "other families' mean |Δ|",
            "Δbpb"]  # fmt: skip
    return ("<h4>Removing the cue direction</h4>" + _table(head, rows, num_cols=(1, 3, 5, 6, 7))
            + '<p class="meta">The class-mean difference of the residual after one block, projected out at all '
              "positions. ΔCM = change in the rule's CM; other families' mean |Δ| = mean absolute change of the "
              "other families' length-normalised held-out conflict margins (specificity); Δbpb = change in bits "
              "per byte on the run's own training text.</p>")  # fmt: skip


def _rule_block(data: ReportData, rule: str) -> str:
    from ungrok.report import mech_figures

    assert data.mech is not None
    out = [f"<h3><code>{esc(rule)}</code></h3>"]
    absent = [i for i in INSTRUMENTS if not any(run.steps(rule, i) for run in data.mech.runs.values())]
    if absent:
        out.append(_note(f"No {', '.join(absent)} rows for {rule} in any run."))
    png = mech_figures.decomposition_png(data, rule)
    if png is not None:
        err = max_decomp_error(data, rule)
        cap = ("The rule's pre-softcap logit gap (rule minus prior, mean over its CM prompts) split exactly into "
               "the embedding stream (direct) and what the blocks wrote (ctx = all attention + MLP), with each "
               "layer's attention and MLP term as thin lines; black = the model's own gap. Seeds as line styles."
               + (f" Largest reconstruction error |gap − sum of parts|: {err:.2g} nats." if err is not None else ""))
        out.append(_img(png, f"logit-gap decomposition of {rule}", cap))
    png = mech_figures.head_share_png(data, rule)
    if png is not None:
        cap = ("Each head's share of the attention attribution (|attribution| / Σ|all heads|), one colour per "
               "head, seeds as line styles; the label at the right end names each seed's top head at its last "
               "measured checkpoint.")  # fmt: skip
        out.append(_img(png, f"head shares of {rule}", cap))
    png = mech_figures.decodability_png(data, rule)
    if png is not None:
        cap = ("How well the residual after each block tells the rule's cue apart (cross-frame nearest class "
               "mean; 0.5 = chance, dotted). The embedding stream is left out: its last token is shared by "
               "construction.")  # fmt: skip
        out.append(_img(png, f"cue decodability of {rule}", cap))
    out += [_head_table(data, rule), _patch_table(data, rule), _direction_table(data, rule)]
    return "".join(out)


def _acc_pair(fams: list[NgramFamily | None]) -> str:
    """Final conflict / agree per seed; one value when every seed agrees. * marks a raw last step."""
    parts = []
    for f in fams:
        if f is None:
            parts.append("–")
        elif f.record is not None:
            parts.append(f"{fmt(f.record['conflict_final'])} / {fmt(f.record['agree_final'])}")
        else:
            parts.append(f"{fmt(f.conflict_last)} / {fmt(f.agree_last)}*")
    shown = [p for p in parts if p != "–"]
    if not shown:
        return "–"
    if len(set(shown)) == 1 and len(shown) == len(parts):
        return shown[0]
    return " · ".join(parts)


def section_ngram(data: ReportData) -> str:
    assert data.mech is not None
    ng = data.mech.ngram
    if not ng:
        return _note("No traj.ngram.parquet in any seed folder: no n-gram baseline.")
    orders = sorted({n for _, _, n in ng})
    idx = record_index(data)
    rows, unclassified = [], []
    for cell in data.cells:
        fams = sorted({f for (c, _, _), per in ng.items() if c == cell for f in per})
        for fam in fams:
            row = [esc(cell), f"<code>{esc(fam)}</code>", _letters(data, cell, fam, idx)]
            for n in orders:
                per_seed = [ng.get((cell, s, n), {}).get(fam) for s in data.seeds]
                badges, same, compared = [], 0, 0
                for seed, f in zip(data.seeds, per_seed, strict=True):
                    who = f"seed {seed}, {n}-gram"
                    if f is None or f.record is None:
                        if f is not None:
                            unclassified.append(f"{cell}/seed{seed} {n}-gram {fam}: {f.why}")
                        badges.append(fate_badge(None, seed, who=who + (f" ({f.why})" if f is not None else "")))
                        continue
                    badges.append(fate_badge(f.record, seed, who=who))
                    neural = idx.get((cell, seed, fam))
                    if neural is not None:
                        compared += 1
                        same += record_letter(neural) == record_letter(f.record)
                row += ["".join(badges), f"{same}/{compared}" if compared else "–", _acc_pair(per_seed)]
            rows.append(row)
    head = ["cell", "rule", "neural"]
    for n in orders:
        head += [f"{n}-gram", f"{n}-gram letter = neural", f"{n}-gram final conflict / agree"]
    out = [_table(head, rows, cls="grid"),
           '<p class="meta">The n-gram model (Stupid Backoff, docs/method.md §13) is scored on the same '
           "battery over the cell's own training text and classified by the same frozen classifier, agree "
           "gate included. Letters per seed, in seed order; <em>letter = neural</em> counts the seeds whose "
           "n-gram letter equals the neural run's, i.e. a verdict that counts of short contexts alone would "
           "also give. Final accuracies are the classifier's final-window means, one pair per seed "
           "(one pair when all seeds agree).</p>"]  # fmt: skip
    if unclassified:
        out.append(_note(f"{len(unclassified)} n-gram series could not be classified (accuracies marked * are "
                         "the raw last step): " + "; ".join(unclassified[:5])
                         + (" …" if len(unclassified) > 5 else "")))  # fmt: skip
    return "".join(out)


def section_mech(data: ReportData) -> str:
    """The mechanism section's HTML (only called when the run has a mechanism store or n-gram baseline)."""
    assert data.mech is not None
    out = [DESCRIPTIVE]
    if not data.mech.runs:
        out.append(_note("No readable traj.mech.parquet in any seed folder: only the n-gram baseline is shown."))
    elif data.mech.without_mech:
        out.append(_note(f"No traj.mech.parquet for {len(data.mech.without_mech)} run(s): "
                         + ", ".join(data.mech.without_mech) + "."))  # fmt: skip
    for rule in mech_rules(data):
        out.append(_rule_block(data, rule))
    out.append("<h3>Which verdicts an n-gram model would share</h3>")
    out.append(section_ngram(data))
    return "".join(out)
