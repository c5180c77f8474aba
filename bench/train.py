"""Benchmark: training throughput, achieved model FLOP/s vs dense matmul, monitor overhead.

Reports, in one run, at torch's default thread count (or --threads):
- dense fp32 matmul FLOP/s: torch.mm on --mm-size square matrices (best of 5), measured at the
  start and after each model; the best of these is the denominator;
- for `demo` and `paper-11.5m`: tokens/s of the real loop (`ungrok.train.loop.train`: sampler,
  forward, backward, Muon, fused AdamW, logging; checkpoints only at the first and last step),
  from the median step time in train_log.jsonl (the first --warmup steps untimed);
- model FLOP/s = tokens/s x (6·N_matmul + 12·L·d·T) and its fraction of the matmul FLOP/s.
  N_matmul = block matrices + lm_head (embedding lookups do no matmul); 12·L·d·T = the
  attention score and value products over a T-token window, forward + backward, counted in
  full as METHOD §15 does. A causal kernel needs only half of that; the fraction with
  6·L·d·T is printed too;
- monitor overhead: a probe callback that scores 64 prompts of 16 tokens (one forward, the
  log-prob gap between two tokens at the last position, as the contrast margin does) every
  --probe-every steps. Printed two ways: the callback's own time per call over the training
  time of --probe-every steps (same run), and the wall time of a run with the callback vs one
  without over the same steps (two runs, so it also carries any change in CPU sharing).

Other processes sharing the CPU lower every number here; the ratios are taken within one run.

    .venv/bin/python bench/train.py [--demo-steps 30] [--paper-steps 5] [--paper-batch 4] [--paper-context 2048] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld
from ungrok.model import GPT
from ungrok.model.optim import split_parameters
from ungrok.train.config import parse_config, resolve_model
from ungrok.train.loop import train
from ungrok.train.rundir import read_jsonl


def matmul_flops(n: int, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


class MarginProbe:
    """What an in-loop monitor does: one forward on 64 short prompts, a log-prob gap per prompt."""

    def __init__(self, vocab: int):
        g = torch.Generator().manual_seed(0)
        self.prompts = torch.randint(3, min(vocab, 1000), (64, 16), generator=g)
        self.seconds: list[float] = []

    def on_probe(self, step: int, model: GPT) -> dict:
        t = time.perf_counter()
        lp = torch.log_softmax(model(self.prompts)[:, -1], dim=-1)
        cm = float((lp[:, 1] - lp[:, 2]).mean())
        self.seconds.append(time.perf_counter() - t)
        return {"cm": cm}


def flops_per_token(cfg_model, model: GPT, context: int, causal: bool = False) -> tuple[int, float]:
    n_matmul = sum(p.numel() for p in split_parameters(model)["matrix"]) + model.lm_head.weight.numel()
    attention = (6 if causal else 12) * cfg_model.n_layer * cfg_model.n_embd * context
    return n_matmul, 6 * n_matmul + attention


def timed_run(corpus: Path, out: Path, doc: dict, warmup: int, callbacks=()) -> tuple[float, float, int]:  # noqa: ANN001
    """(median seconds per step, seconds for the timed steps, timed steps) from the run's own log.

    The median step resists bursts from other processes on a shared CPU; the total does not.
    """
    train(parse_config(doc), corpus, out, callbacks=list(callbacks), progress=False)
    times = [r["time_s"] for r in read_jsonl(out / "train_log.jsonl")][warmup - 1 :]
    steps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return statistics.median(steps), times[-1] - times[0], len(steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mm-size", type=int, default=2048)
    ap.add_argument("--demo-steps", type=int, default=30)
    ap.add_argument("--demo-batch", type=int, default=32)
    ap.add_argument("--paper-steps", type=int, default=5)
    ap.add_argument("--paper-batch", type=int, default=4)
    ap.add_argument("--paper-context", type=int, default=2048)
    ap.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--probe-every", type=int, default=5)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    mms = [matmul_flops(args.mm_size)]
    print(
        f"threads {torch.get_num_threads()}; dense fp32 matmul ({args.mm_size}²): {mms[0] / 1e9:,.1f} GFLOP/s"
    )
    runs = {
        "demo": (128, args.demo_batch, args.demo_steps),
        "paper-11.5m": (args.paper_context, args.paper_batch, args.paper_steps),
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "sw"
        build_storyworld(corpus, StoryworldConfig(tokens=2_000_000, seed=0))
        for name, (context, batch, steps) in runs.items():
            doc = {
                "model": {"preset": name},
                "sampler": {"context": context, "batch_size": batch, "steps": steps},
                "checkpoints": {"rules": [{"start": 0, "end": 0, "every": 1}]},
                "probe_every": args.probe_every,
                "probe_dense_until": 0,
            }
            mcfg = resolve_model(parse_config(doc))
            with torch.device("meta"):
                model = GPT(mcfg)
            step_s, base_s, timed = timed_run(corpus, Path(tmp) / f"{name}-plain", doc, args.warmup)
            probe = MarginProbe(mcfg.vocab_size)
            _, mon_s, _ = timed_run(corpus, Path(tmp) / f"{name}-probe", doc, args.warmup, [probe])
            mms.append(matmul_flops(args.mm_size))
            results.append((name, context, batch, steps, mcfg, model, step_s, base_s, mon_s, timed, probe))
    mm = max(mms)  # the machine's best in this run: the conservative denominator on a shared CPU
    print("matmul GFLOP/s measured before/after each model: " + ", ".join(f"{m / 1e9:.0f}" for m in mms)
          + f"; the fractions below use the best, {mm / 1e9:.0f}")  # fmt: skip
    for name, context, batch, steps, mcfg, model, step_s, base_s, mon_s, timed, probe in results:
        n_matmul, fpt = flops_per_token(mcfg, model, context)
        _, fpt_causal = flops_per_token(mcfg, model, context, causal=True)
        tok_s = context * batch / step_s
        per_probe = statistics.median(probe.seconds)
        print(f"\n{name}: {model.num_params():,} params, N_matmul {n_matmul:,}; context {context}, "
              f"batch {batch} ({context * batch:,} tokens/step), {steps} steps ({args.warmup} untimed)")  # fmt: skip
        print(f"  training tokens/s          {tok_s:,.0f}  (median step {step_s:.2f} s)")
        print(f"  model FLOP/token           {fpt / 1e6:,.1f} M (6·N_matmul + 12·L·d·T)")
        print(f"  achieved model FLOP/s      {tok_s * fpt / 1e9:,.1f} G = {tok_s * fpt / mm:.0%} of matmul "
              f"({tok_s * fpt_causal / mm:.0%} counting causal attention only)")  # fmt: skip
        print(f"  monitor probe              {per_probe * 1e3:,.1f} ms per call (median); one call every "
              f"{args.probe_every} steps = {per_probe / (args.probe_every * step_s):.2%} of training time")  # fmt: skip
        print(f"  with vs without monitor    {mon_s / base_s - 1:+.1%} wall time over the same {timed} steps "
              f"({base_s:.1f}s -> {mon_s:.1f}s; two runs, so changes in CPU sharing show here too)")  # fmt: skip


if __name__ == "__main__":
    main()
