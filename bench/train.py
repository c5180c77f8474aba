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
  full as docs/method.md §15 does. A causal kernel needs only half of that; the fraction with
  6·L·d·T is printed too;
- dense bf16 matmul FLOP/s the same way (the CPU's bf16 units, where it has them), and each
  model in bf16, bf16 compiled, with the attention core in bf16 too, and with the head and loss
  in --loss-chunk row chunks too (`loss_chunk`), as fractions of it;
- the demo's own run shape (d 64, context 64 x 32 rows, storyworld's 1,456-word vocabulary,
  1 thread, as `ungrok demo` trains) with today's trainer in fp32, in bf16 autocast, and in
  bf16 compiled (`precision`/`compile` in the train config), against the trainer before the
  two CPU changes of issue 14 (autograd's softcap + cross-entropy chain, glibc's default
  heap), each in a fresh process, alternating, --compare-reps times: tokens/s and the ratios;
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
import json
import math
import statistics
import subprocess
import sys
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


def matmul_flops(n: int, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
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


DEMO_SHAPE = {
    "model": {"preset": "demo", "n_embd": 64, "context": 64, "vocab_size": 1456},
    "optimizer": {"matrix_lr": 0.02, "embed_lr": 0.05, "weight_decay": 0.0},
    "checkpoints": {"rules": [{"start": 0, "end": 0, "every": 1}]},
}


def reference_forward(self: GPT, idx: torch.Tensor, targets: torch.Tensor | None = None):  # noqa: ANN201
    """GPT.forward as it was before model/loss.py: autograd through divide, tanh and cross-entropy."""
    import torch.nn.functional as F

    from ungrok.model.gpt import _norm

    length = idx.shape[1]
    cos, sin = self.cos[:, :length], self.sin[:, :length]
    x = _norm(self.wte(idx))
    for i, block in enumerate(self.blocks):
        ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
        x = block(x, ve, cos, sin)
    logits = self.lm_head(_norm(x)).float()
    cap = self.config.softcap
    logits = cap * torch.tanh(logits / cap)
    if targets is None:
        return logits
    return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def demo_worker(mode: str, corpus: str, steps: int) -> None:
    """One timed demo-shape run in this process; prints {"tok_s": ..., "sys_s": ...} as JSON."""
    import resource

    import ungrok.train.loop as loop

    torch.set_num_threads(1)
    if mode == "reference":
        GPT.forward = reference_forward
        loop.keep_freed_memory = lambda: False
    doc = {**DEMO_SHAPE, "seed": 1, "sampler": {"context": 64, "batch_size": 32, "steps": steps},
           **TRAINER_MODES[mode]}
    with tempfile.TemporaryDirectory() as tmp:
        step_s, _, _ = timed_run(Path(corpus), Path(tmp) / "run", doc, 5)
        final = read_jsonl(Path(tmp) / "run" / "train_log.jsonl")[-1]["loss"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"tok_s": 64 * 32 / step_s, "sys_s": usage.ru_stime, "user_s": usage.ru_utime,
                      "final_loss": final}))


TRAINER_MODES: dict[str, dict] = {
    "reference": {},
    "ours": {},
    "bf16": {"precision": "bf16"},
    "bf16-compiled": {"precision": "bf16", "compile": True},
}
# The attention core in bf16 too (train.cpu_attention), measured on the larger models only;
# then also the head and loss in row chunks (train.loss_chunk; --loss-chunk).
BF16_ATTENTION = {"precision": "bf16", "compile": True, "cpu_attention": "bf16"}


def compare_demo_trainers(corpus: Path, steps: int, reps: int) -> None:
    """Today's trainer (fp32, bf16, bf16 compiled) vs the reference on the demo's run shape, fresh
    processes, alternating."""
    got: dict[str, list[dict]] = {mode: [] for mode in TRAINER_MODES}
    for _ in range(reps):
        for mode in got:
            out = subprocess.run([sys.executable, __file__, "--worker", mode, "--corpus", str(corpus),
                                  "--demo-steps", str(steps)], capture_output=True, text=True, check=True)
            got[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {m: statistics.median(r["tok_s"] for r in rs) for m, rs in got.items()}
    print(f"\ndemo run shape (d 64, context 64 x 32, vocab 1456, 1 thread), {steps} steps, {reps} runs each:")
    for mode, rs in got.items():
        toks = ", ".join(f"{r['tok_s']:,.0f}" for r in rs)
        sys_s = statistics.median(r["sys_s"] for r in rs)
        print(f"  {mode:<10} tokens/s {toks} (median {med[mode]:,.0f}); kernel time {sys_s:.1f} s per run")
    losses = {m: rs[0]["final_loss"] for m, rs in got.items()}
    print(f"  ours / reference: {med['ours'] / med['reference']:.2f}x; final loss {losses['ours']:.5f} vs "
          f"{losses['reference']:.5f} (same seed; they differ only by float rounding)")
    for mode in ("bf16", "bf16-compiled"):
        print(f"  {mode} / ours (fp32): {med[mode] / med['ours']:.2f}x, / reference: "
              f"{med[mode] / med['reference']:.2f}x; final loss {losses[mode]:.5f} (a different arithmetic)")
    assert all(math.isfinite(v) for v in losses.values())


def bf16_units() -> str:
    """What this CPU has for bf16 matmuls, from its flags (Linux)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown (no /proc/cpuinfo)"
    if "amx_bf16" in flags:
        return "AMX tiles (amx_bf16): bf16 is the fast path, attention core included (cpu_attention: bf16)"
    if "avx512_bf16" in flags:
        return "avx512_bf16 dot products, no AMX: bf16 matmuls gain, keep the attention core fp32"
    return "none: bf16 brings no matmul gain here; train in fp32"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=list(TRAINER_MODES), help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--compare-steps", type=int, default=60, help="steps per demo-shape comparison run")
    ap.add_argument("--compare-reps", type=int, default=2)
    ap.add_argument("--mm-size", type=int, default=2048)
    ap.add_argument("--demo-steps", type=int, default=30)
    ap.add_argument("--demo-batch", type=int, default=32)
    ap.add_argument("--paper-steps", type=int, default=5)
    ap.add_argument("--paper-batch", type=int, default=4)
    ap.add_argument("--paper-context", type=int, default=2048)
    ap.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--probe-every", type=int, default=5)
    ap.add_argument("--loss-chunk", type=int, default=256, help="rows per chunk for the chunked-loss mode")
    args = ap.parse_args()
    if args.worker:
        demo_worker(args.worker, args.corpus, args.demo_steps)
        return
    if args.threads:
        torch.set_num_threads(args.threads)

    mms = [matmul_flops(args.mm_size)]
    bf16_mm = matmul_flops(args.mm_size, dtype=torch.bfloat16)
    print(f"threads {torch.get_num_threads()}; dense matmul ({args.mm_size}²): fp32 {mms[0] / 1e9:,.1f} GFLOP/s, "
          f"bf16 {bf16_mm / 1e9:,.1f} GFLOP/s ({bf16_mm / mms[0]:.1f}x)")
    print(f"CPU bf16 matrix units: {bf16_units()}")
    runs = {
        "demo": (128, args.demo_batch, args.demo_steps),
        "paper-11.5m": (args.paper_context, args.paper_batch, args.paper_steps),
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "sw"
        build_storyworld(corpus, StoryworldConfig(tokens=2_000_000, seed=0))
        compare_demo_trainers(corpus, args.compare_steps, args.compare_reps)
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
            low = {}  # the same run in bf16 and bf16 compiled (docs/training.md), against the bf16 peak
            modes = {m: TRAINER_MODES[m] for m in ("bf16", "bf16-compiled")} | {
                "bf16-compiled-attn": BF16_ATTENTION,
                "bf16-compiled-attn-chunk": {**BF16_ATTENTION, "loss_chunk": args.loss_chunk},
            }
            for mode, knobs in modes.items():
                low[mode], _, _ = timed_run(corpus, Path(tmp) / f"{name}-{mode}", {**doc, **knobs},
                                            args.warmup + (0 if mode == "bf16" else 1))
            mms.append(matmul_flops(args.mm_size))
            results.append((name, context, batch, steps, mcfg, model, step_s, base_s, mon_s, timed, probe, low))
    mm = max(mms)  # the machine's best in this run: the conservative denominator on a shared CPU
    print("matmul GFLOP/s measured before/after each model: " + ", ".join(f"{m / 1e9:.0f}" for m in mms)
          + f"; the fractions below use the best, {mm / 1e9:.0f}")
    for name, context, batch, steps, mcfg, model, step_s, base_s, mon_s, timed, probe, low in results:
        n_matmul, fpt = flops_per_token(mcfg, model, context)
        _, fpt_causal = flops_per_token(mcfg, model, context, causal=True)
        tok_s = context * batch / step_s
        per_probe = statistics.median(probe.seconds)
        print(f"\n{name}: {model.num_params():,} params, N_matmul {n_matmul:,}; context {context}, "
              f"batch {batch} ({context * batch:,} tokens/step), {steps} steps ({args.warmup} untimed)")
        print(f"  training tokens/s          {tok_s:,.0f}  (median step {step_s:.2f} s)")
        print(f"  model FLOP/token           {fpt / 1e6:,.1f} M (6·N_matmul + 12·L·d·T)")
        print(f"  achieved model FLOP/s      {tok_s * fpt / 1e9:,.1f} G = {tok_s * fpt / mm:.0%} of matmul "
              f"({tok_s * fpt_causal / mm:.0%} counting causal attention only)")
        for mode, low_s in low.items():
            low_tok = context * batch / low_s
            print(f"  {mode:<26} {low_tok:,.0f} tokens/s = {low_tok / tok_s:.2f}x fp32; model FLOP/s "
                  f"{low_tok * fpt / 1e9:,.1f} G = {low_tok * fpt / bf16_mm:.0%} of the bf16 matmul")
        print(f"  monitor probe              {per_probe * 1e3:,.1f} ms per call (median); one call every "
              f"{args.probe_every} steps = {per_probe / (args.probe_every * step_s):.2%} of training time")
        print(f"  with vs without monitor    {mon_s / base_s - 1:+.1%} wall time over the same {timed} steps "
              f"({base_s:.1f}s -> {mon_s:.1f}s; two runs, so changes in CPU sharing show here too)")


if __name__ == "__main__":
    main()
