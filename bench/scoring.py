"""Benchmark: batched forced-choice scoring vs a naive one-item-at-a-time reference, same input.

Scores the paper's rvp3.1 battery (2,516 items) with the TinyStories 8,192-symbol
tokenizer on (a) a tiny model and (b) the paper's 11.5M architecture, both with
random weights (the zero-initialised layers too, so logits are not all zero; speed
does not depend on it). Reports in one run, per model:
- items/s of `BatteryPlan.score` (the per-checkpoint cost; the plan is built once per
  battery and tokenizer, and its build time is shown separately),
- items/s of the naive reference: two forwards per item (prefix + each continuation,
  batch 1, pre-tokenized, no sharing), on the same items,
- the ratio, after checking both give the same log-probabilities,
- items/s of the same batched scoring with `precision="bf16"` (autocast matmuls, fp32
  weights and log-softmax), its ratio to fp32 and the largest per-item margin difference
  (random weights: a speed check; tests/probes/test_precision.py bounds the difference on
  a trained model),
- items/s of bf16 with the forward compiled (`compile=True`: one dynamic-shape graph per
  architecture and process, so a sweep pays the compile once; its one-time cost is printed),
  and its ratio to the eager fp32 scorer of the same run, issue 19's yardstick.

Without ../shared/reference (the paper's files) it scores the built-in battery
(`build_battery()`) with the storyworld word tokenizer instead; `--no-naive` skips the
slow naive reference, leaving the fp32-vs-bf16 comparison.

    .venv/bin/python bench/scoring.py [--threads 2] [--reference-items 2516] [--no-naive]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from ungrok.model import GPT, preset
from ungrok.probes.battery import Battery, build_battery, load_battery
from ungrok.probes.models import GPTLogits, TokenizerFile
from ungrok.probes.score import DEFAULT_BATCH_TOKENS, BatteryPlan

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def random_model(name: str, **overrides: object) -> GPT:
    torch.manual_seed(0)
    model = GPT(preset(name, **overrides))
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname == "lm_head.weight" or pname.endswith((".wo.weight", ".down.weight")):
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]))
    return model.eval()


def naive_scores(model: GPT, encoded: list[tuple[list[int], list[int], list[int]]]) -> np.ndarray:
    """Two forwards per item, nothing shared: the obvious way to score a battery."""
    out = np.zeros((len(encoded), 2))
    with torch.inference_mode():
        for i, (p, c, d) in enumerate(encoded):
            for s, cont in enumerate((c, d)):
                lp = torch.log_softmax(model(torch.tensor([p + cont]))[0], dim=-1)
                out[i, s] = sum(float(lp[len(p) - 1 + j, t]) for j, t in enumerate(cont))
    return out


def best_of(fn, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_model(
    label: str, model: GPT, battery: Battery, tok: TokenizerFile, n_ref: int, repeats: int
) -> tuple[float, float, float]:
    """Print the batched (fp32, bf16, bf16 compiled) and naive rates of one model; return the three
    batched items/s."""
    t = time.perf_counter()
    plan = BatteryPlan(battery, tok)
    build = time.perf_counter() - t
    adapter = GPTLogits(model)
    plan.score(adapter)  # warm-up
    fast = best_of(lambda: plan.score(adapter), repeats)
    scores = plan.score(adapter)
    bf16 = GPTLogits(model, "bf16")
    plan.score(bf16)  # warm-up
    fast16 = best_of(lambda: plan.score(bf16), repeats)
    margin16 = np.nanmax(np.abs(plan.score(bf16).margin - scores.margin))
    compiled = GPTLogits(model, "bf16", compile=True)
    t = time.perf_counter()
    plan.score(compiled)  # compiles
    compile_s = time.perf_counter() - t
    fastc = best_of(lambda: plan.score(compiled), repeats)
    marginc = np.nanmax(np.abs(plan.score(compiled).margin - scores.margin))
    fast_rate, bf16_rate, comp_rate = len(battery) / fast, len(battery) / fast16, len(battery) / fastc
    p = plan.pairs
    print(f"{label}: {model.num_params():,} parameters")
    print(
        f"  plan: {len(p.leaves)} forward rows, {p.n_tokens:,} tokens for {2 * len(battery):,} continuations "
        f"(built once in {build * 1e3:.0f} ms)"
    )
    print(f"  batched : {fast_rate:10,.0f} items/s  ({fast * 1e3:.0f} ms per checkpoint, best of {repeats})")
    print(
        f"  bf16    : {bf16_rate:10,.0f} items/s  ({fast16 * 1e3:.0f} ms per checkpoint, best of {repeats})"
    )
    print(f"  bf16/fp32: {bf16_rate / fast_rate:9.2f}x   (max |margin difference| {margin16:.3f} nats)")
    print(
        f"  bf16 compiled: {comp_rate:6,.0f} items/s  ({fastc * 1e3:.0f} ms per checkpoint, best of {repeats}; "
        f"compiled once in {compile_s:.0f} s)"
    )
    print(f"  compiled bf16/fp32: {comp_rate / fast_rate:.2f}x   (max |margin difference| {marginc:.3f} nats)")
    if n_ref == 0:
        return fast_rate, bf16_rate, comp_rate

    items = battery.items[:n_ref]
    encoded = [
        (tok.encode(it["prefix"]), tok.encode(it["correct"]), tok.encode(it["distractor"])) for it in items
    ]
    naive_scores(model, encoded[:5])  # warm-up
    t = time.perf_counter()
    ref = naive_scores(model, encoded)
    slow = time.perf_counter() - t
    diff = max(
        np.abs(ref[:, 0] - scores.logp_correct[:n_ref]).max(),
        np.abs(ref[:, 1] - scores.logp_distractor[:n_ref]).max(),
    )
    assert diff < 1e-4, f"batched and naive scores differ by {diff}"
    slow_rate = n_ref / slow
    print(f"  naive   : {slow_rate:10,.0f} items/s  ({n_ref} items, two forwards each)")
    print(f"  ratio   : {fast_rate / slow_rate:10.1f}x   (max |logp difference| {diff:.1e})")
    return fast_rate, bf16_rate, comp_rate


def battery_and_tokenizer(battery: Path, tokenizer: Path) -> tuple[Battery, TokenizerFile, str]:
    """The paper's files when present, else the built-in battery with the storyworld tokenizer."""
    if battery.is_file() and tokenizer.is_file():
        return load_battery(battery), TokenizerFile.load(tokenizer), battery.parent.name
    from ungrok.corpus.storyworld import storyworld_tokenizer

    print(f"({battery} or {tokenizer} missing: built-in battery, storyworld tokenizer)")
    return build_battery(), TokenizerFile(storyworld_tokenizer()), "built-in"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reference-items", type=int, default=None, help="items for the naive run (default all)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-naive", action="store_true", help="skip the naive reference (fp32 vs bf16 only)")
    ap.add_argument("--battery", type=Path, default=REFERENCE / "batteries/rvp3/battery.jsonl")
    ap.add_argument("--tokenizer", type=Path, default=REFERENCE / "tokenizers/tinystories-bpe8192.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    battery, tok, name = battery_and_tokenizer(args.battery, args.tokenizer)
    n_ref = 0 if args.no_naive else min(args.reference_items or len(battery), len(battery))
    print(
        f"battery {name}: {len(battery):,} items, sha256 {battery.sha256[:12]}…; "
        f"{args.threads} thread(s), batch tokens {DEFAULT_BATCH_TOKENS}"
    )
    rates = {
        "tiny": bench_model(
            "tiny", random_model("tiny", vocab_size=tok.vocab_size), battery, tok, n_ref, args.repeats
        ),
        "paper-11.5m": bench_model(
            "paper-11.5m", random_model("paper-11.5m"), battery, tok, n_ref, args.repeats
        ),
    }
    for label, (fp32, bf16, comp) in rates.items():
        print(
            f"{label:12s} fp32 {fp32:8,.0f} items/s  bf16 {bf16:8,.0f} ({bf16 / fp32:.2f}x)  "
            f"bf16 compiled {comp:8,.0f} ({comp / fp32:.2f}x)"
        )
    model = GPTLogits(random_model("paper-11.5m"))
    rates = []
    for bt in (256, 512, 1024, 2048, 4096):
        plan = BatteryPlan(battery, tok, batch_tokens=bt)
        plan.score(model)
        rates.append(f"{bt}: {len(battery) / best_of(lambda p=plan: p.score(model), args.repeats):,.0f}")
    print("paper-11.5m items/s by batch tokens  " + ", ".join(rates))


if __name__ == "__main__":
    main()
