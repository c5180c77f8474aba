"""Benchmark: today's scorer against the scorer of an earlier commit, in one process, same input.

Issue 19 asks for rvp3.1 scoring on paper-11.5m at twice the items/s of the scorer it was
filed against (commit 9ba0388, fp32). Timing two checkouts one after the other on a shared
machine moves by 2x between runs, so this loads both into one process: the old `src/ungrok`
is extracted with `git archive` into a temporary folder as package `ungrok_old` (its
`ungrok.` imports renamed), both score the paper's battery with the same random weights, and
the rounds alternate old fp32 / new fp32 / new bf16 / new bf16 compiled (compiled once before
the rounds, its one-time cost printed), so each round's ratio compares runs seconds apart. It
first checks that old and new fp32 give the same margins and prints the largest bf16 margin
differences.

    .venv/bin/python bench/scoring_history.py [--rev 9ba0388] [--rounds 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scoring import REFERENCE, random_model
from ungrok.probes.battery import load_battery
from ungrok.probes.models import GPTLogits, TokenizerFile
from ungrok.probes.score import BatteryPlan

ROOT = Path(__file__).resolve().parents[1]
NOW = ("now fp32", "now bf16", "now bf16 comp")


def extract_old(rev: str, into: Path) -> None:
    """`src/ungrok` at rev as package `ungrok_old` under `into`, its self-imports renamed."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src/ungrok"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    pkg = into / "ungrok_old"
    (into / "src" / "ungrok").rename(pkg)
    for f in pkg.rglob("*.py"):
        text = f.read_text(encoding="utf-8")
        f.write_text(re.sub(r"\bungrok(?=[.\s])", "ungrok_old", text), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="9ba0388", help="the earlier commit (default: issue 19's filing)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    battery_file = REFERENCE / "batteries/rvp3/battery.jsonl"
    tokenizer_file = REFERENCE / "tokenizers/tinystories-bpe8192.json"
    if not (battery_file.is_file() and tokenizer_file.is_file()):
        sys.exit(f"needs the paper's rvp3 battery and tokenizer under {REFERENCE}")
    with tempfile.TemporaryDirectory() as tmp:
        extract_old(args.rev, Path(tmp))
        sys.path.insert(0, tmp)
        old_model = importlib.import_module("ungrok_old.model")
        old_models = importlib.import_module("ungrok_old.probes.models")
        old_score = importlib.import_module("ungrok_old.probes.score")
        old_battery = importlib.import_module("ungrok_old.probes.battery")

        new = random_model("paper-11.5m")
        old = old_model.GPT(old_model.preset("paper-11.5m")).eval()
        old.load_state_dict(new.state_dict())
        old_plan = old_score.BatteryPlan(
            old_battery.load_battery(battery_file), old_models.TokenizerFile.load(tokenizer_file)
        )
        battery = load_battery(battery_file)
        plan = BatteryPlan(battery, TokenizerFile.load(tokenizer_file))
        scorers = {
            f"{args.rev} fp32": (old_plan, old_models.GPTLogits(old)),
            "now fp32": (plan, GPTLogits(new)),
            "now bf16": (plan, GPTLogits(new, "bf16")),
            "now bf16 comp": (plan, GPTLogits(new, "bf16", compile=True)),
        }
        t = time.perf_counter()
        plan.score(scorers["now bf16 comp"][1])
        print(f"compiled the bf16 forward in {time.perf_counter() - t:.0f} s (once per process)")
        base = old_plan.score(scorers[f"{args.rev} fp32"][1]).margin
        for name in NOW:
            diff = float(np.nanmax(np.abs(plan.score(scorers[name][1]).margin - base)))
            print(f"{name}: max |margin difference| against {args.rev} fp32 {diff:.3g} nats")
            if name == "now fp32" and diff > 1e-4:
                sys.exit(f"today's fp32 scorer and {args.rev}'s disagree by {diff} nats: not the same measure")
        times: dict[str, list[float]] = {name: [] for name in scorers}
        for _ in range(args.rounds):
            for name, (p, model) in scorers.items():
                t = time.perf_counter()
                p.score(model)
                times[name].append(time.perf_counter() - t)
    n = len(battery)
    print(f"rvp3.1 ({n:,} items), paper-11.5m, {args.threads} thread(s), {args.rounds} alternating rounds")
    for name, ts in times.items():
        print(f"  {name:14s} median {n / statistics.median(ts):8,.0f} items/s   best {n / min(ts):8,.0f}")
    old_ts = times[f"{args.rev} fp32"]
    for name in NOW:
        ratios = [a / b for a, b in zip(old_ts, times[name], strict=True)]
        print(f"  {name} / {args.rev} fp32 per round: median {statistics.median(ratios):.2f}x "
              f"(range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
