"""Benchmark: every mechanism instrument over 100 checkpoints of a demo-preset run (target < 2 min, 2 cores).

Builds (once, cached in bench/.cache/mech/) a storyworld corpus and a `demo`-preset run with a
checkpoint every --every steps (101 checkpoints, step 0 included), then, in one process at
--threads torch threads (default 1: the instruments' forwards are a few prompts each, which a
second OpenMP thread does not speed up and, on a CPU shared with other jobs, slows down a lot):

- ours: `ungrok.mech.run.mech_run` with every instrument (decomposition, heads, decodability per
  checkpoint; the peak/final pair, patching both ways, direction removal at both; the n-gram
  baseline over the served stream), from an empty store, no margin table (the CM that picks the
  peak is computed too): the wall time against the 2-minute target;
- the reference, the naive way on the same model and prompts: one forward per prompt per
  instrument, no trace shared between instruments (each head's report recomputes its own
  decomposition, decodability traces each class prompt alone, the peak's CM is its own pass,
  patching runs per prompt). Per-checkpoint instruments are timed on a subset of checkpoints
  (--subset) and scaled to all; patching is timed on the real pair; direction removal and the
  n-gram pass are the same code in both and counted once each. Ratio = reference / ours.
- a check that the naive values reproduce ours (max |difference| over the subset).

Other processes sharing the CPU lower every number; the ratio is taken within one run.

    .venv/bin/python bench/mech.py [--threads 1] [--repeats 2] [--every 2] [--subset 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch

CACHE = Path(__file__).resolve().parent / ".cache" / "mech"
RULE = "pronoun_gender_ref"
TARGET_S = 120.0
N_CHECKPOINTS = 100  # the target's count; the run also keeps step 0


def build_run(every: int) -> tuple[Path, Path]:
    """The cached corpus, battery and run (rebuilt only when missing or incomplete)."""
    from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld
    from ungrok.probes.battery import build_battery, save_battery
    from ungrok.train.config import parse_config
    from ungrok.train.loop import train

    steps = N_CHECKPOINTS * every
    corpus, battery, run = CACHE / "sw", CACHE / "battery.jsonl", CACHE / f"run-every{every}"
    if not (corpus / "manifest.json").is_file():
        build_storyworld(corpus, StoryworldConfig(tokens=2_000_000, seed=0, global_ratio=8.0, frame_ratio=8.0),
                         force=True)
    if not battery.is_file():
        save_battery(build_battery(), battery)
    if not (run / "complete.json").is_file():
        doc = {"model": {"preset": "demo"}, "optimizer": {"matrix_lr": 0.02, "embed_lr": 0.05, "weight_decay": 0.0},
               "sampler": {"context": 64, "batch_size": 32, "steps": steps},
               "checkpoints": {"rules": [{"start": 0, "every": every}]}, "probe_every": 1000, "seed": 1}
        t = time.perf_counter()
        train(parse_config(doc), corpus, run, progress=False)
        print(f"trained {run.name}: demo preset, {steps} steps, a checkpoint every {every} "
              f"in {time.perf_counter() - t:.0f}s")
    return run, battery


# --------------------------------------------------------------------------- the naive reference
def one(p, i: int):  # noqa: ANN001, ANN201 - MechPrompts reduced to its i-th CM prompt
    return dataclasses.replace(p, cm_prompts=(p.cm_prompts[i],), cm_ids=(p.cm_ids[i],))


def naive_checkpoint(model, p) -> dict[str, float]:  # noqa: ANN001
    """decomp + heads + decode + the CM, one prompt per forward, nothing shared between instruments."""
    from ungrok.mech.decode import nearest_mean_accuracy
    from ungrok.mech.decompose import decompose_gap
    from ungrok.mech.heads import head_report
    from ungrok.mech.trace import contrast_margin, trace
    from ungrok.model.gpt import _norm

    n = len(p.cm_ids)
    decs = [decompose_gap(model, one(p, i)) for i in range(n)]
    heads = [head_report(model, one(p, i)) for i in range(n)]
    cm = float(np.mean([contrast_margin(model, one(p, i)) for i in range(n)]))
    feats: list[list[np.ndarray]] = [[] for _ in model.blocks]
    for ids in p.class_ids:
        tr = trace(model, torch.tensor([ids]), read=torch.tensor([len(ids) - 1]))
        for k, r in enumerate(tr.resid):
            feats[k].append(_norm(r[0, -1]).double().numpy())
    out = {"cm": cm, "gap": float(np.mean([d.gap for d in decs])), "embed": float(np.mean([d.embed for d in decs]))}
    for k, f in enumerate(feats, 1):
        out[f"block{k}"] = nearest_mean_accuracy(np.stack(f), p.class_labels, p.class_frames)
    attr = np.mean([h.attribution for h in heads], axis=0)
    for (layer, h), v in np.ndenumerate(attr):
        out[f"L{layer}H{h}"] = float(v)
    return out


def naive_patch(src, dst, p, label: str) -> dict[str, float]:  # noqa: ANN001
    """Recovery per component from per-prompt patching runs (CMs averaged over prompts)."""
    from ungrok.mech.patching import patch_components, recovery_fraction

    res = [patch_components(src, dst, one(p, i), label) for i in range(len(p.cm_ids))]
    cm_src = float(np.mean([r.cm_src for r in res]))
    cm_dst = float(np.mean([r.cm_dst for r in res]))
    return {c: recovery_fraction(float(np.mean([r.cm_patch[c] for r in res])), cm_src, cm_dst)
            for c in res[0].cm_patch}


def ours_values(rows: list[dict], step: int) -> dict[str, float]:
    at = [r for r in rows if r["step"] == step]
    out = {}
    for r in at:
        kept = (r["instrument"] == "decomp" and r["component"] in ("gap", "embed")) or r["instrument"] == "decode" \
            or (r["instrument"] == "heads" and r["metric"] == "attribution")
        if kept:
            out[r["component"]] = r["value"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (tiny forwards gain nothing from a second OpenMP thread and lose much "
                    "on a shared CPU)")
    ap.add_argument("--repeats", type=int, default=2, help="full passes of ours; the fastest counts")
    ap.add_argument("--every", type=int, default=2, help="training steps between checkpoints")
    ap.add_argument("--subset", type=int, default=10, help="checkpoints the naive reference is timed on")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import pyarrow.parquet as pq

    from ungrok.mech.prompts import build_prompts
    from ungrok.mech.run import mech_run
    from ungrok.model import list_checkpoints, load_checkpoint
    from ungrok.probes.battery import load_battery
    from ungrok.probes.models import TokenizerFile, run_tokenizer_path

    src, battery = build_run(args.every)
    run = CACHE / "work" / "run"  # a fresh copy: nothing computed, no margin table
    shutil.rmtree(run.parent, ignore_errors=True)
    run.parent.mkdir(parents=True)
    shutil.copytree(src, run, ignore=shutil.ignore_patterns("resume", "traj.*"))
    cks = list_checkpoints(run)
    print(f"run: {len(cks)} checkpoints (steps {cks[0].step}..{cks[-1].step}), demo preset, "
          f"{args.threads} torch thread(s)")

    # ---- ours, every instrument: from scratch, then --repeats - 1 forced recomputations; the best counts
    times = []
    for i in range(args.repeats):
        t0 = time.perf_counter()
        s = mech_run(run, [RULE], battery=battery, progress=False, force=i > 0)
        times.append(time.perf_counter() - t0)
    ours = min(times)
    rr = s.rules[RULE]
    print(f"ours: {ours:.1f}s (best of {', '.join(f'{x:.1f}' for x in times)}) for every instrument over {len(cks)} checkpoints "
          f"(target < {TARGET_S:.0f}s: {'met' if ours < TARGET_S else 'MISSED'}); peak step {rr.peak}, final {rr.final}; "
          f"units {s.computed}")

    # ours again, part by part (forced reruns of the same code), for the per-part ratios
    parts = {}
    for part, insts in (("per-checkpoint", ("decomp", "decode", "heads")), ("patch", ("patch",)),
                        ("direction", ("direction",)), ("ngram", ("ngram",))):
        t = time.perf_counter()
        mech_run(run, [RULE], battery=battery, progress=False, force=True, instruments=insts)
        parts[part] = time.perf_counter() - t
    print("ours by part (each a separate call: setup included; patch and direction also find the peak, a CM "
          "pass over every checkpoint): " + ", ".join(f"{k} {v:.1f}s" for k, v in parts.items()))

    # ---- the naive reference
    tok = TokenizerFile.load(run_tokenizer_path(run))
    p = build_prompts(RULE, load_battery(battery), tok)
    subset = [cks[i] for i in np.linspace(0, len(cks) - 1, args.subset).round().astype(int)]
    rows = pq.read_table(run / "traj.mech.parquet").to_pylist()
    worst = 0.0
    t = time.perf_counter()
    for ck in subset:
        model = load_checkpoint(ck).model
        naive = naive_checkpoint(model, p)
        mine = ours_values(rows, ck.step)
        for k, v in mine.items():
            if not (math.isnan(v) and math.isnan(naive[k])):
                worst = max(worst, abs(v - naive[k]))
    naive_per_ck = (time.perf_counter() - t) / len(subset)
    naive_patch_s = 0.0
    if rr.peak is not None and rr.peak != rr.final:
        peak_m = load_checkpoint(next(c for c in cks if c.step == rr.peak)).model
        final_m = load_checkpoint(cks[-1]).model
        t = time.perf_counter()
        rec = naive_patch(peak_m, final_m, p, "peak_to_final")
        naive_patch(final_m, peak_m, p, "final_to_peak")
        naive_patch_s = time.perf_counter() - t
        mine_rec = {r["component"]: r["value"] for r in rows
                    if r["instrument"] == "patch" and r["step"] == rr.final}
        for c, v in rec.items():
            if not (math.isnan(v) and math.isnan(mine_rec[c])):
                worst = max(worst, abs(v - mine_rec[c]))
    naive_all = naive_per_ck * len(cks)
    reference = naive_all + naive_patch_s + parts["direction"] + parts["ngram"]
    print(f"reference (naive: one forward per prompt per instrument, no shared trace): {naive_per_ck * 1000:.0f} ms "
          f"per checkpoint on {len(subset)} checkpoints, x {len(cks)} = {naive_all:.1f}s "
          f"({naive_all / parts['per-checkpoint']:.1f}x ours); patching the pair {naive_patch_s:.1f}s; "
          f"direction and n-gram: the same code, "
          f"counted once -> {reference:.1f}s")
    print(f"naive values reproduce ours: max |difference| {worst:.2e}")
    print(f"RESULT: {ours:.1f}s for all instruments over {len(cks)} checkpoints (target < {TARGET_S:.0f}s, "
          f"{args.threads} thread(s)); reference {reference:.1f}s; ratio {reference / ours:.1f}x "
          f"(per-checkpoint instruments {naive_all / parts['per-checkpoint']:.1f}x)")


if __name__ == "__main__":
    main()
