"""The focal rule's lead figure: accuracy and contrast margin side by side, cell by cell.

Behaviour alone cannot tell a rule that was displaced from one that was never learned, and
CM alone cannot tell whether the model acts on it; the phenomenon is the two together. So
each cell gets a pair of panels sharing one step axis: held-out conflict accuracy (left,
figures.draw_accuracy) and CM (right, figures.draw_cm), drawn by the same code as the
per-rule figures, only larger. When the monitor logged per-rule states, its first
displacement warning for the run (fate/warning.rule_warning: the first probe with the early
warning up; older logs: ``displacing`` or ``displaced`` after ``emerged``) is a dotted line with a triangle in the seed's colour on
both panels, gid "warning/<cell>/<seed>" (accuracy) and "warning-cm/<cell>/<seed>" (CM).
"""

from __future__ import annotations

import math

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ungrok.fate.warning import rule_warning
from ungrok.report.data import ReportData
from ungrok.report.figures import (
    AGREE_COLOR,
    CM_MARKER_PROXIES,
    RC,
    _legend,
    _letters,
    draw_accuracy,
    draw_cm,
    legend_columns,
    seed_style,
)

PAIR_WIDTH = 11.2  # inches for one cell's two panels: the page's full width at 100 dpi
ROW_HEIGHT = 2.4


def warning_steps(data: ReportData, rule: str) -> dict[tuple[str, int], int]:
    """(cell, seed) -> the monitor's first displacement warning for the rule; empty when the run
    has no per-rule monitor states (report/monitor.py loads them into data.watch)."""
    if data.watch is None:
        return {}
    warned = {key: rule_warning(rows, rule) for key, rows in data.watch.rows.items()}
    return {key: step for key, step in warned.items() if step is not None}


def focal_cells(data: ReportData, rule: str) -> list[str]:
    """Cells, in experiment order, with a held-out trajectory or a CM series of the rule."""
    return [c for c in data.cells
            if any((c, s, rule) in data.conflict or (c, s, rule) in data.margins for s in data.seeds)]


def _pairs(n: int) -> tuple[Figure, list[tuple[Axes, Axes]]]:
    """One (accuracy, CM) pair per cell: one pair a row up to 6 cells, then two, so a sweep's
    many cells do not make the figure endless. Accuracy panels share 0..1, CM panels one y
    scale, and each pair one step axis."""
    per_row = 1 if n <= 6 else 2
    nrows = math.ceil(n / per_row)
    width = PAIR_WIDTH if per_row == 1 else 1.25 * PAIR_WIDTH
    fig = Figure(figsize=(width, ROW_HEIGHT * nrows + 1.0), layout="constrained")
    grid = fig.subplots(nrows, 2 * per_row, squeeze=False)
    flat = [ax for row in grid for ax in row]
    pairs = [(flat[2 * i], flat[2 * i + 1]) for i in range(n)]
    for ax in flat[2 * n :]:
        ax.set_visible(False)
    for acc, cm in pairs:
        cm.sharex(acc)
        if cm is not pairs[0][1]:
            cm.sharey(pairs[0][1])
    return fig, pairs


def _mark_warning(ax: Axes, step: int, color: str, gid: str) -> None:
    ax.plot([step, step], [0.0, 1.0], transform=ax.get_xaxis_transform(), color=color, ls=":", lw=1.2,
            marker="v", markevery=[1], ms=6, clip_on=False, gid=gid)


def _empty(ax: Axes, text: str, gid: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#777777", gid=gid)


def focal_figure(data: ReportData, rule: str) -> Figure | None:
    """Per cell: held-out conflict accuracy (left) and CM (right) of the rule, with onsets, zero
    crossings and the monitor's first warnings; None when the rule has neither series."""
    cells = focal_cells(data, rule)
    if not cells:
        return None
    cfg = data.classifier
    warnings = warning_steps(data, rule)
    import matplotlib

    with matplotlib.rc_context(RC):
        fig, pairs = _pairs(len(cells))
        for (acc, cm), cell in zip(pairs, cells, strict=True):
            draw_accuracy(acc, data, cell, rule)
            draw_cm(cm, data, cell, rule)
            if not any((cell, s, rule) in data.conflict for s in data.seeds):
                _empty(acc, "no held-out trajectory", f"noacc/{cell}")
            if not any((cell, s, rule) in data.margins for s in data.seeds):
                _empty(cm, "no CM recorded", f"nocm/{cell}")
            for seed in data.seeds:
                step = warnings.get((cell, seed))
                if step is not None:
                    color, _ = seed_style(data, seed)
                    _mark_warning(acc, step, color, f"warning/{cell}/{seed}")
                    _mark_warning(cm, step, color, f"warning-cm/{cell}/{seed}")
            acc.set_title(f"{cell}   {_letters(data, cell, rule)}", loc="left")
            acc.set_ylabel("held-out conflict acc.")
            cm.set_ylabel("CM (nats)")
        extra = list(CM_MARKER_PROXIES)
        if warnings:
            extra.append(Line2D([], [], color=AGREE_COLOR, ls=":", marker="v", ms=6,
                                label="monitor's first displacement warning (seed colour)"))
        axes = [a for pair in pairs for a in pair]
        _legend(fig, axes, tuple(extra), ncols_max=legend_columns(fig, 3.2))
        fig.suptitle(f"{rule}: held-out conflict accuracy (left, smoothed as the classifier sees it) and "
                     f"contrast margin CM (right), per cell; k = {cfg.smooth_k}", fontsize=10)
    return fig
