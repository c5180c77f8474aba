"""Is bf16 the same science? Two finished `ungrok run` folders of the same cells and seeds, compared.

Issue 19 asks that bf16 and fp32 runs of the same seed give the same verdicts, with final
loss and CM within a stated tolerance. This reads two run folders (say the demo in bf16
and `examples/precision-check.yaml` in fp32, trained on the same CPU) and prints, per cell
and over all (cell, seed, rule) records both hold: how many verdict letters are equal (the
letter carries the agree gate in its case), how many fates are equal ignoring the gate,
the focal rule's letters side by side, the largest final-loss difference (the last
logged step) and the largest CM_final difference (`ungrok.fate.margins.cm_summary`) per
rule with margins. It compares; it asserts nothing, because a run at a knife-edge can go
either way under any change of arithmetic (docs/training.md).

    .venv/bin/python bench/precision_check.py A_RUN B_RUN [--focal pronoun_gender_ref_v2]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from monitor_search import unfinished
from ungrok.fate.margins import cm_summary
from ungrok.train.rundir import read_jsonl


def records(run: Path) -> dict[tuple[str, int, str], dict]:
    """(cell, seed, family) -> fate record."""
    doc = json.loads((run / "fates.json").read_text(encoding="utf-8"))
    return {(r["cell"], int(r["seed"]), r["family"]): r for r in doc["records"]}


def final_loss(run: Path, cell: str, seed: int) -> float:
    return float(read_jsonl(run / "cells" / cell / f"seed{seed}" / "train_log.jsonl")[-1]["loss"])


def cm_finals(run: Path, cell: str, seed: int) -> dict[str, float]:
    """rule -> CM_final of one run's traj.margins.parquet ({} without one)."""
    path = run / "cells" / cell / f"seed{seed}" / "traj.margins.parquet"
    if not path.is_file():
        return {}
    t = pq.read_table(path).to_pandas()
    out = {}
    for rule, g in t.groupby("rule"):
        g = g.sort_values("step")
        out[str(rule)] = cm_summary(list(g.step), list(g.cm)).cm_final
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, help="one finished run folder (e.g. the bf16 demo)")
    ap.add_argument("b", type=Path, help="the other (e.g. the fp32 precision check)")
    ap.add_argument("--focal", default="pronoun_gender_ref_v2")
    args = ap.parse_args(argv)
    if (why := unfinished([args.a, args.b])) is not None:
        print(why, file=sys.stderr)
        return 2
    ra, rb = records(args.a), records(args.b)
    keys = sorted(set(ra) & set(rb))
    if not keys:
        print(f"{args.a} and {args.b} share no (cell, seed, rule) record", file=sys.stderr)
        return 2
    per_cell: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # records, letters equal, fates equal
    for k in keys:
        c = per_cell[k[0]]
        c[0] += 1
        c[1] += ra[k]["letter"] == rb[k]["letter"]
        c[2] += ra[k]["fate"] == rb[k]["fate"]
    runs = sorted({(k[0], k[1]) for k in keys})
    dloss, dcm = [], defaultdict(list)
    print(f"A {args.a}\nB {args.b}\n")
    print(f"{'cell':<18} {'records':>7} {'letters =':>9} {'fates =':>8}  {args.focal} A / B   final loss A / B   CM_final A / B")
    for cell in sorted(per_cell):
        n, same_letter, same_fate = per_cell[cell]
        seeds = [s for c, s in runs if c == cell]
        focal = " ".join(ra.get((cell, s, args.focal), {}).get("letter", "–") for s in seeds)
        focal_b = " ".join(rb.get((cell, s, args.focal), {}).get("letter", "–") for s in seeds)
        losses, cms = [], []
        for s in seeds:
            la, lb = final_loss(args.a, cell, s), final_loss(args.b, cell, s)
            dloss.append(abs(la - lb))
            losses.append(f"{la:.3f}/{lb:.3f}")
            ca, cb = cm_finals(args.a, cell, s), cm_finals(args.b, cell, s)
            for rule in set(ca) & set(cb):
                dcm[rule].append(abs(ca[rule] - cb[rule]))
            if args.focal in ca and args.focal in cb:
                cms.append(f"{ca[args.focal]:+.2f}/{cb[args.focal]:+.2f}")
        print(f"{cell:<18} {n:>7} {same_letter:>9} {same_fate:>8}  {focal:>7} / {focal_b:<7}  "
              f"{' '.join(losses)}  {' '.join(cms)}")
    n = len(keys)
    letters = sum(v[1] for v in per_cell.values())
    fates = sum(v[2] for v in per_cell.values())
    print(f"\nall: {n} records; letters equal {letters} ({letters / n:.0%}), fates equal ignoring the gate {fates} ({fates / n:.0%})")
    print(f"final loss: max |A - B| {max(dloss):.4f} nats over {len(dloss)} runs")
    for rule, d in sorted(dcm.items()):
        print(f"CM_final {rule}: max |A - B| {max(d):.2f} nats, median {sorted(d)[len(d) // 2]:.2f} over {len(d)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
