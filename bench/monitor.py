"""Benchmark: the live monitor's displacement warning as it is today, against the final verdicts.

Reads finished `ungrok run` folders (RUN/fates.json and RUN/cells/<CELL>/seed<S>/monitor.jsonl)
and prints, per rule family and over every run, how well the warning foretold a DISPLACED
verdict: true positives, false alarms, misses, precision, recall and the median lead share
(collapse step - first warning step, over the run's steps) of the true positives.
Definitions: `ungrok.fate.warning`. A run is scored when its agree gate passed and the monitor
watched its rule; a folder without fates.json, and a monitor log without a fate record, are
skipped and listed.

    .venv/bin/python bench/monitor.py RUN [RUN ...] [--runs]   # e.g. demo-out/run /tmp/pilot1

--runs also lists every run that warned or ended DISPLACED, with its steps and outcome.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ungrok.fate.warning import WarningRun, WarningScore, assess, rule_states, score
from ungrok.report.monitor import read_monitor_rows


def folder_runs(run: Path, skipped: list[str]) -> list[tuple[str, str, WarningRun]]:
    """(family, "RUN cell/seedS", warning run) for every fate record of one run folder; what it
    skips goes to `skipped`."""
    fates = run / "fates.json"
    if not fates.is_file():
        skipped.append(f"{run}: no fates.json (unfinished?); skipped")
        return []
    try:
        records = json.loads(fates.read_text(encoding="utf-8")).get("records") or []
    except (json.JSONDecodeError, AttributeError) as e:
        skipped.append(f"{run}: fates.json unreadable ({e}); skipped")
        return []
    by_run: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in records:
        if isinstance(r, dict) and {"cell", "seed", "family", "fate", "agree_gate"} <= set(r):
            by_run.setdefault((str(r["cell"]), int(r["seed"])), []).append(r)
    out = []
    for (cell, seed), recs in sorted(by_run.items()):
        path = run / "cells" / cell / f"seed{seed}" / "monitor.jsonl"
        rows = read_monitor_rows(path) if path.is_file() else []
        if not rows:
            skipped.append(f"{run}: {cell}/seed{seed} has fate records but no monitor.jsonl lines")
        for r in recs:
            out.append((str(r["family"]), f"{run} {cell}/seed{seed}", assess(rule_states(rows, str(r["family"])), r)))
    for path in sorted((run / "cells").glob("*/seed*/monitor.jsonl")):
        cell, seed = path.parent.parent.name, path.parent.name.removeprefix("seed")
        if not seed.isdigit() or (cell, int(seed)) not in by_run:
            skipped.append(f"{run}: {cell}/{path.parent.name} has a monitor log but no fate record; skipped")
    return out


def _f(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}%" if pct else f"{x:.2f}"


def row(name: str, s: WarningScore) -> str:
    return (f"{name:<24} {s.scored:>6} {s.positives:>5} {s.warned:>6} {s.tp:>4} {s.fp:>4} {s.fn:>4} {s.tn:>4} "
            f"{_f(s.precision):>9} {_f(s.recall):>7} {_f(s.median_lead_share, pct=True):>12} {s.leads:>3} "
            f"{s.gate_failed:>9} {s.unmonitored:>9}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="finished `ungrok run` output folders")
    ap.add_argument("--runs", dest="detail", action="store_true", help="list the runs that warned or ended DISPLACED")
    args = ap.parse_args(argv)
    skipped: list[str] = []
    runs: list[tuple[str, str, WarningRun]] = []
    used = []
    for folder in args.runs:
        got = folder_runs(folder, skipped)
        if got:
            used.append(f"{folder} ({len(got)} records)")
        runs += got
    print("runs read: " + (", ".join(used) if used else "none"))
    for line in skipped:
        print(f"  skipped: {line}")
    if not runs:
        print("nothing to score")
        return 1
    head = (f"{'family':<24} {'scored':>6} {'DISPL':>5} {'warned':>6} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4} "
            f"{'precision':>9} {'recall':>7} {'median lead':>12} {'n':>3} {'gate fail':>9} {'unwatched':>9}")  # fmt: skip
    print(head)
    print("-" * len(head))
    fams: dict[str, list[WarningRun]] = {}
    for fam, _, r in runs:
        fams.setdefault(fam, []).append(r)
    for fam in sorted(fams):
        print(row(fam, score(fams[fam])))
    print("-" * len(head))
    print(row("overall", score(r for _, _, r in runs)))
    if args.detail:
        print()
        for fam, where, r in sorted(runs, key=lambda x: x[:2]):
            if r.warned or r.positive:
                print(f"{fam:<24} {where:<40} {r.fate:<10} gate {'pass' if r.gate_passed else 'fail'} "
                      f"warning {r.warning} collapse {r.collapse} lead {r.lead} ({_f(r.lead_share, pct=True)}) "
                      f"{r.outcome or 'not scored'}")  # fmt: skip
    print("median lead: (collapse step - first warning step) / run steps over the true positives with a "
          "collapse step (n); negative = the warning came after the collapse.")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
