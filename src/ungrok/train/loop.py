"""The training loop (docs/method.md §1.2), resumable to the bit, with in-loop probe callbacks.

At step s: set LR/WD → save checkpoint s (weights after s updates) and the resume
state if s is scheduled → probe callbacks if due → stop if s == steps → one batch,
forward, backward, muon.step(), adamw.step(). Kill the process at any moment and run
the same call again: it continues from the last saved state and ends with the same
weights, train_log.jsonl (every field but time_s) and monitor.jsonl as a run that was
never interrupted.

Probe callbacks: any object with `on_probe(step, model) -> dict | None`. It is called on
rank 0 at the probe cadence with the model in eval mode under torch.no_grad (train
mode is restored afterwards). A returned dict goes to OUT/monitor.jsonl as
{"step": step, **result}; a string under "display" is shown beside the progress bar.
A callback that keeps history across calls may define `state_dict()` and
`load_state_dict(state)` (tensors and plain Python values only) to be resumed too.

`cfg.log` names trackers (ungrok.train.trackers): each train_log.jsonl line and monitor
record also goes to TensorBoard, W&B (offline) or trackio (local) as it is written.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ungrok.errors import UngrokError
from ungrok.heap import keep_freed_memory
from ungrok.model.checkpoint import checkpoint_paths, save_checkpoint
from ungrok.model.compiled import compiled
from ungrok.model.gpt import GPT, ModelConfig
from ungrok.model.optim import Muon, apply_schedule, build_optimizers
from ungrok.train import dist as distributed
from ungrok.train import trackers
from ungrok.train.config import TrainConfig, check_run, resolve_model, resolved_config
from ungrok.train.display import Display
from ungrok.train.rundir import RunDir, append_jsonl, prepare, read_jsonl, settle_outputs
from ungrok.train.sampler import PackedSampler, served_windows
from ungrok.train.schedule import checkpoint_steps, lr_multiplier, muon_weight_decay, probe_due
from ungrok.train.state import load_resume_state, rng_state, save_resume_state, set_rng_state


@runtime_checkable
class ProbeCallback(Protocol):
    def on_probe(self, step: int, model: GPT) -> dict | None: ...


@dataclass
class TrainResult:
    out: Path
    status: Literal["trained", "resumed", "complete"]  # complete: OUT already held this finished run
    steps: int
    final_loss: float | None
    tokens: int
    checkpoints: list[int] = field(default_factory=list)
    wall_s: float = 0.0


class Diverged(UngrokError):
    """A non-finite loss or weight: the run stops, keeping every checkpoint saved before it."""


def read_rows(sampler: PackedSampler, shards: np.ndarray, offsets: np.ndarray) -> torch.Tensor:
    """(rows, context + 1) int64 token windows."""
    rows = np.stack([sampler.tokens(s, o) for s, o in zip(shards, offsets, strict=True)])
    return torch.from_numpy(rows.astype(np.int64))


def matmul_precision(precision: str | None, device: torch.device) -> str:
    """The precision a run trains in: the config's, else bf16 on CUDA (the paper's) and fp32 elsewhere."""
    return precision or ("bf16" if device.type == "cuda" else "fp32")


def forward_backward(net: nn.Module, rows: torch.Tensor, micro: int, device: torch.device,
                     precision: str = "fp32") -> torch.Tensor:
    """Mean loss over the rows, gradients accumulated over micro-batches of `micro` rows.

    bf16 autocasts the matmuls only; weights, gradients and optimiser state stay fp32."""
    chunks = rows.shape[0] // micro
    total = torch.zeros((), device=device)
    for i in range(chunks):
        part = rows[i * micro : (i + 1) * micro].to(device, non_blocking=True)
        last = i == chunks - 1
        sync = contextlib.nullcontext() if last or not hasattr(net, "no_sync") else net.no_sync()
        amp = torch.autocast(device.type, torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with sync:
            with amp:
                _, loss = net(part[:, :-1], part[:, 1:])
            (loss / chunks).backward()
        total += loss.detach()
    return total / chunks


def run_probes(callbacks: Sequence[ProbeCallback], model: GPT, step: int) -> list[dict]:
    """Each callback's result at this step, computed in eval mode without gradients."""
    results = []
    model.eval()
    try:
        with torch.no_grad():
            for cb in callbacks:
                out = cb.on_probe(step, model)
                if out is not None:
                    results.append({"step": step, **out})
    finally:
        model.train()
    return results


def weights_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def train(
    cfg: TrainConfig,
    data: str | Path,
    out: str | Path,
    *,
    callbacks: Sequence[ProbeCallback] = (),
    force: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume, or report already finished) the run `cfg` on the corpus `data` into `out`."""
    world = distributed.world_from_env()
    dev = distributed.pick_device(device, world)
    mcfg = resolve_model(cfg)
    check_run(cfg, mcfg, data, world.size)
    trackers.require(cfg.log)
    run = RunDir(Path(out))
    resolved = resolved_config(cfg, mcfg, data)
    status = prepare(run, resolved, force) if world.is_main else "resume"
    distributed.init_world(world, dev)
    if world.size > 1:  # the other ranks wait until rank 0 has settled OUT
        torch.distributed.barrier()
        status = "complete" if run.complete.is_file() else status
    if status == "complete":
        done = json.loads(run.complete.read_text(encoding="utf-8"))
        distributed.leave_world(world)
        return TrainResult(run.root, "complete", done["steps"], done["final_loss"], done["tokens"],
                           done["checkpoints"], done["wall_s"])
    try:
        return _train(cfg, mcfg, data, run, world, dev, list(callbacks), status, progress)
    finally:
        distributed.leave_world(world)


def _train(cfg: TrainConfig, mcfg: ModelConfig, data: str | Path, run: RunDir, world: distributed.World,
           dev: torch.device, callbacks: list, status: str, progress: bool) -> TrainResult:
    s_cfg, steps = cfg.sampler, cfg.sampler.steps
    if dev.type == "cpu":
        keep_freed_memory()  # per-step temporaries stay mapped (ungrok.heap)
    torch.manual_seed(cfg.seed)
    model = GPT(mcfg)  # initialised on the CPU: the same weights whatever the device
    model.to(dev).train()
    for m in model.modules():
        if hasattr(m, "cpu_core_fp32"):
            m.cpu_core_fp32 = cfg.cpu_attention == "fp32"
    model.loss_chunk = cfg.loss_chunk
    muon, adamw = build_optimizers(model, cfg.optimizer)
    net: nn.Module = model
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel

        # the RoPE tables are the only buffers and are equal everywhere: no per-forward sync
        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                      forward_sync_buffers=False)
    if cfg.compile:
        net = compiled(net, "train.compile")
    precision = matmul_precision(cfg.precision, dev)
    saves = checkpoint_steps(cfg.checkpoints.rules, steps)
    start, elapsed0, last_loss = 0, 0.0, None
    state = load_resume_state(run.resume) if status == "resume" else None
    if state is not None:
        start, elapsed0 = state["step"], state["elapsed_s"]
        _restore(state, model, muon, adamw, callbacks)
    lines = {"log": state["log_lines"] if state else 0, "monitor": state["monitor_lines"] if state else 0}
    if world.is_main:
        settle_outputs(run, state, saves)
        if lines["log"]:
            last_loss = read_jsonl(run.log)[-1]["loss"]
    tokens_per_step = s_cfg.batch_size * s_cfg.context
    rows_here = world.rows(s_cfg.batch_size)
    micro = cfg.device_batch_size or (rows_here.stop - rows_here.start)
    batches = served_windows(data, s_cfg, cfg.seed, start_step=start)
    t0 = time.perf_counter()
    curves = _open_trackers(cfg, mcfg, data, run, start, world.is_main)
    with curves, Display(progress and world.is_main, steps, start) as display:
        for step in range(start, steps + 1):
            mult = lr_multiplier(step, steps, cfg.optimizer.warmdown_start)
            wd = muon_weight_decay(step, steps, cfg.optimizer.weight_decay, cfg.optimizer.wd_decay)
            apply_schedule((muon, adamw), mult, wd)
            if step in saves and not (state is not None and step == start) and world.is_main:
                if not weights_finite(model):
                    _stop(run, step, "weights are not finite", saves)
                elapsed = elapsed0 + time.perf_counter() - t0
                _save(run, cfg, model, (muon, adamw), callbacks, step, tokens_per_step, elapsed, lines)
            if callbacks and world.is_main and probe_due(step, cfg.probe_every, cfg.probe_dense_until):
                for record in run_probes(callbacks, model, step):
                    append_jsonl(run.monitor, record)
                    curves.log_monitor(record)
                    lines["monitor"] += 1
                    if isinstance(record.get("display"), str):
                        display.note = record["display"]
            if step == steps:
                break
            _, sampler, shards, offsets = next(batches)
            rows = read_rows(sampler, shards[rows_here], offsets[rows_here])
            loss_t = distributed.mean_over_ranks(forward_backward(net, rows, micro, dev, precision), world)
            loss = float(loss_t)
            if not math.isfinite(loss):
                _stop(run, step, f"loss is {loss}", saves, world.is_main)
            muon.step()
            adamw.step()
            model.zero_grad(set_to_none=True)
            last_loss = loss
            if world.is_main:
                session = time.perf_counter() - t0
                log_record = {
                    "step": step, "loss": loss, "lr": muon.param_groups[0]["lr"], "lr_mult": mult, "wd": wd,
                    "tokens": (step + 1) * tokens_per_step, "time_s": round(elapsed0 + session, 3),
                }
                append_jsonl(run.log, log_record)
                curves.log_train(log_record)
                lines["log"] += 1
                tok_s = (step + 1 - start) * tokens_per_step / max(session, 1e-9)
                display.update(step, loss, tok_s, step + 1 in saves)
    wall = elapsed0 + time.perf_counter() - t0
    result = TrainResult(run.root, "resumed" if start > 0 else "trained", steps, last_loss,
                         steps * tokens_per_step, saves, round(wall, 3))
    if world.is_main:
        from ungrok.atomic import write_json

        write_json(run.complete, {
            "steps": steps, "final_loss": last_loss, "tokens": result.tokens, "checkpoints": saves,
            "wall_s": result.wall_s, "device": str(dev), "world_size": world.size,
        })
    return result


def _open_trackers(cfg: TrainConfig, mcfg: ModelConfig, data: str | Path, run: RunDir, start: int,
                   main: bool) -> trackers.Trackers:
    """The run's curves in the trackers it asked for (rank 0 only), named after OUT's last two folders."""
    if not (cfg.log and main):
        return trackers.Trackers()
    name = f"{run.root.resolve().parent.name}/{run.root.name}"
    return trackers.open_trackers(cfg.log, run.root, name, resolved_config(cfg, mcfg, data), start)


def _restore(state: dict, model: GPT, muon: Muon, adamw: torch.optim.Optimizer, callbacks: list) -> None:
    model.load_state_dict(state["model"])
    muon.load_state_dict(state["muon"])
    adamw.load_state_dict(state["adamw"])
    set_rng_state(state["rng"])
    for cb, cb_state in zip(callbacks, state["callbacks"], strict=False):
        if cb_state is not None and hasattr(cb, "load_state_dict"):
            cb.load_state_dict(cb_state)


def _save(run: RunDir, cfg: TrainConfig, model: GPT, optimizers: tuple[Muon, torch.optim.Optimizer],
          callbacks: list, step: int, tokens_per_step: int, elapsed: float, lines: dict[str, int]) -> None:
    """Checkpoint `step`, then the full trainer state that resumes from it."""
    save_checkpoint(model, run.checkpoints, step, cfg.checkpoints.dtype,
                    extra={"tokens": step * tokens_per_step, "seed": cfg.seed})
    muon, adamw = optimizers
    state: dict[str, Any] = {
        "step": step,
        "model": {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()},
        "muon": muon.state_dict(),
        "adamw": adamw.state_dict(),
        "rng": rng_state(),
        "log_lines": lines["log"],
        "monitor_lines": lines["monitor"],
        "elapsed_s": elapsed,
        "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else None for cb in callbacks],
    }
    save_resume_state(run.resume, state)


def _stop(run: RunDir, step: int, why: str, saves: list[int], main: bool = True) -> None:
    """Record the divergence and raise; checkpoints already written stay as they are."""
    kept = [s for s in saves if s <= step and checkpoint_paths(run.checkpoints, s).meta.is_file()]
    last = (
        f"last good checkpoint: {checkpoint_paths(run.checkpoints, kept[-1]).weights}"
        if kept
        else "no checkpoint"
    )
    if main:
        from ungrok.atomic import write_json

        write_json(run.failed, {"step": step, "reason": why, "last_checkpoint": kept[-1] if kept else None})
    raise Diverged(f"step {step}: {why}; training stopped ({last}; marked in {run.failed.name})")
