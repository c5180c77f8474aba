"""Exploratory: early-warning triggers outside `WatchConfig`, scored as monitor_search scores its grid.

The live monitor warns from held-out conflict accuracy alone (`WatchConfig`). This asks
whether other readings the monitor could take would do better, folder by folder, on
finished `ungrok run` folders. It replays every (cell, seed, rule) from the checkpoint
scores in traj.parquet (the monitor's own readings are these same numbers; checked: equal
at every probe of the demo's runs) and tries three families:

- ``level``: the monitor's rule, on held-out conflict accuracy (``h``) or on the mean of
  the held-out and train conflict splits (``p``, twice the items), or'ed / and'ed with
  ``smoothed mean conflict margin <= mthr`` (``margin`` alone, ``or``, ``and``);
- ``drop``: smoothed accuracy at least ``drop`` below its best, falling (least-squares
  slope over the last ``w`` raw readings below ``slope``) and at most ``cap``;
- ``ci``: the mean of the last ``window`` raw readings plus ``z`` binomial standard errors
  (the battery's item count times the window; variance floored at 0.05) at most ``level``:
  a large battery may warn after one low probe, a 12-item one needs a deep or long fall.
- ``mdrop``: the smoothed mean conflict margin (continuous, so less noisy than accuracy on a
  12-item battery, and it shrinks while the items still sit on the rule's side) at least
  ``d`` nats below its best since emergence (``kind`` abs), or below ``frac`` of that best
  (``kind`` rel), while the smoothed accuracy is at most ``cap``.

Emergence, smoothing and sustain follow `WatchConfig` (probes before step 100 ignored,
centred mean of 3). Scores: `ungrok.fate.warning`. Nothing here is shipped; it reports
which family, if any, reaches precision >= 0.8, recall >= 0.9 and a median lead >= 10% on
every folder.

    .venv/bin/python bench/monitor_signals.py RUN [RUN ...] [--workers 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from functools import cache
from pathlib import Path

import pyarrow.parquet as pq

from monitor_search import Figures, figures_of, fmt_figures, meets, score_in_chunks, unfinished
from ungrok.fate.classify import smooth
from ungrok.fate.warning import assess
from ungrok.train.watch import least_squares_slope

LEVEL = dict(src=["h", "p"], emerged=[0.8, 0.9], level=[0.5, 0.55, 0.6, 0.65, 0.7], window=[1, 2],
             mode=["acc", "margin", "and", "or"], mthr=[0.0, -0.25, 0.25], sustain=[2, 3, 4, 5, 6])
DROP = dict(src=["h", "p"], emerged=[0.8, 0.9], drop=[0.1, 0.15, 0.2, 0.3], w=[3, 5], slope=[0.0, -0.02],
            cap=[0.7, 0.8, 1.0], sustain=[1, 2, 3, 4])
CI = dict(src=["h", "p"], emerged=[0.8, 0.9], level=[0.5, 0.6, 0.7, 0.8], z=[1.0, 1.5, 2.0, 2.5], window=[1, 2, 3],
          sustain=[1, 2, 3])
MDROP = dict(src=["h", "p"], emerged=[0.8, 0.9], kind=["abs", "rel"], d=[0.5, 1.0, 1.5, 2.0, 3.0],
             frac=[0.25, 0.5, 0.75], cap=[1.0, 0.9, 0.8], sustain=[1, 2, 3, 4])
Series = tuple[dict, list[int], list[float], list[float], int]  # record, steps, accuracy, mean margin, items


def points() -> list[dict]:
    """Every trigger tried; `level` points that ignore a knob appear once."""
    out = []
    for fam, grid in (("level", LEVEL), ("drop", DROP), ("ci", CI), ("mdrop", MDROP)):
        for v in itertools.product(*grid.values()):
            p = {"family": fam, **dict(zip(grid, v, strict=True))}
            if fam == "level" and p["mode"] == "acc" and p["mthr"] != 0.0:
                continue
            if fam == "level" and p["mode"] == "margin" and (p["level"] != 0.5 or p["window"] != 1):
                continue
            if fam == "mdrop" and (p["frac"] != 0.5 if p["kind"] == "abs" else p["d"] != 1.0):
                continue
            out.append(p)
    return out


@cache
def runs(folder: str, src: str) -> list[Series]:
    """Per fate record: the conflict accuracy and mean margin per checkpoint, held-out or pooled."""
    root = Path(folder)
    records = json.loads((root / "fates.json").read_text(encoding="utf-8"))["records"]
    tables: dict[tuple[str, int], object] = {}
    out = []
    for r in records:
        key = (r["cell"], int(r["seed"]))
        if key not in tables:
            tables[key] = pq.read_table(
                root / "cells" / key[0] / f"seed{key[1]}" / "traj.parquet"
            ).to_pandas()
        t = tables[key]
        t = t[(t.family == r["family"]) & (t.condition == "conflict")]
        splits = ["heldout"] if src == "h" else ["heldout", "train"]
        cols = [t[t.split == s].sort_values("step") for s in splits]
        if any(len(c) != len(cols[0]) for c in cols):
            cols = cols[:1]
        acc = [sum(x) / len(cols) for x in zip(*(c.accuracy for c in cols), strict=True)]
        mar = [sum(x) / len(cols) for x in zip(*(c.mean_margin for c in cols), strict=True)]
        items = int(sum(int(c.n_items.max()) for c in cols))
        out.append((r, [int(s) for s in cols[0].step], acc, mar, items))
    return out


def first_warning(steps: list[int], acc: list[float], mar: list[float], items: int, p: dict) -> int | None:
    """The first step at which the trigger has held at `sustain` consecutive probes."""
    kept_a: list[float] = []
    kept_m: list[float] = []
    held = 0
    best_m: float | None = None  # the smoothed margin's best since emergence (mdrop)
    for s, a, m in zip(steps, acc, mar, strict=True):
        if s >= 100:
            kept_a.append(a)
            kept_m.append(m)
        trig = False
        if kept_a and max(sm := smooth(kept_a, 3)) >= p["emerged"]:
            if p["family"] == "ci":  # the trailing mean's upper binomial bound below the level
                tail = kept_a[-p["window"] :]
                m = sum(tail) / len(tail)
                trig = m + p["z"] * (max(m * (1 - m), 0.05) / (items * len(tail))) ** 0.5 <= p["level"]
            elif p["family"] == "mdrop":
                sm_m = smooth(kept_m, 3)[-1]
                best_m = sm_m if best_m is None else max(best_m, sm_m)
                fell = best_m - sm_m >= p["d"] if p["kind"] == "abs" else sm_m <= p["frac"] * best_m
                trig = fell and sm[-1] <= p["cap"]
            elif p["family"] == "drop":
                trig = (max(sm) - sm[-1] >= p["drop"] and len(kept_a) >= p["w"]
                        and least_squares_slope(kept_a[-p["w"]:]) < p["slope"] and sm[-1] <= p["cap"])
            else:
                tail = kept_a[-p["window"] :]
                low = sum(tail) / len(tail) <= p["level"]
                neg = smooth(kept_m, 3)[-1] <= p["mthr"]
                trig = {"acc": low, "margin": neg, "and": low and neg, "or": low or neg}[p["mode"]]
        held = held + 1 if trig else 0
        if held >= p["sustain"]:
            return s
    return None


def score_chunk(task: tuple[int, list[str], list[dict], int]) -> list[list[Figures]]:
    _, folders, pts, _ = task  # every step is read (the last field, --every, is monitor_search's)
    out = []
    for p in pts:
        per = []
        for f in folders:
            got = []
            for r, steps, acc, mar, items in runs(f, p["src"]):
                states = [(s, "emerged") for s in steps]
                got.append(assess(states, r, warning=first_warning(steps, acc, mar, items, p)))
            per.append(figures_of(got))
        out.append(per)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "runs", nargs="+", type=Path, help="finished `ungrok run` folders, each scored on its own"
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--show", type=int, default=3, help="best triggers to print per family")
    ap.add_argument(
        "--family", choices=["level", "drop", "ci", "mdrop"], action="append", help="only these (default all)"
    )
    args = ap.parse_args(argv)
    if (why := unfinished(args.runs)) is not None:
        print(why, file=sys.stderr)
        return 2
    families = args.family or ["level", "drop", "ci", "mdrop"]
    pts, folders = [p for p in points() if p["family"] in families], [str(f) for f in args.runs]
    figures = score_in_chunks(score_chunk, folders, pts, 40, args.workers)
    print(
        f"{len(pts)} triggers x {len(folders)} folders; targets P >= 0.8, R >= 0.9, lead >= 10% on every folder"
    )
    any_ok = False
    for fam in families:
        ranked = sorted(((sum(meets(f, 0.8, 0.9, 0.10) for f in per), min((f[0] or 0.0) for f in per), p, per)
                         for p, per in zip(pts, figures, strict=True) if p["family"] == fam),
                        key=lambda x: (x[0], x[1]), reverse=True)
        any_ok |= ranked[0][0] == len(folders)
        for n_ok, low_p, p, per in ranked[: args.show]:
            print(f"{fam}: {n_ok}/{len(folders)} folders, lowest precision {low_p:.2f}: {json.dumps(p)}")
            for f, fig in zip(folders, per, strict=True):
                print(f"    {f}: {fmt_figures(fig)}")
    return 0 if any_ok else 1


if __name__ == "__main__":
    sys.exit(main())
