"""The public-checkpoint mechanism section: what `ungrok hub mech` wrote into a hub suite folder's
traj.mech.parquet, one table per (model, rule), one row per revision. Descriptive only, as the
own-run mechanism section; it reads the store itself because it is the folder's only reader."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from markupsafe import Markup

from ungrok.errors import UngrokError
from ungrok.report.common import code, join, markup, note, table
from ungrok.report.facts import fmt
from ungrok.report.hub import HubData

_INTRO = Markup("<p><strong>Descriptive only.</strong> The rule's logit gap (rule minus prior target, mean "
                "over its CM prompts) on each public checkpoint, split exactly into the embedding stream, "
                "what the blocks wrote (ctx) and the bias vectors, read from the unmodified transformers "
                "model through nnsight (docs/mechanism.md). No verdict depends on it.</p>")


def _by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[int, dict[tuple[str, str, str], float]]]:
    """(model, rule) -> step -> (instrument, component, metric) -> value."""
    out: dict[tuple[str, str], dict[int, dict[tuple[str, str, str], float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        out[(r["run"], r["rule"])][int(r["step"])][(r["instrument"], r["component"], r["metric"])] = r["value"]
    return out


def _top_head(v: dict[tuple[str, str, str], float]) -> tuple[str, float, float] | None:
    """(head, attribution, share) with the largest |attribution|, first in store order on ties."""
    heads = [(c, a) for (i, c, m), a in v.items() if i == "heads" and m == "attribution" and not math.isnan(a)]
    if not heads:
        return None
    c, a = max(heads, key=lambda t: abs(t[1]))
    return c, a, v.get(("heads", c, "share"), math.nan)


def _row(step: int, v: dict[tuple[str, str, str], float]) -> list[Any]:
    d = {c: x for (i, c, _m), x in v.items() if i == "decomp"}
    attn = sum(x for c, x in d.items() if c.startswith("attn:") and "H" not in c.removeprefix("attn:"))
    mlp = sum(x for c, x in d.items() if c.startswith("mlp:"))
    top = _top_head(v)
    blocks = sorted((int(c.removeprefix("block")), x) for (i, c, _m), x in v.items() if i == "decode")
    return [step, fmt(d.get("gap"), signed=True), fmt(d.get("embed"), signed=True), fmt(d.get("ctx"), signed=True),
            fmt(attn if d else None, signed=True), fmt(mlp if d else None, signed=True),
            fmt(d.get("bias"), signed=True),
            markup("{} {} ({})", code(top[0]), fmt(top[1], signed=True), fmt(top[2])) if top else "–",
            " · ".join(fmt(x) for _, x in blocks) or "–", "–" if "error" not in d else f"{d['error']:.1g}"]


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
    out = [_INTRO]
    head = ["step", "gap", "embed", "ctx", "attention", "MLP", "bias", "top head (attribution, share)",
            "decodability per block", "max error"]
    for (model, rule), steps in sorted(_by_key(rows).items()):
        out.append(markup("<h3><code>{}</code> · <code>{}</code></h3>", model, rule))
        out.append(table(head, [_row(s, steps[s]) for s in sorted(steps)], num_cols=(0, 1, 2, 3, 4, 5, 6, 9)))
    out.append(Markup('<p class="meta">Nats, pre-softmax. gap = embed + ctx + bias, ctx = attention + MLP '
                      "summed over layers; max error = the worst prompt's |gap − sum of parts|. The top head "
                      "carries the largest |attribution| (its term through its columns of the attention output "
                      "projection); share = |attribution| / Σ|all heads|. Decodability: cross-frame nearest "
                      "class mean of cue against control prompts on the residual after each layer, from the "
                      "first; 0.5 = chance.</p>"))
    return join(out)
