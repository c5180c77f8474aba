"""The hub section's figure: held-out accuracy per model on a symlog revision-step axis (the
paper's Figure 3), one colour per model along a sequential palette ordered by size. Same
canvas, style and `gid` conventions as figures.py: "conflict/<model>", "agree/<model>",
"cm/<model>".
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ungrok.report.figures import AGREE_COLOR, RC, _legend, graded, legend_columns
from ungrok.report.hub import HubData, fmt_params, short_name


def size_colors(hub: HubData) -> dict[str, str]:
    """One colour per model along a sequential palette, dark = smallest."""
    return dict(zip(hub.models, graded("viridis", len(hub.models), 0.0, 0.85), strict=True))


def hub_figure(hub: HubData, family: str) -> Figure | None:
    """Held-out conflict (solid) and agree (dashed) accuracy per model on a symlog step axis,
    and the model's CM for the rule when the suite scored margins."""
    models = [m for m in hub.models if (m, family) in hub.conflict]
    if not models:
        return None
    with_cm = [m for m in hub.models if (m, family) in hub.margins]
    colors = size_colors(hub)
    cfg = hub.classifier
    import matplotlib

    with matplotlib.rc_context(RC):
        n = 2 if with_cm else 1
        fig = Figure(figsize=(4.8 * n + 0.4, 3.6), layout="constrained")
        axes = list(fig.subplots(1, n, squeeze=False)[0])
        ax = axes[0]
        ax.axvspan(0, cfg.min_step, color="#eeeeee", lw=0, zorder=0, gid="below_min_step")
        for model in models:
            label = f"{short_name(model)} ({fmt_params(hub.models[model].n_params)})"
            c = hub.conflict[(model, family)]
            ax.plot(c.steps, c.values, color=colors[model], lw=1.3, marker=".", ms=3, label=label,
                    gid=f"conflict/{model}")
            a = hub.agree.get((model, family))
            if a is not None:
                ax.plot(a.steps, a.values, color=colors[model], lw=1.0, ls="--", gid=f"agree/{model}")
        ax.axhline(cfg.recovered_thr, color="#999999", lw=0.6, ls=":")
        ax.axhline(cfg.displaced_thr, color="#999999", lw=0.6, ls=":")
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("held-out accuracy")
        ax.set_title("conflict (solid), agree (dashed)")
        if with_cm:
            cx = axes[1]
            cx.axhline(0.0, color="#999999", lw=0.7)
            for model in with_cm:
                mc = hub.margins[(model, family)]
                cx.plot(mc.steps, mc.cm, color=colors[model], lw=1.3, marker=".", ms=3, gid=f"cm/{model}")
            cx.set_ylabel("CM (nats)")
            cx.set_title("contrast margin CM")
        for a_ in axes:
            a_.set_xscale("symlog", linthresh=1, linscale=0.5)
            a_.set_xlim(left=0)
            a_.set_xlabel("revision step (symlog: 0, then log from 1)")
        _legend(fig, axes, (
            Line2D([], [], color=AGREE_COLOR, lw=1.3, label="conflict"),
            Line2D([], [], color=AGREE_COLOR, lw=1.0, ls="--", label="agree control"),
        ), ncols_max=legend_columns(fig, 2.0))
        fig.suptitle(f"{family}: public checkpoints, coloured by model size", fontsize=10)
    return fig
