"""Benchmark: the live monitor's early displacement warning as a classifier of the final verdicts.

Reads finished `ungrok run` folders (RUN/fates.json and RUN/cells/<CELL>/seed<S>/monitor.jsonl),
replays every rule's recorded raw readings under the warning rule (`WatchConfig`: the package's
watch.json, or --config FILE) with `ungrok.train.watch.replay`, and prints, per rule family and
over every run, how well the warning foretold a DISPLACED verdict: true positives, false
alarms, misses, precision, recall and the median lead share (collapse step - first warning
step, over the run's steps) of the true positives. Tuning folders (positional) and held-out
folders (--held-out) are scored and printed apart, and the rule's sha256 is printed with them,
so a figure always names the rule and the runs it was measured on.
Definitions: `ungrok.fate.warning`. A run is scored when its agree gate passed and the monitor
watched its rule; a folder without fates.json, and a monitor log without a fate record, are
skipped and listed.

    .venv/bin/python bench/monitor.py TUNE [TUNE ...] [--held-out RUN ...] [--config FILE] [--runs]
    .venv/bin/python bench/monitor.py /tmp/wave9/out /tmp/prof/out --held-out demo-out/run

--recorded scores the warnings as the live monitor logged them instead of replaying them.
--every N keeps only the readings at steps divisible by N: a run probed every 10 steps is then
read as if it had been probed every N (the probe only reads the model, so the run is the same).
--runs also lists every run that warned or ended DISPLACED, with its steps and outcome.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

from ungrok.errors import UngrokError
from ungrok.fate.warning import WarningRun, WarningScore, assess, rule_states, rule_warning, score
from ungrok.fate.watch_config import WatchConfig, load_watch_config
from ungrok.train.watch import replay


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every JSON object line of a monitor.jsonl (unreadable lines are skipped). A grid search
    replays the same logs under hundreds of configs, so a file is parsed once per process
    while its size and mtime stay the same; callers only read the rows."""
    st = path.stat()
    return _parsed_rows(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=512)
def _parsed_rows(path: str, mtime_ns: int, size: int) -> list[dict[str, Any]]:
    rows = []
    for text in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(text) if text.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def replayed_rows(rows: list[dict[str, Any]], cfg: WatchConfig, verdicts: bool = True) -> list[dict[str, Any]]:
    """The monitor rows as the live monitor would have written them under `cfg` (states and flags;
    without `verdicts` the states skip the classifier, the warning flags are the same)."""
    by_step: dict[int, dict[str, Any]] = {}
    for rule, probes in replay(rows, cfg, verdicts=verdicts).items():
        for p in probes:
            by_step.setdefault(p["step"], {"step": p["step"], "rules": {}})["rules"][rule] = p
    return [by_step[s] for s in sorted(by_step)]


def folder_runs(
    run: Path, skipped: list[str], cfg: WatchConfig | None, verdicts: bool = True, every: int = 1
) -> list[tuple[str, str, WarningRun]]:
    """(family, "RUN cell/seedS", warning run) for every fate record of one run folder, the
    warnings replayed under `cfg` (None: as recorded) from the readings at steps divisible by
    `every`; what it skips goes to `skipped`."""
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
        rows = [r for r in read_rows(path) if int(r.get("step", 0)) % every == 0] if path.is_file() else []
        if not rows:
            skipped.append(f"{run}: {cell}/seed{seed} has fate records but no monitor.jsonl lines")
        if cfg is not None:
            rows = replayed_rows(rows, cfg, verdicts)
        for r in recs:
            fam = str(r["family"])
            got = assess(rule_states(rows, fam), r, warning=rule_warning(rows, fam))
            out.append((fam, f"{run} {cell}/seed{seed}", got))
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
            f"{s.gate_failed:>9} {s.unmonitored:>9}")


def report(
    title: str, folders: list[Path], cfg: WatchConfig | None, detail: bool, every: int = 1
) -> WarningScore | None:
    """Print one set of folders' table; the overall score, or None when nothing could be scored."""
    skipped: list[str] = []
    runs: list[tuple[str, str, WarningRun]] = []
    used = []
    for folder in folders:
        got = folder_runs(folder, skipped, cfg, every=every)
        if got:
            used.append(f"{folder} ({len(got)} records)")
        runs += got
    print(f"== {title}: " + (", ".join(used) if used else "none read"))
    for line in skipped:
        print(f"  skipped: {line}")
    if not runs:
        print("nothing to score")
        return None
    head = (f"{'family':<24} {'scored':>6} {'DISPL':>5} {'warned':>6} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4} "
            f"{'precision':>9} {'recall':>7} {'median lead':>12} {'n':>3} {'gate fail':>9} {'unwatched':>9}")
    print(head)
    print("-" * len(head))
    fams: dict[str, list[WarningRun]] = {}
    for fam, _, r in runs:
        fams.setdefault(fam, []).append(r)
    for fam in sorted(fams):
        print(row(fam, score(fams[fam])))
    print("-" * len(head))
    overall = score(r for _, _, r in runs)
    print(row("overall", overall))
    if detail:
        print()
        for fam, where, r in sorted(runs, key=lambda x: x[:2]):
            if r.warned or r.positive:
                print(f"{fam:<24} {where:<40} {r.fate:<10} gate {'pass' if r.gate_passed else 'fail'} "
                      f"warning {r.warning} collapse {r.collapse} lead {r.lead} ({_f(r.lead_share, pct=True)}) "
                      f"{r.outcome or 'not scored'}")
    print()
    return overall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", type=Path, help="finished `ungrok run` folders the rule was tuned on")
    ap.add_argument("--held-out", nargs="+", type=Path, default=[], metavar="RUN",
                    help="finished `ungrok run` folders the rule was NOT tuned on, scored apart")
    ap.add_argument("--config", type=Path, help="a WatchConfig JSON file (default: the package's watch.json)")
    ap.add_argument("--recorded", action="store_true", help="score the warnings as logged, without replaying")
    ap.add_argument(
        "--runs", dest="detail", action="store_true", help="list the runs that warned or ended DISPLACED"
    )
    ap.add_argument("--every", type=int, default=1, metavar="N",
                    help="read only the readings at steps divisible by N (a sparser probe cadence, same runs)")
    args = ap.parse_args(argv)
    if args.every < 1:
        ap.error(f"--every must be at least 1, not {args.every}")
    if args.recorded and args.every != 1:
        ap.error("--every replays the warnings; it cannot be combined with --recorded")
    if not args.runs and not args.held_out:
        ap.error("give at least one run folder (tuning) or --held-out folder")
    try:
        cfg = load_watch_config(args.config)
    except UngrokError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.recorded:
        print(
            "warning rule: as recorded in each monitor.jsonl (watch_sha256 per line; older logs: legacy rule)"
        )
    else:
        print(f"warning rule: WatchConfig sha256 {cfg.sha256()} ({args.config or 'package watch.json'})")
        print(f"  {cfg.canonical_json()}")
        if args.every > 1:
            print(f"  read at the steps divisible by {args.every} only")
    print()
    scored = []
    if args.runs:
        scored.append(report("tuning folders", args.runs, None if args.recorded else cfg, args.detail, args.every))
    if args.held_out:
        scored.append(
            report("held-out folders", args.held_out, None if args.recorded else cfg, args.detail, args.every)
        )
    print("median lead: (collapse step - first warning step) / run steps over the true positives with a "
          "collapse step (n); negative = the warning came after the collapse.")
    return 0 if any(s is not None for s in scored) else 1


if __name__ == "__main__":
    sys.exit(main())
