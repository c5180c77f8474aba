"""Tune the live monitor's early-warning rule on finished runs: a grid over `WatchConfig`.

Every config of the grid replays the recorded raw readings of the tuning folders
(`ungrok.train.watch.replay`, as bench/monitor.py does) and is scored as a classifier of the
final DISPLACED verdict. The chosen config is the most precise one whose recall and median
lead share reach the targets (issue 15: recall >= 0.9, lead >= 10% of the run); ties go to
the longer lead, then to the earlier grid point. It is written as a watch JSON for
`bench/monitor.py --config`, to be read once on held-out folders it never saw.

    .venv/bin/python bench/monitor_search.py runs/monitor-tune --out watch-candidate.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from monitor import folder_runs
from ungrok.fate.warning import score
from ungrok.fate.watch_config import DEFAULT_WATCH, WatchConfig

GRID: dict[str, list] = {  # 128 points: a replay costs ~50 ms per run, so the grid stays small
    "emerged_thr": [0.8, 0.9],
    "level_thr": [0.5, 0.55, 0.6, 0.65],
    "drop_thr": [0.0, 0.2],
    "agree_min": [0.0, 0.9],
    "sustain": [2, 3, 4, 5],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tune", nargs="+", type=Path, help="finished `ungrok run` folders to tune on")
    ap.add_argument("--out", type=Path, required=True, help="where to write the chosen watch JSON")
    ap.add_argument("--min-recall", type=float, default=0.9)
    ap.add_argument("--min-lead", type=float, default=0.10)
    args = ap.parse_args(argv)
    keys = list(GRID)
    best = None
    for n, values in enumerate(itertools.product(*GRID.values())):
        cfg = WatchConfig(**{**DEFAULT_WATCH.model_dump(), **dict(zip(keys, values, strict=True))})
        skipped: list[str] = []
        s = score(r for folder in args.tune for _, _, r in folder_runs(folder, skipped, cfg))
        if s.precision is None or s.recall is None or s.median_lead_share is None:
            continue
        if s.recall < args.min_recall or s.median_lead_share < args.min_lead:
            continue
        key = (s.precision, s.median_lead_share, -n)
        if best is None or key > best[0]:
            best = (key, cfg, s)
    if best is None:
        print(f"no config of the {len(list(itertools.product(*GRID.values())))}-point grid reaches recall "
              f">= {args.min_recall} with a median lead >= {args.min_lead:.0%}")  # fmt: skip
        return 1
    _, cfg, s = best
    print(f"chosen: precision {s.precision:.3f}, recall {s.recall:.3f}, median lead {s.median_lead_share:.1%} "
          f"(TP {s.tp}, FP {s.fp}, FN {s.fn}, TN {s.tn}); sha256 {cfg.sha256()[:16]}")  # fmt: skip
    print(json.dumps({k: getattr(cfg, k) for k in keys}))
    args.out.write_text(json.dumps(cfg.model_dump(), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
