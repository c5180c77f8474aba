"""The public-checkpoint mechanism section: what `ungrok hub mech` wrote into a hub suite folder's
traj.mech.parquet, one table per (model, rule), one row per revision. Descriptive only, as the
own-run mechanism section; it reads the store itself because it is the folder's only reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import Markup

from ungrok.errors import UngrokError
from ungrok.report.common import code, join, markup, note, table
from ungrok.report.facts import fmt
from ungrok.report.hub import HubData
from ungrok.report.mech import MechRun, top_head

_INTRO = Markup("<p><strong>Descriptive only.</strong> The rule's logit gap (rule minus prior target, mean "
                "over its CM prompts) on each public checkpoint, split exactly into the embedding stream, "
                "what the blocks wrote (ctx) and the bias vectors, read from the unmodified transformers "
                "model through nnsight (docs/mechanism.md). No verdict depends on it.</p>")


def _row(run: MechRun, rule: str, step: int) -> list[Any]:
    d = {c: v[step] for c, v in run.by_component(rule, "decomp", "nats").items() if step in v}
    attn = sum(x for c, x in d.items() if c.startswith("attn:") and "H" not in c.removeprefix("attn:"))
    mlp = sum(x for c, x in d.items() if c.startswith("mlp:"))
    top = top_head(run, rule, step, None)
    blocks = [v[step] for v in run.by_component(rule, "decode", "accuracy").values() if step in v]
    return [step, fmt(d.get("gap"), signed=True), fmt(d.get("embed"), signed=True), fmt(d.get("ctx"), signed=True),
            fmt(attn if d else None, signed=True), fmt(mlp if d else None, signed=True),
            fmt(d.get("bias"), signed=True),
            markup("{} {} ({})", code(top.head), fmt(top.attribution, signed=True), fmt(top.share))
            if top.head else "–",
            " · ".join(fmt(x) for x in blocks) or "–", "–" if "error" not in d else f"{d['error']:.1g}"]


def section_hub_mech(hub: HubData) -> Markup | None:
    """The section, or None when the folder holds no traj.mech.parquet (it is left out)."""
    from ungrok.mech.store import MECH_FILE, read_mech

    path = Path(hub.folder) / MECH_FILE
    if not path.exists():
        return None
    try:
        table_ = read_mech(path)
    except UngrokError as e:
        return note(f"{MECH_FILE} could not be read: {e}")
    rows = [] if table_ is None else table_.to_pylist()
    if not rows:
        return note(f"{MECH_FILE} holds no rows.")
    runs: dict[str, MechRun] = {}  # model id -> its rows
    for r in rows:  # NaN kept: the table shows it as –, decodability keeps its place per block
        runs.setdefault(r["run"], MechRun()).add(r)
    out = [_INTRO]
    head = ["step", "gap", "embed", "ctx", "attention", "MLP", "bias", "top head (attribution, share)",
            "decodability per block", "max error"]
    for model, run in sorted(runs.items()):
        for rule in sorted(run.rules()):
            out.append(markup("<h3><code>{}</code> · <code>{}</code></h3>", model, rule))
            body = [_row(run, rule, s) for s in run.steps(rule)]
            out.append(table(head, body, num_cols=(0, 1, 2, 3, 4, 5, 6, 9)))
    out.append(Markup('<p class="meta">Nats, pre-softmax. gap = embed + ctx + bias, ctx = attention + MLP '
                      "summed over layers; max error = the worst prompt's |gap − sum of parts|. The top head "
                      "carries the largest |attribution| (its term through its columns of the attention output "
                      "projection); share = |attribution| / Σ|all heads|. Decodability: cross-frame nearest "
                      "class mean of cue against control prompts on the residual after each layer, from the "
                      "first; 0.5 = chance.</p>"))
    return join(out)
