"""Tune the live monitor's early-warning rule on finished runs: a grid over `WatchConfig`.

Every config of the grid replays the recorded raw readings of each tuning folder
(`ungrok.train.watch.replay` without the per-probe verdict, which the warning flag never
reads) and is scored as a classifier of the final DISPLACED verdict, folder by folder: a
rule that reaches the targets on the pooled runs but not on each set of runs is not
robust, and the issue's targets are per held-out set. The chosen config is the one whose
lowest precision over the folders is highest among those that reach the recall and lead
targets on every folder; ties go to the longer lowest lead, then to the earlier grid
point. It is written as a watch JSON for `bench/monitor.py --config`, to be read once on
held-out folders it never saw. When no config reaches the targets on every folder, the
closest ones are printed and nothing is written (exit 1).

`--pooled` scores the runs of all folders as one set, as bench/monitor.py scores a held-out
set: a config qualifies when the pooled runs reach the three targets, and the chosen one is
the qualifying config that reaches them on the most folders, then has the highest pooled
precision, the highest lowest folder precision and the longest pooled lead. It is for
tuning sets that differ in what is hard on them (no single config reaches the targets on each
of the three sets the project holds), at the cost of letting one set fall short.

    .venv/bin/python bench/monitor_search.py runs/tune-a runs/tune-b --out watch-candidate.json
    .venv/bin/python bench/monitor_search.py runs/dense-tune --grid dense --out dense-candidate.json

`--grid dense` is the grid for runs probed every 10 steps (examples/monitor-study/dense-*.yaml):
the same levels, with windows and sustains five times as many probes long, and the emergence
smoothing too; `--grid dense-long` extends it to sustains of 200 to 300 steps and `--grid
dense-wide` to emergence smoothed over 150 steps. `--every N` reads only the readings at steps
divisible by N (bench/monitor.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path

from monitor import folder_runs
from ungrok.atomic import write_text
from ungrok.executor import PoolExecutor, or_raise
from ungrok.fate.warning import WarningRun, score
from ungrok.fate.watch_config import DEFAULT_WATCH, WatchConfig

GRIDS: dict[str, dict[str, list]] = {
    "default": {  # 900 points, about 0.3 s each over three 24-run folders probed every 50 steps
        "emerged_thr": [0.8, 0.9],
        "level_window": [1, 2, 3],
        "level_thr": [0.5, 0.55, 0.6, 0.65, 0.7],
        "drop_thr": [0.0, 0.2, 0.3],
        "agree_min": [0.0, 0.9],
        "sustain": [2, 3, 4, 5, 6],
    },
    "dense": {  # 600 points for runs probed every 10 steps: windows of 10 to 160 steps
        "emerged_thr": [0.8, 0.9],
        "smooth_k": [3, 5],
        "level_window": [1, 3, 5],
        "level_thr": [0.5, 0.55, 0.6, 0.65, 0.7],
        "drop_thr": [0.0, 0.2],
        "sustain": [3, 5, 8, 12, 16],
    },
    "dense-long": {  # 108 points, added after "dense" found nothing: sustains of 200 to 300 steps
        "emerged_thr": [0.8, 0.9],
        "smooth_k": [3, 5],
        "level_window": [1, 5, 10],
        "level_thr": [0.6, 0.65, 0.7],
        "sustain": [20, 25, 30],
    },
    "dense-wide": {  # 180 points, added after both: emergence smoothed over up to 150 steps (k 15)
        "emerged_thr": [0.8, 0.9],
        "smooth_k": [5, 15],
        "level_window": [1, 5, 10],
        "level_thr": [0.6, 0.65, 0.7],
        "sustain": [5, 10, 15, 20, 25],
    },
}
Figures = tuple[float | None, float | None, float | None, int, int, int]  # P, R, lead, TP, FP, FN


def grid_configs(grid: dict[str, list]) -> list[WatchConfig]:
    """Every grid point as a full config (the shipped values for the fields not searched)."""
    keys = list(grid)
    return [WatchConfig(**{**DEFAULT_WATCH.model_dump(), **dict(zip(keys, v, strict=True))})
            for v in itertools.product(*grid.values())]


def figures_of(runs: list[WarningRun]) -> Figures:
    s = score(runs)
    return (s.precision, s.recall, s.median_lead_share, s.tp, s.fp, s.fn)


def unfinished(folders: list[Path]) -> str | None:
    """The line to print for the first folder that is not a finished `ungrok run` folder."""
    for f in folders:
        if not (f / "fates.json").is_file():
            return f"{f}: no fates.json; not a finished `ungrok run` folder"
    return None


def score_in_chunks(
    fn: Callable, folders: list[str], points: list, size: int, workers: int, every: int = 1
) -> list[list[Figures]]:
    """fn((i, folders, chunk, every)) over `size`-point chunks on a process pool; per point, per
    folder figures, in the points' order."""
    chunks = [points[i : i + size] for i in range(0, len(points), size)]
    tasks = [(i, folders, c, every) for i, c in enumerate(chunks)]
    got = {t[0]: r for t, r in or_raise(PoolExecutor(workers, threads=1).map(fn, tasks))}
    return [f for i in range(len(chunks)) for f in got[i]]


def score_chunk(task: tuple[int, list[str], list[dict], int]) -> list[list[Figures]]:
    """Per config of the chunk, per folder and then over the folders' runs pooled (last):
    (precision, recall, median lead share, TP, FP, FN)."""
    _, folders, configs, every = task
    out = []
    for data in configs:
        cfg = WatchConfig(**data)
        runs = [[r for _, _, r in folder_runs(Path(f), [], cfg, verdicts=False, every=every)] for f in folders]
        out.append([figures_of(rs) for rs in runs] + [figures_of([r for rs in runs for r in rs])])
    return out


def meets(f: Figures, min_precision: float, min_recall: float, min_lead: float) -> bool:
    p, r, lead = f[:3]
    return (
        p is not None
        and r is not None
        and lead is not None
        and p >= min_precision
        and r >= min_recall
        and lead >= min_lead
    )


def fmt_figures(f: Figures) -> str:
    p, r, lead, tp, fp, fn = f
    show = lambda x, pct=False: "–" if x is None else (f"{100 * x:.1f}%" if pct else f"{x:.2f}")  # noqa: E731
    return f"P {show(p)} R {show(r)} lead {show(lead, True)} (TP {tp} FP {fp} FN {fn})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "tune", nargs="+", type=Path, help="finished `ungrok run` folders, each scored on its own"
    )
    ap.add_argument("--out", type=Path, required=True, help="where to write the chosen watch JSON")
    ap.add_argument("--min-precision", type=float, default=0.8)
    ap.add_argument("--min-recall", type=float, default=0.9)
    ap.add_argument("--min-lead", type=float, default=0.10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--show", type=int, default=5, help="closest configs to print when none qualifies")
    ap.add_argument("--grid", choices=sorted(GRIDS), default="default", help="which grid of WatchConfig to search")
    ap.add_argument("--every", type=int, default=1, metavar="N", help="read only the readings at steps divisible by N")
    ap.add_argument("--pooled", action="store_true", help="choose by the targets on all folders' runs pooled")
    args = ap.parse_args(argv)
    if args.every < 1:
        ap.error(f"--every must be at least 1, not {args.every}")
    if (why := unfinished(args.tune)) is not None:
        print(why, file=sys.stderr)
        return 2
    grid = GRIDS[args.grid]
    configs = grid_configs(grid)
    folders = [str(f) for f in args.tune]
    figures = score_in_chunks(score_chunk, folders, [c.model_dump() for c in configs], 25, args.workers, args.every)
    targets = (args.min_precision, args.min_recall, args.min_lead)
    ranked = []
    for n, (cfg, figs) in enumerate(zip(configs, figures, strict=True)):
        per, pooled = figs[:-1], figs[-1]
        n_ok = sum(meets(f, *targets) for f in per)
        low_p = min((f[0] or 0.0) for f in per)
        if args.pooled:
            lead = pooled[2] if pooled[2] is not None else -1.0  # a lead of 0.0 ranks above a negative one
            key = (meets(pooled, *targets), n_ok, pooled[0] or 0.0, low_p, lead, -n)
        else:
            ok_rl = all(meets(f, 0.0, args.min_recall, args.min_lead) for f in per)
            low_lead = min((f[2] if f[2] is not None else -1.0) for f in per)
            key = (ok_rl, n_ok, low_p, low_lead, -n)
        ranked.append((key, n_ok, low_p, cfg, figs))
    ranked.sort(key=lambda x: x[0], reverse=True)
    keys = list(grid)
    names = [*folders, "pooled"]
    where = "on all folders' runs pooled" if args.pooled else "on every folder"
    print(f"{len(configs)} configs x {len(folders)} folders; targets: precision >= {args.min_precision}, "
          f"recall >= {args.min_recall}, median lead >= {args.min_lead:.0%} {where}")
    key, n_ok, _, cfg, figs = ranked[0]
    if (key[0] if args.pooled else n_ok == len(folders)):
        print(f"chosen: sha256 {cfg.sha256()[:16]} {json.dumps({k: getattr(cfg, k) for k in keys})}")
        for f, fig in zip(names, figs, strict=True):
            print(f"  {f}: {fmt_figures(fig)}")
        write_text(args.out, json.dumps(cfg.model_dump(), indent=2) + "\n")  # atomic
        return 0
    order = ("the pooled targets first" if args.pooled else "recall and lead met on every folder first")
    print(f"no config reaches the targets {where}; the closest, ranked as the chosen one would be "
          f"({order}, then folders meeting all targets, precision):")
    for _, n_ok, low_p, cfg, figs in ranked[: args.show]:
        print(
            f"  {n_ok}/{len(folders)} folders, lowest precision {low_p:.2f}: {json.dumps({k: getattr(cfg, k) for k in keys})}"
        )
        for f, fig in zip(names, figs, strict=True):
            print(f"      {f}: {fmt_figures(fig)}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
