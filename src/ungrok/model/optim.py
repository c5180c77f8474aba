"""The paper's two optimisers (docs/method.md §1.2): Muon on block matrices, AdamW on the rest.

Muon orthogonalises each matrix's (Nesterov) momentum with five Newton–Schulz steps,
so every update has roughly unit singular values whatever the gradient's scale; that
is why one LR (0.02–0.04) serves every block matrix. Embeddings, value embeddings and
the head are lookup-like or very wide, so they get plain AdamW at a large `embed_lr`;
the four λ mixing scalars ride along with AdamW at `matrix_lr`.

Each param group keeps its `base_lr` (and Muon its `base_weight_decay`); the training
loop sets `lr` and `weight_decay` from the schedule before every step.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

# Quintic Newton–Schulz coefficients: tuned to push singular values into ~[0.7, 1.2]
# quickly rather than to converge exactly to 1 (a fixed point is not needed for SGD).
NS_COEFFS = (3.4445, -4.7750, 2.0315)

# The two registered per-corpus arms (docs/method.md §1.2 table).
ARMS: dict[str, dict[str, object]] = {
    "ts": {"matrix_lr": 0.04, "embed_lr": 0.6, "weight_decay": 0.2, "wd_decay": "linear"},
    "web": {"matrix_lr": 0.02, "embed_lr": 0.2, "weight_decay": 0.0, "wd_decay": "none"},
}


class OptimizerConfig(BaseModel):
    """Muon + AdamW settings; `arm` fills in one of the paper's arms, explicit fields win."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    arm: Literal["ts", "web"] | None = "ts"
    matrix_lr: float = Field(0.04, gt=0)
    embed_lr: float = Field(0.6, gt=0)
    weight_decay: float = Field(0.2, ge=0)  # Muon only; AdamW groups have none
    wd_decay: Literal["linear", "none"] = "linear"  # linear: wd(s) = wd0 * (1 - s/steps)
    momentum: float = Field(0.95, ge=0, lt=1)
    ns_steps: int = Field(5, ge=1)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    adam_eps: float = Field(1e-8, gt=0)
    warmdown_start: float = Field(0.7, ge=0, le=1)  # LR multiplier 1.0 until int(steps * this)

    @model_validator(mode="before")
    @classmethod
    def _fill_arm(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("arm") in ARMS:
            return {**ARMS[data["arm"]], **data}
        return data


@torch.no_grad()
def newton_schulz(g: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Approximate the polar factor U Vᵀ of g = U S Vᵀ (singular values pushed to ~1).

    Works on one matrix or a stack (..., rows, cols). Runs in bf16 as the paper does; the
    wide orientation keeps X Xᵀ the small Gram matrix.
    """
    a, b, c = NS_COEFFS
    x = g.to(dtype)
    tall = g.size(-2) > g.size(-1)
    if tall:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # Frobenius >= spectral: every σ <= 1
    mul_add = torch.baddbmm if x.ndim == 3 else torch.addmm  # beta·M + alpha·P·Q in one kernel
    for _ in range(steps):
        gram = x @ x.mT
        poly = mul_add(gram, gram, gram, beta=b, alpha=c)  # b·A + c·A²
        x = mul_add(x, poly, x, beta=a)  # a·X + (b·A + c·A²)·X
    return x.mT if tall else x


class Muon(torch.optim.Optimizer):
    """MomentUm Orthogonalised by Newton–Schulz, for 2-D weights only.

    Per step, with g the gradient and m the momentum:
      buf <- m·buf + (1−m)·g;  d = (1−m)·g + m·buf (Nesterov) or buf
      p   <- p·(1 − lr·wd) − lr·√max(1, rows/cols)·NS(d)
    """

    def __init__(
        self,
        params,  # noqa: ANN001 - iterable of tensors or param-group dicts, as torch optimisers take
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        weight_decay: float = 0.0,
    ):
        defaults = dict(
            lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps, weight_decay=weight_decay
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon takes 2-D parameters only, got shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch's Optimizer.step signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            by_shape: dict[torch.Size, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is not None:
                    by_shape.setdefault(p.shape, []).append(p)
            for shape, params in by_shape.items():  # one batched NS per shape: far fewer small matmuls
                directions = torch.stack([self._direction(p, group) for p in params])
                updates = newton_schulz(directions, group["ns_steps"])
                scale = math.sqrt(max(1.0, shape[0] / shape[1]))
                for p, update in zip(params, updates, strict=True):
                    if group["weight_decay"]:
                        p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.add_(update.to(p.dtype), alpha=-group["lr"] * scale)
        return loss

    def _direction(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        """Update the momentum buffer; return the (Nesterov) direction to orthogonalise."""
        m, g = group["momentum"], p.grad
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(g)
        buf = state["momentum_buffer"]
        buf.lerp_(g, 1 - m)
        return g.lerp(buf, m) if group["nesterov"] else buf


def split_parameters(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Sort a GPT's parameters into the three optimiser groups; every parameter lands once."""
    groups: dict[str, list[nn.Parameter]] = {"matrix": [], "embed": [], "scalar": []}
    for name, p in model.named_parameters():
        if name.startswith("blocks.") and p.ndim == 2:
            groups["matrix"].append(p)
        elif name.startswith(("wte.", "value_embeds.", "lm_head.")):
            groups["embed"].append(p)
        elif p.ndim <= 1:
            groups["scalar"].append(p)
        else:
            raise ValueError(f"parameter {name} {tuple(p.shape)} fits no optimiser group")
    return groups


def build_optimizers(model: nn.Module, cfg: OptimizerConfig) -> tuple[Muon, torch.optim.AdamW]:
    """Muon on block matrices at matrix_lr; AdamW on embeddings + head (embed_lr) and λs (matrix_lr)."""
    groups = split_parameters(model)
    muon = Muon(
        groups["matrix"], lr=cfg.matrix_lr, momentum=cfg.momentum, ns_steps=cfg.ns_steps,
        weight_decay=cfg.weight_decay,
    )
    adam_groups = [{"params": groups["embed"], "lr": cfg.embed_lr}]
    if groups["scalar"]:
        adam_groups.append({"params": groups["scalar"], "lr": cfg.matrix_lr})
    # the fused kernel updates all 8.4M embedding/head weights of the paper model ~6x faster on CPU
    fused = all(p.device.type in ("cpu", "cuda") for g in adam_groups for p in g["params"])
    adamw = torch.optim.AdamW(
        adam_groups, betas=cfg.adam_betas, eps=cfg.adam_eps, weight_decay=0.0, fused=fused
    )
    for opt in (muon, adamw):
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
            group["base_weight_decay"] = group["weight_decay"]
    return muon, adamw


def apply_schedule(optimizers: tuple[torch.optim.Optimizer, ...], lr_mult: float, muon_wd: float) -> None:
    """Scale every group's LR by the multiplier; Muon's groups get the scheduled decay."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * lr_mult
            if isinstance(opt, Muon):
                group["weight_decay"] = muon_wd
