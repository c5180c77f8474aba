"""Same-run activation patching between two checkpoints (docs/method.md §11.4).

Components are cached on the CM prompts at the source checkpoint: the embedding stream,
every head's pre-W_O output and every MLP increment (1 + n_layer * n_head + n_layer).
Each is swapped, at all positions, into a forward of the destination checkpoint, and

    recovery = (CM_patch - CM_dst) / (CM_src - CM_dst)

says how much of the source's margin that one component carries over (1 = all of it;
above 1 or below 0 is possible). "all" patches every component at once: the
destination then keeps only its own W_O and unembedding, so 1 - recovery("all") is
what the readout change between the checkpoints does on its own. Recovery is NaN when
the two checkpoints' CMs are within 1e-6 nats (no difference to recover).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ungrok.errors import UngrokError
from ungrok.mech.prompts import MechPrompts
from ungrok.mech.rows import mech_row
from ungrok.mech.trace import Intervention, cached_components, contrast_margin, head_key, mlp_key, trace
from ungrok.model.gpt import GPT, ModelConfig

LABELS = ("peak_to_final", "final_to_peak")
MIN_DENOMINATOR = 1e-6


def component_names(cfg: ModelConfig) -> list[str]:
    """embed, then per layer its heads and its MLP, in forward order."""
    names = ["embed"]
    for layer in range(cfg.n_layer):
        names += [head_key(layer, h) for h in range(cfg.n_head)]
        names.append(mlp_key(layer))
    return names


@dataclass(frozen=True)
class PatchResult:
    """CMs and recovery per component (plus "all") for one source -> destination pair."""

    label: str
    cm_src: float
    cm_dst: float
    cm_patch: dict[str, float]
    recovery: dict[str, float]

    def rows(self, run: str, step: int, rule: str, prompts_sha256: str) -> list[dict[str, Any]]:
        """`step` is the destination checkpoint's step."""
        metric = f"recovery_{self.label}"
        return [
            mech_row(run, step, rule, "patch", c, metric, v, prompts_sha256) for c, v in self.recovery.items()
        ]


def recovery_fraction(cm_patch: float, cm_src: float, cm_dst: float) -> float:
    denom = cm_src - cm_dst
    return (cm_patch - cm_dst) / denom if abs(denom) >= MIN_DENOMINATOR else math.nan


def _same_shape(a: ModelConfig, b: ModelConfig) -> None:
    keys = ("vocab_size", "n_layer", "n_head", "n_embd", "mlp_ratio")
    diff = [k for k in keys if getattr(a, k) != getattr(b, k)]
    if diff:
        raise UngrokError(f"cannot patch between checkpoints of different shapes ({', '.join(diff)} differ)")


@torch.no_grad()
def patch_components(src: GPT, dst: GPT, prompts: MechPrompts, label: str) -> PatchResult:
    """Patch every component of src into dst one at a time, then all at once."""
    if label not in LABELS:
        raise UngrokError(f"patch label must be one of {', '.join(LABELS)}, not {label!r}")
    _same_shape(src.config, dst.config)
    idx, last = prompts.cm_batch()
    cache = cached_components(trace(src, idx, read=last))  # logits only where read; caches are all positions
    cm_src = contrast_margin(src, prompts)
    cm_dst = contrast_margin(dst, prompts)
    cm_patch = {
        name: contrast_margin(dst, prompts, Intervention(patch={name: cache[name]}))
        for name in component_names(dst.config)
    }
    cm_patch["all"] = contrast_margin(dst, prompts, Intervention(patch=cache))
    recovery = {name: recovery_fraction(v, cm_src, cm_dst) for name, v in cm_patch.items()}
    return PatchResult(label, cm_src, cm_dst, cm_patch, recovery)
