"""The mechanism section: decomposition, head shares and decodability figures, the dominant head
(Table 10), patching (Table 11), direction removal, and the n-gram baseline's verdicts beside
the neural ones. Descriptive only, and it says so; the rows are read by report/mech.py."""

from __future__ import annotations

from markupsafe import Markup

from ungrok.report.common import code, fate_badge, figure, join, letters, markup, note, table
from ungrok.report.data import ReportData
from ungrok.report.facts import fmt, record_index, record_letter
from ungrok.report.mech import (
    INSTRUMENTS,
    PAIR_SOURCES,
    HeadAt,
    NgramFamily,
    best_patch,
    direction_effects,
    max_decomp_error,
    mech_rules,
    peak_and_final,
    raw_cm,
    top_head,
)

DESCRIPTIVE = Markup("<p><strong>Descriptive only.</strong> These analyses look inside the trained models after "
                     "the fact (docs/method.md §11). No verdict, agree gate or pre-registered prediction depends "
                     "on them, and they are not scored; they describe how the rule's margin is carried, not "
                     "whether the rule survived.</p>")
Cell = Markup | str | int


def _steps_label(step: int | None, peak: int | None, final: int | None) -> str:
    if step is None:
        return "–"
    tags = [t for t, s in (("peak", peak), ("final", final)) if s == step]
    return f"{'/'.join(tags)} {step}" if tags else str(step)


def _head_cells(h: HeadAt) -> list[Cell]:
    return [h.step, fmt(h.cm, signed=True), code(h.head) if h.head else "–", fmt(h.share),
            fmt(h.ablation_dcm, signed=True), fmt(h.ov_cos, signed=True)]


def _head_table(data: ReportData, rule: str) -> Markup:
    assert data.mech is not None
    rows = []
    for (cell, seed), run in data.mech.runs.items():
        if not run.steps(rule, "heads"):
            continue
        peak, final, source = peak_and_final(data, cell, seed, rule)
        cm, _ = raw_cm(data, cell, seed, rule)
        row: list[Cell] = [cell, seed]
        for step in (peak, final):
            row += _head_cells(top_head(run, rule, step, cm.get(step))) if step is not None else ["–"] * 6
        rows.append([*row, PAIR_SOURCES[source]])
    head = ["cell", "seed"] + [f"{w} {c}" for w in ("peak", "final")
                               for c in ("step", "CM", "top head", "share", "ΔCM ablated", "OV cos")] + ["peak is"]
    return _titled_table(
        "Dominant head at the CM peak and the final checkpoint (Table 10 layout)", head, rows,
        (1, 2, 3, 5, 6, 7, 8, 9, 11, 12, 13),
        Markup("CM = the raw contrast margin at that checkpoint (the model's own "
               "pre-softcap logit gap when the run has no margins). Peak = the checkpoint `ungrok mech` "
               "took as the CM peak when it patched or removed directions, else the measured checkpoint "
               "with the highest raw CM (the later one on a tie); <em>peak is</em> says which. Share = "
               "|top head's attribution| / Σ|all heads' attributions|; ΔCM ablated = CM with that head "
               "zero-ablated minus CM; OV cos = the head's OV output for the cue tokens against the "
               "rule-minus-prior unembedding direction."),
    )


def _titled_table(title: str, head: list[str], rows: list[list[Cell]], num_cols: tuple[int, ...],
                  meta: Markup) -> Markup:
    """A mechanism table under its heading with its reading note; nothing when no run has rows."""
    if not rows:
        return Markup("")
    return join([markup("<h4>{}</h4>", title), table(head, rows, num_cols=num_cols),
                 markup('<p class="meta">{}</p>', meta)])


def _patch_table(data: ReportData, rule: str) -> Markup:
    assert data.mech is not None
    rows = []
    for (cell, seed), run in data.mech.runs.items():
        p2f = best_patch(run, rule, "recovery_peak_to_final")
        f2p = best_patch(run, rule, "recovery_final_to_peak")
        if p2f is None and f2p is None:
            continue
        row: list[Cell] = [cell, seed]
        for b in (p2f, f2p):
            if b is None:
                row += ["–"] * 3
            else:
                row += [b.step, markup("<code>{}</code> {}", b.component, fmt(b.recovery, signed=True)),
                        fmt(b.all_recovery, signed=True)]
        rows.append(row)
    head = ["cell", "seed", "into final (step)", "best single component, peak → final", "all components",
            "into peak (step)", "best single component, final → peak", "all components"]
    return _titled_table(
        "Activation patching between the CM peak and the final checkpoint (Table 11 layout)", head, rows,
        (1, 2, 4, 5, 7),
        Markup("Recovery = (CM_patched − CM_destination) / (CM_source − CM_destination) "
               "when one component's activations from the source checkpoint are patched into the "
               "destination checkpoint; 1 = that component alone carries the whole difference."),
    )


def _direction_table(data: ReportData, rule: str) -> Markup:
    assert data.mech is not None
    rows = []
    for (cell, seed), run in data.mech.runs.items():
        effects = direction_effects(run, rule)
        if not effects:
            continue
        peak, final, _ = peak_and_final(data, cell, seed, rule)
        cm, _ = raw_cm(data, cell, seed, rule)
        for d in effects:
            rows.append([cell, seed, _steps_label(d.step, peak, final), fmt(cm.get(d.step), signed=True),
                         code(d.block), fmt(d.dcm, signed=True), fmt(d.other_abs_delta),
                         fmt(d.dbpb, 3, signed=True)])
    head = ["cell", "seed", "checkpoint", "CM there", "block (largest |ΔCM|)", "ΔCM", "other families' mean |Δ|",
            "Δbpb"]
    return _titled_table(
        "Removing the cue direction", head, rows, (1, 3, 5, 6, 7),
        Markup("The class-mean difference of the residual after one block, projected out "
               "at all positions. ΔCM = change in the rule's CM; other families' mean |Δ| = mean absolute "
               "change of the other families' length-normalised held-out conflict margins (specificity); "
               "Δbpb = change in bits per byte on the run's own training text."),
    )


def _rule_block(data: ReportData, rule: str) -> Markup:
    from ungrok.report import mech_figures  # matplotlib only when drawn

    assert data.mech is not None
    out = [markup("<h3><code>{}</code></h3>", rule)]
    absent = [i for i in INSTRUMENTS if not any(run.steps(rule, i) for run in data.mech.runs.values())]
    if absent:
        out.append(note(f"No {', '.join(absent)} rows for {rule} in any run."))
    err = max_decomp_error(data, rule)
    drawings = (
        (mech_figures.decomposition_figure, "logit-gap decomposition",
         "The rule's pre-softcap logit gap (rule minus prior, mean over its CM prompts) split exactly into "
         "the embedding stream (direct) and what the blocks wrote (ctx = all attention + MLP), with each "
         "layer's attention and MLP term as thin lines; black = the model's own gap. Seeds as line styles."
         + (f" Largest reconstruction error |gap − sum of parts|: {err:.2g} nats." if err is not None else "")),
        (mech_figures.head_share_figure, "head shares",
         "Each head's share of the attention attribution (|attribution| / Σ|all heads|), one colour per "
         "head, seeds as line styles; the label at the right end names each seed's top head at its last "
         "measured checkpoint."),
        (mech_figures.decodability_figure, "cue decodability",
         "How well the residual after each block tells the rule's cue apart (cross-frame nearest class "
         "mean; 0.5 = chance, dotted). The embedding stream is left out: its last token is shared by "
         "construction."),
    )
    for draw, what, cap in drawings:
        fig = draw(data, rule)
        if fig is not None:
            out.append(figure(fig, f"{what} of {rule}", cap))
    out += [_head_table(data, rule), _patch_table(data, rule), _direction_table(data, rule)]
    return join(out)


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


def section_ngram(data: ReportData) -> Markup:
    """Per cell and rule: the neural letters, each n-gram order's letters, and how many seeds agree."""
    assert data.mech is not None
    ng = data.mech.ngram
    if not ng:
        return note("No traj.ngram.parquet in any seed folder: no n-gram baseline.")
    orders = sorted({n for _, _, n in ng})
    idx = record_index(data)
    rows, unclassified = [], []
    for cell in data.cells:
        fams = sorted({f for (c, _, _), per in ng.items() if c == cell for f in per})
        for fam in fams:
            row: list[Cell] = [cell, code(fam), letters(data, cell, fam, idx)]
            for n in orders:
                per_seed = [ng.get((cell, s, n), {}).get(fam) for s in data.seeds]
                badges, same, compared = [], 0, 0
                for seed, f in zip(data.seeds, per_seed, strict=True):
                    who, rec = f"seed {seed}, {n}-gram", f.record if f is not None else None
                    if f is not None and rec is None:
                        unclassified.append(f"{cell}/seed{seed} {n}-gram {fam}: {f.why}")
                        who += f" ({f.why})"
                    badges.append(fate_badge(rec, seed, who=who))
                    neural = idx.get((cell, seed, fam))
                    if rec is not None and neural is not None:
                        compared += 1
                        same += record_letter(neural) == record_letter(rec)
                row += [join(badges), f"{same}/{compared}" if compared else "–", _acc_pair(per_seed)]
            rows.append(row)
    head = ["cell", "rule", "neural"]
    for n in orders:
        head += [f"{n}-gram", f"{n}-gram letter = neural", f"{n}-gram final conflict / agree"]
    out = [table(head, rows, cls="grid"),
           Markup('<p class="meta">The n-gram model (Stupid Backoff, docs/method.md §13) is scored on the same '
                  "battery over the cell's own training text and classified by the same frozen classifier, agree "
                  "gate included. Letters per seed, in seed order; <em>letter = neural</em> counts the seeds whose "
                  "n-gram letter equals the neural run's, i.e. a verdict that counts of short contexts alone would "
                  "also give. Final accuracies are the classifier's final-window means, one pair per seed "
                  "(one pair when all seeds agree).</p>")]
    if unclassified:
        out.append(note(f"{len(unclassified)} n-gram series could not be classified (accuracies marked * are "
                        "the raw last step): " + "; ".join(unclassified[:5])
                        + (" …" if len(unclassified) > 5 else "")))
    return join(out)


def section_mech(data: ReportData) -> Markup | None:
    """The mechanism section; None (no section) when the run has no mechanism store or n-gram baseline."""
    if data.mech is None:
        return None
    out = [DESCRIPTIVE]
    if not data.mech.runs:
        out.append(note("No readable traj.mech.parquet in any seed folder: only the n-gram baseline is shown."))
    elif data.mech.without_mech:
        out.append(note(f"No traj.mech.parquet for {len(data.mech.without_mech)} run(s): "
                        + ", ".join(data.mech.without_mech) + "."))
    out += [_rule_block(data, rule) for rule in mech_rules(data)]
    out += [Markup("<h3>Which verdicts an n-gram model would share</h3>"), section_ngram(data)]
    return join(out)
