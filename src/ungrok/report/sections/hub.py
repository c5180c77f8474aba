"""The public-checkpoint section: the same in a hub-only report and inside an experiment's
report (the suite is read and counted by report/hub.py, drawn by hub_figures.py)."""

from __future__ import annotations

from markupsafe import Markup

from ungrok.report.common import code, fate_badge, figure, items, join, legend, markup, note, table
from ungrok.report.facts import fmt
from ungrok.report.hub import HubData, fmt_params, hub_families, hub_record_index, hub_sentences


def _models_table(hub: HubData, fams: list[str]) -> Markup:
    idx = hub_record_index(hub)
    rows = []
    for model, m in hub.models.items():
        secs = [r.seconds for r in m.revisions if r.seconds is not None]
        params = "–" if m.n_params is None else f"{m.n_params:,} ({fmt_params(m.n_params)})"
        row: list[Markup | str | int] = [code(model), params, "–" if m.size_rank is None else m.size_rank,
                                         f"{m.count('scored')} / {m.count('skipped')} / {m.count('failed')}"]
        for fam in fams:
            rec = idx.get((model, fam))
            badge = fate_badge(rec, 0, who=f"{model} {fam}")
            row.append(badge if rec is None else markup("{} {}", badge, fmt(rec["conflict_final"])))
        row.append(f"{sum(secs):,.1f}" if secs else "–")
        rows.append(row)
    head = ["model", "parameters", "size rank", "revisions scored / skipped / failed", *map(code, fams),
            "scoring time (s)"]
    return table(head, rows, cls="grid", num_cols=(1, 2, len(head) - 1))


def _scale_table(hub: HubData) -> Markup:
    sc = hub.scale
    if sc is None or not sc.models:
        return Markup("")
    rows = [[code(m.model), "–" if m.n_params is None else fmt_params(m.n_params),
             "–" if m.size_rank is None else m.size_rank, fmt(m.final_accuracy)] for m in sc.models]
    return table(["model", "parameters", "size rank", f"final {sc.split} {sc.condition} accuracy"], rows,
                 num_cols=(1, 2, 3))


def _skipped_table(hub: HubData) -> Markup:
    rows: list[list[Markup | str | int]] = []
    seen = set()
    for model, m in hub.models.items():
        for r in m.revisions:
            if r.status != "scored":
                seen.add((model, r.revision))
                rows.append([code(model), r.revision, "–" if r.step is None else r.step, r.status, r.why or ""])
    for s in hub.skipped:
        if (s["model"], s.get("revision")) not in seen:
            rows.append([code(s["model"]), s.get("revision") or "(whole model)", "–", "skipped", s["why"]])
    if not rows:
        return Markup("<p>No revision was skipped or failed.</p>")
    return table(["model", "revision", "step", "status", "why"], rows, num_cols=(2,))


def section_hub(hub: HubData) -> Markup:
    """Sentences, the models table, one figure per family, the skipped revisions and the notes per model."""
    from ungrok.report.hub_figures import hub_figure  # matplotlib only when drawn

    if hub.error is not None:
        return note(f"The hub suite folder could not be read: {hub.error}")
    meta = markup("{} models", len(hub.models))
    if hub.battery:
        meta += markup(" · battery <code>{}</code>", hub.battery)
    if hub.battery_sha256:
        meta += markup(" sha256 <code>{}…</code>", hub.battery_sha256[:16])
    if hub.classifier_sha256:
        meta += markup(" · classified with constants sha256 <code>{}…</code>", hub.classifier_sha256[:16])
    out = [markup('<p class="meta">{}</p>', meta), items(hub_sentences(hub), cls="summary")]
    if hub.scale is not None and hub.scale.note:
        out.append(note(f"Note from `ungrok hub classify` on the scale statistic: {hub.scale.note}"))
    out.append(_scale_table(hub))
    fams = hub_families(hub)
    out.append(Markup("<h3>Models</h3>"))
    if hub.records is None:
        out.append(note("No verdicts (hub_fates.json is missing): the family columns show · only."))
    else:
        out.append(legend())
    if hub.unclassified:
        out.append(note("Not classified by `ungrok hub classify`: "
                        + "; ".join(f"{u['model']}: {u['why']}" for u in hub.unclassified)))
    out.append(_models_table(hub, fams))
    cfg = hub.classifier
    out.append(markup('<p class="meta">One letter per model and family (the verdict of `ungrok hub classify`), '
                      "then its final held-out conflict accuracy (smoothed, k = {}, mean of the final window, "
                      "steps ≥ {}). Size rank 1 = smallest.</p>", cfg.smooth_k, cfg.min_step))
    out.append(Markup("<h3>Trajectories by model size</h3>"))
    drawn = 0
    for fam in fams:
        fig = hub_figure(hub, fam)
        if fig is None:
            continue
        drawn += 1
        cap = markup("<code>{}</code>: raw held-out accuracy at every scored revision (not smoothed), one colour "
                     "per model from dark (smallest) to light (largest); conflict solid, agree control dashed. The "
                     "x axis is symlog: linear from 0 to 1, logarithmic above, so step 0 sits at the left edge. "
                     "Grey: steps below {}, which the classifier does not see. Dotted lines at {:g} and {:g}.",
                     fam, cfg.min_step, cfg.recovered_thr, cfg.displaced_thr)
        if any(k[1] == fam for k in hub.margins):
            cap += Markup(" Right: the rule's raw CM per model.")
        out.append(figure(fig, f"public-checkpoint trajectories of {fam}", cap))
    if not drawn:
        out.append(note("No held-out trajectories (traj.parquet) for any model."))
    out += [Markup("<h3>Skipped and failed revisions</h3>"), _skipped_table(hub),
            Markup("<h3>Notes per model</h3>")]
    noted = [(model, m.notes) for model, m in hub.models.items() if m.notes]
    if noted:
        out.append(items(markup("<code>{}</code>: {}", model, n) for model, notes in noted for n in notes))
    else:
        out.append(Markup("<p>suite.json records no note for any model.</p>"))
    return join(out)
