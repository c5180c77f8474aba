"""Benchmark: the hub suite over 20 revisions of a tiny model: seconds per revision and memory.

Builds a local hub cache (a random 4-layer, d 256 GPT-NeoX with the TinyStories 8,192-symbol
BPE as its tokenizer; 7.4M parameters, 29 MB of fp32 weights per revision, 20 revisions
with different weights), then scores the paper's rvp3.1 battery (2,516 items) and its
rules' margins on every revision three ways, each in a fresh interpreter so their
memory curves start alike:

- suite: `ungrok.hub.score_suite` offline, inline (one task per revision: load once,
  score, free: del + gc + malloc_trim; the store written after each task). Its RSS also
  holds the store it keeps in memory (per-item rows grow by 2,516 per revision) and
  pyarrow's one-time set-up on the first save;
- tasks: the suite's task function alone (`ungrok.hub.task.score_task`), no store: the
  memory of loading, scoring and freeing and nothing else;
- reassign: the usual loop `model, tok = load_hf(...)` then score, reassigning the
  names each time and freeing nothing explicitly;
- keep: the same loop keeping each model in a list (results that still hold the model,
  a cache, a notebook variable): the leak users report.

Prints seconds per revision and the RSS after each revision (the curve), and the ratio
of last-to-first RSS (1.0 = flat) for each, plus the suite's per-task peak RSS.

    .venv/bin/python bench/hub.py [--revisions 20] [--device cpu] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
MODEL = "bench/neox-tiny"
VARIANTS = ("suite", "tasks", "reassign", "keep")


def build_cache(root: Path, tokenizer: Path, n: int) -> list[str]:
    import torch
    import transformers
    from tokenizers import Tokenizer
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    from ungrok.hub.cache import add_to_cache

    transformers.utils.logging.disable_progress_bar()
    raw = Tokenizer.from_file(str(tokenizer))
    revisions = [f"step{1000 * (k + 1)}" for k in range(n)]
    cfg = GPTNeoXConfig(vocab_size=raw.get_vocab_size(), hidden_size=256, num_hidden_layers=4,
                        num_attention_heads=4, intermediate_size=1024, max_position_embeddings=128)
    for k, rev in enumerate(revisions):
        torch.manual_seed(k)
        files = root / "src" / rev
        GPTNeoXForCausalLM(cfg).eval().save_pretrained(files)
        PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>").save_pretrained(files)
        add_to_cache(root / "cache", MODEL, rev, files)
    return revisions


def run_suite(args: argparse.Namespace) -> dict:
    from ungrok.hub.memory import rss_mib
    from ungrok.hub.suite import score_suite

    start = rss_mib()
    t0 = time.perf_counter()
    s = score_suite([MODEL], args.revisions_list, args.battery, args.out, device=args.device, offline=True,
                    progress=False)
    wall = time.perf_counter() - t0
    revs = json.loads((args.out / "suite.json").read_text())["models"][MODEL]["revisions"]
    assert s.scored == len(revs), s.lines()
    return {"start": start, "seconds": [r["seconds"] for r in revs], "rss": [r["rss_after_mib"] for r in revs],
            "peak": [r["peak_rss_mib"] for r in revs], "gpu": [r["peak_gpu_mib"] for r in revs],
            "wall_per_revision": wall / len(revs)}


def run_tasks(args: argparse.Namespace) -> dict:
    from ungrok.hub.memory import rss_mib
    from ungrok.hub.task import SuiteTask, score_task
    from ungrok.probes.battery import load_battery
    from ungrok.probes.margins import margin_rules

    battery = load_battery(args.battery)
    prompt_sets = tuple(margin_rules(battery.families, None))
    start = rss_mib()
    results = []
    cpu = []
    for rev in args.revisions_list:
        job = SuiteTask(
            MODEL, rev, 0, battery, prompt_sets, device=args.device, hub_env=(("HF_HUB_OFFLINE", "1"),)
        )
        c0 = time.process_time()
        res = score_task(job)
        cpu.append(time.process_time() - c0)
        assert res.status == "scored", res.why
        results.append(res)
    return {"cpu": cpu, "start": start, "seconds": [r.seconds for r in results], "rss": [r.rss_after_mib for r in results],
            "peak": [r.peak_rss_mib for r in results], "gpu": [r.peak_gpu_mib for r in results],
            "wall_per_revision": sum(r.seconds for r in results) / len(results)}


def run_loop(args: argparse.Namespace, keep: bool) -> dict:
    import torch

    from ungrok.hub.cache import hub_env
    from ungrok.hub.memory import rss_mib
    from ungrok.probes.battery import load_battery
    from ungrok.probes.margins import MarginPlan, margin_rules
    from ungrok.probes.models import load_hf
    from ungrok.probes.score import BatteryPlan

    battery = load_battery(args.battery)
    prompt_sets = margin_rules(battery.families, None)
    start = rss_mib()
    kept, seconds, rss, gpu, cpu = [], [], [], [], []
    with hub_env({"HF_HUB_OFFLINE": "1"}):
        for rev in args.revisions_list:
            t0, c0 = time.perf_counter(), time.process_time()
            model, tok = load_hf(MODEL, rev, "float32", args.device)
            BatteryPlan(battery, tok).score(model).groups()
            MarginPlan(prompt_sets, tok).score(model)
            seconds.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if keep:
                kept.append(model)
            rss.append(rss_mib())
            gpu.append(torch.cuda.memory_allocated() / 2**20 if torch.cuda.is_available() else None)
    return {"start": start, "seconds": seconds, "rss": rss, "peak": None, "gpu": gpu, "cpu": cpu,
            "wall_per_revision": sum(seconds) / len(seconds)}


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    args.revisions_list = args.revs.split(",")
    if args.variant == "suite":
        res = run_suite(args)
    elif args.variant == "tasks":
        res = run_tasks(args)
    else:
        res = run_loop(args, keep=args.variant == "keep")
    print("RESULT " + json.dumps(res))


def curve(values: list[float]) -> str:
    return " ".join(f"{v:.0f}" for v in values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--revisions", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--battery", type=Path, default=REFERENCE / "batteries/rvp3/battery.jsonl")
    ap.add_argument("--tokenizer", type=Path, default=REFERENCE / "tokenizers/tinystories-bpe8192.json")
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--revs", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        import os

        os.environ["HF_HUB_CACHE"] = str(args.cache)
        import huggingface_hub.constants as hc

        hc.HF_HUB_CACHE = str(args.cache)
        child(args)
        return

    root = Path(tempfile.mkdtemp(prefix="ungrok-bench-hub-"))
    t0 = time.perf_counter()
    revisions = build_cache(root, args.tokenizer, args.revisions)
    print(f"cache: {args.revisions} revisions of {MODEL} (4 layers, d 256, vocab 8192) in "
          f"{time.perf_counter() - t0:.1f}s at {root / 'cache'}")
    results = {}
    for variant in VARIANTS:
        cmd = [sys.executable, __file__, "--variant", variant, "--cache", str(root / "cache"), "--revs",
               ",".join(revisions), "--out", str(root / f"out-{variant}"), "--device", args.device,
               "--threads", str(args.threads), "--battery", str(args.battery)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{variant} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        results[variant] = json.loads(line.removeprefix("RESULT "))

    print(f"\nrvp3.1 ({args.battery.name}) + margins, {args.revisions} revisions, device {args.device}, "
          f"{args.threads} thread(s)")
    for variant, r in results.items():
        s = r["seconds"]
        print(f"\n[{variant}] seconds per revision: median {statistics.median(s):.3f}, mean {statistics.mean(s):.3f}"
              f" (first {s[0]:.3f}); wall per revision incl. store writes {r['wall_per_revision']:.3f}")
        if r.get("cpu"):
            print(f"  CPU seconds per revision (both threads): median {statistics.median(r['cpu']):.3f}")
        print(f"  RSS before the first revision: {r['start']:.0f} MiB")
        print(f"  RSS after each revision (MiB): {curve(r['rss'])}")
        if r["peak"]:
            print(f"  peak RSS per task (MiB):       {curve(r['peak'])}")
        if r["gpu"] and r["gpu"][0] is not None:
            print(f"  GPU MiB per revision:          {curve(r['gpu'])}")
        print(f"  flatness: RSS last / first = {r['rss'][-1] / r['rss'][0]:.3f}; "
              f"growth first -> last {r['rss'][-1] - r['rss'][0]:+.0f} MiB; "
              f"range {min(r['rss']):.0f}-{max(r['rss']):.0f} MiB")

    def growth(v: str, first: int = 0) -> str:
        rss = results[v]["rss"]
        return f"{rss[-1] - rss[first]:+.0f} MiB"

    print(f"\nRSS growth from the first to the last of {args.revisions} revisions: tasks {growth('tasks')}, "
          f"suite {growth('suite')} (from the 2nd: {growth('suite', 1)}; store rows and pyarrow set-up), "
          f"reassign {growth('reassign')}, keep {growth('keep')}")
    med = {v: statistics.median(r["seconds"]) for v, r in results.items()}
    print(
        f"median wall seconds per revision: suite task {med['suite']:.3f}, bare task {med['tasks']:.3f}, "
        f"reassign loop {med['reassign']:.3f}, keep loop {med['keep']:.3f} (wall time moves with other load "
        "on the machine; CPU time does less)"
    )
    cpu = {v: statistics.median(results[v]["cpu"]) for v in ("tasks", "reassign")}
    print(
        f"median CPU seconds per revision: task (load, score, free) {cpu['tasks']:.3f}, reassign loop "
        f"{cpu['reassign']:.3f}; task / loop = {cpu['tasks'] / cpu['reassign']:.2f}x"
    )


if __name__ == "__main__":
    main()
