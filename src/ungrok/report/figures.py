"""The report's figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each `*_figure` returns a matplotlib Figure (or None when there is nothing to draw), so
tests can read back exactly what was plotted; `to_png` gives the PNG bytes the HTML
embeds. Artists carry a `gid` naming what they show (e.g. "conflict/high/1",
"band/high", "onset/high/1") for the same reason.

Smoothing follows the instruments, not taste: behaviour as the classifier sees it
(steps >= min_step, then the centred k = 3 mean), CM as the margin instrument does
(every checkpoint, then the same mean), so a curve that crosses 0.6 on the plot is one
the verdict saw cross it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ungrok.report.data import ReportData
from ungrok.report.facts import (
    Ladder,
    classifier_view,
    cm_view,
    fmt_num,
    ladder_series,
    mean,
    record_index,
    record_letter,
)

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
SEED_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
SEED_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")
# For figures whose colours already name something else (components, heads, blocks, models).
SEED_LINESTYLES = ("-", "--", ":", "-.")
BAND_COLOR = "#0072B2"
AGREE_COLOR = "#555555"
RC = {"font.size": 8.5, "axes.titlesize": 9, "axes.spines.top": False, "axes.spines.right": False}


def seed_style(data: ReportData, seed: int) -> tuple[str, str]:
    i = data.seeds.index(seed) if seed in data.seeds else 0
    return SEED_COLORS[i % len(SEED_COLORS)], SEED_MARKERS[i % len(SEED_MARKERS)]


def seed_linestyle(data: ReportData, seed: int) -> str:
    i = data.seeds.index(seed) if seed in data.seeds else 0
    return SEED_LINESTYLES[i % len(SEED_LINESTYLES)]


def graded(cmap_name: str, n: int, start: float = 0.45, span: float = 0.5) -> list[str]:
    """n colours evenly along [start, start + span] of a matplotlib colormap, as hex."""
    import matplotlib
    from matplotlib.colors import to_hex

    cmap = matplotlib.colormaps[cmap_name]
    return [to_hex(cmap(start + span * i / max(n - 1, 1))) for i in range(n)]


def to_png(fig: Figure) -> bytes:
    """PNG bytes; no Software/date metadata, so equal inputs give equal bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _letters(data: ReportData, cell: str, family: str) -> str:
    idx = record_index(data)
    return " ".join(record_letter(idx[(cell, s, family)]) if (cell, s, family) in idx else "·" for s in data.seeds)


def legend_columns(fig: Figure, inches_per_entry: float = 1.7) -> int:
    """How many legend entries fit side by side in the figure's width."""
    return max(1, int(fig.get_figwidth() / inches_per_entry))


def draw_accuracy(ax, data: ReportData, cell: str, family: str) -> None:
    """One cell's panel: held-out conflict accuracy per seed, the seed range shaded, the agree
    control (seed mean) dashed, and the verdict thresholds dotted. Shared by the per-rule figure
    and the focal rule's lead figure, so both show the same curves."""
    cfg = data.classifier
    by_step: dict[int, list[float]] = {}
    agree_by_step: dict[int, list[float]] = {}
    for seed in data.seeds:
        curve = data.conflict.get((cell, seed, family))
        if curve is None:
            continue
        steps, sm = classifier_view(curve, cfg)
        color, _ = seed_style(data, seed)
        ax.plot(steps, sm, color=color, lw=1.1, label=f"seed {seed}", gid=f"conflict/{cell}/{seed}")
        for s, v in zip(steps, sm, strict=True):
            by_step.setdefault(s, []).append(v)
        agree = data.agree.get((cell, seed, family))
        if agree is not None:
            for s, v in zip(*classifier_view(agree, cfg), strict=True):
                agree_by_step.setdefault(s, []).append(v)
    steps = sorted(by_step)
    if steps:
        ax.fill_between(steps, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps],
                        color=BAND_COLOR, alpha=0.18, lw=0, label="seed range", gid=f"band/{cell}")
    if agree_by_step:
        a_steps = sorted(agree_by_step)
        ax.plot(a_steps, [mean(agree_by_step[s]) for s in a_steps], color=AGREE_COLOR, ls="--", lw=1.1,
                label="agree control (seed mean)", gid=f"agree/{cell}")
    ax.axhline(cfg.recovered_thr, color="#999999", lw=0.6, ls=":")
    ax.axhline(cfg.displaced_thr, color="#999999", lw=0.6, ls=":")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("step")


def cell_figure(cells: list[str], height: float, ylabel: str, title: str, draw: Callable[[Axes, str], None],
                extra: tuple[Line2D, ...] = (), ncols_max: int | None = 6, sharey: bool = True,
                min_width: float = 0.0) -> Figure:
    """One panel per cell titled by its name, `draw(ax, cell)` filling each (and retitling it if the
    name is not enough); shared x label, one legend (`ncols_max` None: as many columns as fit) and
    the title. Shared by the per-rule and the mechanism figures, so all have one layout."""
    import matplotlib

    ncols = min(4, len(cells))
    nrows = math.ceil(len(cells) / ncols)
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(3.3 * ncols + 0.4, height * nrows + 0.8), layout="constrained")
        fig.set_figwidth(max(fig.get_figwidth(), min_width))
        grid = [ax for row in fig.subplots(nrows, ncols, squeeze=False, sharey=sharey) for ax in row]
        for ax in grid[len(cells):]:
            ax.set_visible(False)
        axes = grid[:len(cells)]
        for ax, cell in zip(axes, cells, strict=True):
            ax.set_title(cell)
            draw(ax, cell)
            ax.set_xlabel("step")
        axes[0].set_ylabel(ylabel)
        _legend(fig, axes, extra, ncols_max=legend_columns(fig) if ncols_max is None else ncols_max)
        fig.suptitle(title, fontsize=10)
    return fig


def trajectory_figure(data: ReportData, family: str) -> Figure | None:
    """Held-out conflict accuracy per seed with the seed range shaded, and the agree control, per cell."""
    cells = [c for c in data.cells if any((c, s, family) in data.conflict for s in data.seeds)]
    if not cells:
        return None

    def draw(ax: Axes, cell: str) -> None:
        draw_accuracy(ax, data, cell, family)
        ax.set_title(f"{cell}   {_letters(data, cell, family)}")

    title = f"{family}: held-out conflict accuracy (smoothed, k = {data.classifier.smooth_k})"
    return cell_figure(cells, 2.3, "held-out accuracy", title, draw)


def _legend(fig: Figure, axes: list, extra: tuple[Line2D, ...] = (), ncols_max: int = 6) -> None:
    """One legend for the figure: each labelled artist once, then seed-neutral proxies for markers."""
    seen: dict[str, object] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if not label.startswith("_"):
                seen.setdefault(label, h)
    for h in extra:
        seen.setdefault(h.get_label(), h)
    if seen:
        fig.legend(list(seen.values()), list(seen.keys()), loc="outside lower center", ncols=min(len(seen), ncols_max),
                   frameon=False)


def draw_cm(ax, data: ReportData, cell: str, rule: str) -> None:
    """One cell's panel: smoothed CM per seed, with the behavioural onset (dashed) and the CM
    zero crossing (dot) from the records. Shared like draw_accuracy."""
    cfg = data.classifier
    idx = record_index(data)
    ax.axhline(0.0, color="#999999", lw=0.7)
    for seed in data.seeds:
        curve = data.margins.get((cell, seed, rule))
        if curve is None:
            continue
        steps, sm = cm_view(curve, cfg)
        color, _ = seed_style(data, seed)
        ax.plot(steps, sm, color=color, lw=1.1, label=f"seed {seed}", gid=f"cm/{cell}/{seed}")
        rec = idx.get((cell, seed, rule), {})
        onset = rec.get("onset")
        if onset is not None:
            ax.axvline(onset, color=color, ls="--", lw=0.9, alpha=0.8, gid=f"onset/{cell}/{seed}")
        zero = rec.get("cm_zero_crossing")
        if zero is not None and zero in steps:
            ax.plot([zero], [sm[steps.index(zero)]], "o", color=color, ms=5, mec="white", mew=0.8,
                    gid=f"zero/{cell}/{seed}")
    ax.set_xlabel("step")


CM_MARKER_PROXIES = (
    Line2D([], [], color=AGREE_COLOR, ls="--", lw=0.9, label="behavioural onset (seed colour)"),
    Line2D([], [], color=AGREE_COLOR, ls="", marker="o", ms=5, label="CM zero crossing (seed colour)"),
)


def cm_strip_figure(data: ReportData, rule: str) -> Figure | None:
    """Smoothed CM per seed with the behavioural onset (dashed) and CM zero crossing (dot), per cell."""
    cells = [c for c in data.cells if any((c, s, rule) in data.margins for s in data.seeds)]
    if not cells:
        return None
    title = f"{rule}: contrast margin CM (smoothed, k = {data.classifier.smooth_k})"
    return cell_figure(cells, 1.9, "CM (nats)", title, lambda ax, cell: draw_cm(ax, data, cell, rule),
                       CM_MARKER_PROXIES)


def dose_response_figure(data: ReportData, ladder: Ladder, rule: str) -> Figure | None:
    """Final conflict accuracy and CM_final per seed against the kill rate or rescue dose, with the mean."""
    idx = record_index(data)
    series = ladder_series(data, ladder, rule)
    if not any(t.seeds for _, _, t in series):
        return None
    has_cm = any(t.cm_seeds for _, _, t in series)
    cfg = data.classifier
    import matplotlib

    measures = [("conflict_final", "final held-out conflict accuracy")]
    if has_cm:
        measures.append(("cm_final", "CM_final (nats)"))
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(4.2 * len(measures) + 0.4, 3.2), layout="constrained")
        axes = fig.subplots(1, len(measures), squeeze=False)[0]
        xs = [x for x, _, _ in series]
        positive = [x for x in xs if x > 0]
        log = bool(positive) and max(positive) / min(positive) > 20
        for ax, (key, label) in zip(axes, measures, strict=True):
            for seed in data.seeds:
                color, marker = seed_style(data, seed)
                pts = [(x, idx[(c, seed, rule)]) for x, c, _ in series if (c, seed, rule) in idx]
                pts = [(x, r) for x, r in pts if r.get(key) is not None]
                for gate in ("pass", "fail"):
                    sel = [(x, r[key]) for x, r in pts if r["agree_gate"] == gate]
                    if sel:
                        ax.scatter([x for x, _ in sel], [y for _, y in sel], marker=marker, s=28, zorder=3,
                                   facecolors=color if gate == "pass" else "none", edgecolors=color,
                                   label=f"seed {seed}", gid=f"{key}/{seed}/{gate}")
            means = [(x, t.mean_conflict_final if key == "conflict_final" else t.mean_cm_final) for x, _, t in series]
            means = [(x, y) for x, y in means if y is not None]
            ax.plot([x for x, _ in means], [y for _, y in means], color="black", lw=1.3, marker="_", ms=12,
                    label="mean over seeds", zorder=2, gid=f"{key}/mean")
            if key == "conflict_final":
                ax.axhline(cfg.recovered_thr, color="#999999", lw=0.6, ls=":")
                ax.axhline(cfg.displaced_thr, color="#999999", lw=0.6, ls=":")
                ax.set_ylim(-0.03, 1.03)
            else:
                ax.axhline(0.0, color="#999999", lw=0.7)
            if log:
                ax.set_xscale("symlog", linthresh=min(positive))
            ax.set_xticks(xs, [fmt_num(x) for x in xs])
            ax.set_xlabel(ladder.axis + (" (symlog axis)" if log else ""))
            ax.set_ylabel(label)
        gate_proxy = Line2D([], [], color=AGREE_COLOR, ls="", marker="o", mfc="none", label="hollow: agree gate failed")
        _legend(fig, list(axes), (gate_proxy,))
        fig.suptitle(f"{ladder.kind} ladder on '{ladder.parent}': {rule}", fontsize=10)
    return fig
