"""Figures of the mechanism section: one panel per cell, seeds as line styles (colours name
components, heads or blocks). Same canvas, style and `gid` conventions as figures.py:
"decomp/<cell>/<seed>/<component>", "share/<cell>/<seed>/<head>", "top/<cell>/<seed>" (the
label naming the seed's top head), "decode/<cell>/<seed>/<block>".
"""

from __future__ import annotations

from collections.abc import Callable

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ungrok.report.data import ReportData
from ungrok.report.figures import AGREE_COLOR, SEED_COLORS, cell_figure, graded, seed_linestyle
from ungrok.report.mech import MechRun, natural_key

GAP_COLOR, EMBED_COLOR, CTX_COLOR = "#000000", "#009E73", "#D55E00"
MIN_WIDTH = 6.5  # inches: room for the title and the legend when the run has a single cell


def _cells_with(data: ReportData, rule: str, instrument: str, metric: str) -> list[str]:
    assert data.mech is not None
    runs = data.mech.runs
    return [c for c in data.cells
            if any((c, s) in runs and runs[(c, s)].by_component(rule, instrument, metric) for s in data.seeds)]


def _runs(data: ReportData, cell: str) -> list[tuple[int, MechRun]]:
    assert data.mech is not None
    return [(s, data.mech.runs[(cell, s)]) for s in data.seeds if (cell, s) in data.mech.runs]


def _layer_styles(components: set[str]) -> dict[str, tuple[str, float, str]]:
    """component -> (colour, line width, legend label) for the decomposition strip; per-head
    terms and the reconstruction error are not drawn (heads have their own figure)."""
    styles: dict[str, tuple[str, float, str]] = {
        "gap": (GAP_COLOR, 1.8, "gap (model's own)"),
        "embed": (EMBED_COLOR, 1.5, "embed (direct)"),
        "ctx": (CTX_COLOR, 1.5, "ctx = attn + mlp"),
    }
    for kind, cmap in (("attn", "Blues"), ("mlp", "Purples")):
        layers = sorted((c for c in components if c.startswith(f"{kind}:L") and "H" not in c), key=natural_key)
        for c, col in zip(layers, graded(cmap, len(layers)), strict=True):
            styles[c] = (col, 0.7, f"{kind} {c.split(':', 1)[1]}")
    return styles


def _cell_figure(data: ReportData, cells: list[str], height: float, ylabel: str, title: str,
                 draw: Callable[[Axes, str], None], sharey: bool = True) -> Figure:
    """figures.cell_figure with the seeds' line-style legend, as wide as the title needs."""
    seeds = tuple(Line2D([], [], color=AGREE_COLOR, lw=1.1, ls=seed_linestyle(data, s), label=f"seed {s}")
                  for s in data.seeds)
    return cell_figure(cells, height, ylabel, title, draw, seeds, None, sharey, MIN_WIDTH)


def decomposition_figure(data: ReportData, rule: str) -> Figure | None:
    """The logit-gap decomposition over training: direct, contextual, per layer, and the model's gap."""
    cells = _cells_with(data, rule, "decomp", "nats")
    if not cells:
        return None

    def draw(ax: Axes, cell: str) -> None:
        ax.axhline(0.0, color="#999999", lw=0.7)
        for seed, run in _runs(data, cell):
            comps = run.by_component(rule, "decomp", "nats")
            styles = _layer_styles(set(comps))
            order = [c for c in comps if c in styles and c not in ("gap", "embed", "ctx")] + [
                c for c in ("ctx", "embed", "gap") if c in comps]  # thin lines first, the gap on top
            for comp in order:
                color, lw, label = styles[comp]
                steps = sorted(comps[comp])
                ax.plot(steps, [comps[comp][s] for s in steps], color=color, lw=lw, ls=seed_linestyle(data, seed),
                        label=label, gid=f"decomp/{cell}/{seed}/{comp}")

    return _cell_figure(data, cells, 2.5, "logit gap (nats, pre-softcap)",
                        f"{rule}: logit-gap decomposition (direct vs contextual)", draw, sharey=False)


def head_share_figure(data: ReportData, rule: str) -> Figure | None:
    """Each head's share of the attribution over training, the top head labelled per seed."""
    cells = _cells_with(data, rule, "heads", "share")
    if not cells:
        return None
    assert data.mech is not None
    heads = sorted({h for run in data.mech.runs.values() for h in run.by_component(rule, "heads", "share")},
                   key=natural_key)
    palette = list(SEED_COLORS) if len(heads) <= len(SEED_COLORS) else graded("tab20", len(heads))
    colors = {h: palette[i % len(palette)] for i, h in enumerate(heads)}

    def draw(ax: Axes, cell: str) -> None:
        for seed, run in _runs(data, cell):
            shares = run.by_component(rule, "heads", "share")
            if not shares:
                continue
            ls = seed_linestyle(data, seed)
            for head, by_step in shares.items():
                steps = sorted(by_step)
                ax.plot(steps, [by_step[s] for s in steps], color=colors[head], lw=1.1, ls=ls, label=head,
                        gid=f"share/{cell}/{seed}/{head}")
            last = max(s for v in shares.values() for s in v)
            at_last = {h: v[last] for h, v in shares.items() if last in v}
            top = max(at_last, key=lambda h: at_last[h])
            ax.annotate(top, (last, at_last[top]), xytext=(3, 0), textcoords="offset points", fontsize=7.5,
                        color=colors[top], va="center", gid=f"top/{cell}/{seed}")
        ax.set_ylim(-0.03, 1.03)

    return _cell_figure(data, cells, 2.4, "share of |attribution|",
                        f"{rule}: attention heads' share of the logit gap", draw)


def decodability_figure(data: ReportData, rule: str) -> Figure | None:
    """Cue decodability after each block over training (0.5 = chance)."""
    cells = _cells_with(data, rule, "decode", "accuracy")
    if not cells:
        return None
    assert data.mech is not None
    blocks = sorted({b for run in data.mech.runs.values() for b in run.by_component(rule, "decode", "accuracy")},
                    key=natural_key)
    colors = dict(zip(blocks, graded("viridis_r", len(blocks)), strict=True))

    def draw(ax: Axes, cell: str) -> None:
        ax.axhline(0.5, color="#999999", lw=0.7, ls=":")
        for seed, run in _runs(data, cell):
            for block, by_step in run.by_component(rule, "decode", "accuracy").items():
                steps = sorted(by_step)
                ax.plot(steps, [by_step[s] for s in steps], color=colors[block], lw=1.1,
                        ls=seed_linestyle(data, seed), label=block, gid=f"decode/{cell}/{seed}/{block}")
        ax.set_ylim(-0.03, 1.03)

    return _cell_figure(data, cells, 2.3, "cue decodability", f"{rule}: cue decodability per block", draw)
