"""The phase diagram's figure: one point per swept cell, placed by its knob values, coloured by
the seed mean of CM_final on a diverging map centred at 0, with the seeds' verdict letters
above it and the counted support ratio below. Same canvas, style and `gid` conventions as
figures.py: "point/<cell>", "letters/<cell>", "ratio/<cell>", "panel/<i>", "colorbar".
"""

from __future__ import annotations

from matplotlib.figure import Figure

from ungrok.report.data import ReportData
from ungrok.report.figures import RC
from ungrok.report.phase import Sweep, panels, phase_point, value_label

CMAP = "RdBu"  # red: the prior wins at the rule's prompts (CM < 0); blue: the rule does
NO_CM = "#999999"


def phase_figure(data: ReportData, sweep: Sweep, rule: str) -> Figure:
    """The sweep's panels (panels() decides the layout), one colour scale for all of them."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    assert data.phase is not None
    pans = panels(sweep)
    points = {c: phase_point(data, c, rule) for c in sweep.points}
    cms = [abs(p.mean_cm) for p in points.values() if p.mean_cm is not None]
    top = max(cms, default=0.0) or 1.0
    norm = Normalize(-top, top)  # symmetric: white is CM_final = 0
    cmap = matplotlib.colormaps[CMAP]
    xs = sweep.values(sweep.knobs[0])
    ys = sweep.values(sweep.knobs[1]) if len(sweep.knobs) > 1 else [None]
    ncols = min(3, len(pans))
    nrows = -(-len(pans) // ncols)
    width, height = max(3.0, 0.85 * len(xs) + 1.3), (1.9 if len(ys) == 1 else 0.8 * len(ys) + 1.3)
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width * ncols + 1.2, height * nrows + 0.7), layout="constrained")
        grid = fig.subplots(nrows, ncols, squeeze=False)
        axes = [ax for row in grid for ax in row]
        for ax in axes[len(pans) :]:
            ax.set_visible(False)
        for i, (ax, pan) in enumerate(zip(axes, pans, strict=False)):
            ax.set_gid(f"panel/{i}")
            for cell in pan.cells:
                pt, at = points[cell], sweep.points[cell]
                x = xs.index(at[pan.x])
                y = ys.index(at[pan.y]) if pan.y is not None else 0
                if pt.mean_cm is None:
                    ax.scatter([x], [y], s=150, facecolors="none", edgecolors=NO_CM, zorder=3, gid=f"point/{cell}")
                else:
                    ax.scatter([x], [y], s=150, c=[pt.mean_cm], cmap=cmap, norm=norm, edgecolors="#333333",
                               linewidths=0.6, zorder=3, gid=f"point/{cell}")
                ax.annotate(pt.letters, (x, y), xytext=(0, 9), textcoords="offset points", ha="center", va="bottom",
                            family="monospace", weight="bold", gid=f"letters/{cell}")
                if pt.ratio is not None:
                    ax.annotate(f"{data.phase.ratio} {pt.ratio:.3g}", (x, y), xytext=(0, -9),
                                textcoords="offset points", ha="center", va="top", fontsize=7, color="#444444",
                                gid=f"ratio/{cell}")
            ax.set_xticks(range(len(xs)), [value_label(v) for v in xs])
            ax.set_xlim(-0.6, len(xs) - 0.4)
            ax.set_xlabel(pan.x)
            if pan.y is None:
                ax.set_yticks([])
                ax.set_ylim(-1.0, 1.0)
                ax.spines["left"].set_visible(False)
            else:
                ax.set_yticks(range(len(ys)), [value_label(v) for v in ys])
                ax.set_ylim(-0.6, len(ys) - 0.4)
                ax.set_ylabel(pan.y)
            if pan.title:
                ax.set_title(pan.title)
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes[: len(pans)], shrink=0.9)
        bar.set_label("mean CM_final (nats)")
        bar.ax.set_gid("colorbar")
        fig.suptitle(f"sweep {sweep.name}: {rule}", fontsize=10)
    return fig
