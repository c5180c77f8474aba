"""Direction specificity: remove the cue-class direction and see what else breaks (docs/method.md §11.5).

d_k = mean(cue) - mean(control) of the normalised last-position residual after block k
(the class prompts). Its unit vector is projected out of the raw residual after block k
at every position, and three effects are measured against the unedited model:

- dcm: the change in CM (post-softcap) on the CM prompts: how much of the rule's margin
  lives on the direction;
- other_abs_delta: the mean over the other families of |change in the family's mean
  length-normalised held-out conflict margin|, scored by the probes' own BatteryPlan
  through a traced adapter: how much else the direction carries;
- dbpb: the change in bits per byte on the first windows of the run's training stream
  (sum of CE nats / ln 2 / UTF-8 bytes of the predicted tokens): what it costs the LM.

A specific direction moves CM a lot and the other two little.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ungrok.errors import UngrokError
from ungrok.mech.prompts import CONTROL, CUE, MechPrompts
from ungrok.mech.rows import mech_row
from ungrok.mech.trace import Intervention, TracedLogits, contrast_margin, forward_logits, trace
from ungrok.model.gpt import GPT, _norm

MIN_NORM = 1e-8  # below it the classes do not differ and no direction is defined
WINDOWS = 16
_LOGIT_BUDGET = 1 << 24  # floats of logits per bpb chunk (64 MiB)


@dataclass(frozen=True)
class DirectionResult:
    """Per block k = 1..n_layer ([k - 1]); NaN where the direction is undefined."""

    cm: float
    bpb: float
    d_norm: tuple[float, ...]
    dcm: tuple[float, ...]
    other_abs_delta: tuple[float, ...]
    dbpb: tuple[float, ...]

    def rows(self, run: str, step: int, rule: str, prompts_sha256: str) -> list[dict[str, Any]]:
        metrics = (("dcm", self.dcm), ("other_abs_delta", self.other_abs_delta), ("dbpb", self.dbpb))
        return [mech_row(run, step, rule, "direction", f"block{k}", metric, values[k - 1], prompts_sha256)
                for k in range(1, len(self.dcm) + 1) for metric, values in metrics]


# --------------------------------------------------------------------------- bits per byte
def first_windows(tokens: np.ndarray | torch.Tensor, length: int, n: int = WINDOWS) -> torch.Tensor:
    """The first n consecutive, non-overlapping windows of `length` tokens of a token stream: [n, length]."""
    flat = torch.as_tensor(np.asarray(tokens, dtype=np.int64)).reshape(-1)
    if flat.numel() < n * length:
        raise UngrokError(f"the token stream has {flat.numel():,} tokens, fewer than {n} windows of {length}")
    return flat[: n * length].view(n, length).clone()


def bytes_per_token(windows: torch.Tensor, decode: Callable[[list[int]], str]) -> float:
    """UTF-8 bytes per predicted token (each window's tokens after its first), decoding whole windows."""
    targets = windows[:, 1:]
    total = sum(len(decode(row.tolist()).encode("utf-8")) for row in targets)
    if total == 0:
        raise UngrokError("the bpb windows decode to no text")
    return total / targets.numel()


@torch.no_grad()
def bits_per_byte(
    model: GPT, windows: torch.Tensor, bytes_per_token: float, intervention: Intervention | None = None
) -> float:
    """Sum of next-token CE (nats, soft-capped logits) / ln 2 / bytes over the windows [N, T]."""
    inputs, targets = windows[:, :-1], windows[:, 1:]
    if inputs.shape[1] > model.config.context:
        raise UngrokError(f"bpb windows of {windows.shape[1]} tokens exceed the model context + 1")
    per_chunk = max(1, _LOGIT_BUDGET // (inputs.shape[1] * model.config.vocab_size))
    nats = 0.0
    for s in range(0, inputs.shape[0], per_chunk):
        logits = forward_logits(model, inputs[s : s + per_chunk], intervention)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[s : s + per_chunk].reshape(-1),
                             reduction="none")
        nats += float(ce.double().sum())
    return nats / math.log(2) / (bytes_per_token * targets.numel())


def training_windows(run_dir: Path, model: GPT, tokenizer: Any) -> tuple[torch.Tensor, float]:
    """The first WINDOWS context windows of the run's own training shard stream, and their bytes per token."""
    from ungrok.corpus.shards import Corpus
    from ungrok.probes.models import _config_data_path

    data = _config_data_path(Path(run_dir))
    if data is None:
        raise UngrokError(f"{run_dir}: direction needs the run's training corpus, and config.json names none")
    context = _bpb_context(run_dir, model)
    need = WINDOWS * (context + 1)
    parts, have = [], 0
    for shard in Corpus(data).shards():
        parts.append(np.asarray(shard[: need - have]))
        have += parts[-1].size
        if have >= need:
            break
    windows = first_windows(np.concatenate(parts) if parts else np.zeros(0, np.int64), context + 1)
    return windows, bytes_per_token(windows, lambda ids: tokenizer.tokenizer.decode(ids))


def _bpb_context(run_dir: Path, model: GPT) -> int:
    """The run's training context (its sampler's), never more than the model's."""
    import json

    try:
        doc = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
        ctx = int(doc["config"]["sampler"]["context"])
    except (OSError, ValueError, KeyError, TypeError):
        ctx = int(model.config.context)
    return min(ctx, int(model.config.context))


# --------------------------------------------------------------------------- the direction
@torch.no_grad()
def class_directions(model: GPT, prompts: MechPrompts) -> list[torch.Tensor]:
    """d_k (unnormalised, fp32) for k = 1..n_layer: cue mean - control mean of the normalised residual."""
    idx, last = prompts.class_batch()
    tr = trace(model, idx, read=last)
    rows = torch.arange(idx.shape[0])
    labels = np.asarray(prompts.class_labels)
    cue = torch.from_numpy(labels == CUE)
    control = torch.from_numpy(labels == CONTROL)
    out = []
    for r in tr.resid:
        f = _norm(r[rows, last]).double()
        out.append((f[cue].mean(0) - f[control].mean(0)).float())
    return out


def family_margins(
    model: GPT, prompts: MechPrompts, intervention: Intervention | None = None
) -> dict[str, float]:
    """Mean length-normalised held-out conflict margin of each other family (scored items only)."""
    plan = prompts.other_plan
    if plan is None:
        return {}
    groups = plan.score(TracedLogits(model, intervention)).groups()
    return {g.family: g.mean_margin_norm for g in groups if g.mean_margin_norm is not None}


def direction_specificity(
    model: GPT, prompts: MechPrompts, windows: torch.Tensor, bytes_per_token: float
) -> DirectionResult:
    """Fit d_k at this checkpoint and project it out after block k, for every k."""
    cm = contrast_margin(model, prompts)
    bpb = bits_per_byte(model, windows, bytes_per_token)
    base = family_margins(model, prompts)
    norms, dcm, other, dbpb = [], [], [], []
    for k, d in enumerate(class_directions(model, prompts), 1):
        n = float(d.double().norm())
        norms.append(n)
        if n < MIN_NORM:
            dcm.append(math.nan)
            other.append(math.nan)
            dbpb.append(math.nan)
            continue
        iv = Intervention(project=(k, d / d.norm()))
        dcm.append(contrast_margin(model, prompts, iv) - cm)
        moved = family_margins(model, prompts, iv)
        deltas = [abs(moved[f] - base[f]) for f in base if f in moved]
        other.append(float(np.mean(deltas)) if deltas else math.nan)
        dbpb.append(bits_per_byte(model, windows, bytes_per_token, iv) - bpb)
    return DirectionResult(cm, bpb, tuple(norms), tuple(dcm), tuple(other), tuple(dbpb))
