"""Exact split of the pre-softcap rule-prior logit gap into residual-stream parts (docs/method.md §11.1).

The final residual is a sum, x_final = x0 + sum_l attn_l + sum_l mlp_l, and the final
RMSNorm has no gain, so at the prediction site

    gap = logit(rule) - logit(prior) = x_final . (w_rule - w_prior) / rms(x_final)

splits exactly into one term per part once the realised rms is held fixed. The attention
term splits further into heads through the column slices of W_O (value embeddings sit
inside v, so they belong to the head that reads them). Terms are averaged over the CM
prompts; each prompt's parts must add up to the model's own gap within `tol`, else the
instrument refuses to report (a drifted forward would otherwise go unnoticed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ungrok.errors import UngrokError
from ungrok.mech.prompts import MechPrompts
from ungrok.mech.rows import mech_row
from ungrok.mech.trace import trace
from ungrok.model.gpt import GPT

TOLERANCE = 1e-3  # nats; docs/method.md §11.1 asserts this at every checkpoint


@dataclass(frozen=True)
class Decomposition:
    """Mean terms (pre-softcap logit units) over the CM prompts; `error` is the worst prompt's."""

    embed: float
    attn: tuple[float, ...]  # per layer
    heads: tuple[tuple[float, ...], ...]  # [layer][head]
    mlp: tuple[float, ...]
    gap: float  # the model's own mean pre-softcap gap
    error: float  # max over prompts of |gap - sum of parts|
    n_prompts: int
    bias: float | None = None  # constant (bias-vector) terms; Hugging Face models only

    @property
    def ctx(self) -> float:
        """C_ctx: everything the blocks wrote (attention, value embeddings included, and MLPs)."""
        return sum(self.attn) + sum(self.mlp)

    def rows(self, run: str, step: int, rule: str, prompts_sha256: str) -> list[dict[str, Any]]:
        def row(component: str, value: float) -> dict[str, Any]:
            return mech_row(run, step, rule, "decomp", component, "nats", value, prompts_sha256)

        out = [row("embed", self.embed)]
        for layer, (a, m) in enumerate(zip(self.attn, self.mlp, strict=True)):
            out.append(row(f"attn:L{layer}", a))
            out += [row(f"attn:L{layer}H{h}", v) for h, v in enumerate(self.heads[layer])]
            out.append(row(f"mlp:L{layer}", m))
        if self.bias is not None:
            out.append(row("bias", self.bias))
        out += [row("ctx", self.ctx), row("gap", self.gap), row("error", self.error)]
        return out


def summarize_terms(
    embed: torch.Tensor,
    attn: torch.Tensor,
    heads: torch.Tensor,
    mlp: torch.Tensor,
    gap: torch.Tensor,
    tol: float,
    bias: torch.Tensor | None = None,
    what: str = "model",
) -> Decomposition:
    """Per-prompt float64 terms ([B], [L, B], [L, H, B], [L, B], [B]) -> checked mean Decomposition."""
    parts = embed + attn.sum(0) + mlp.sum(0) + (bias if bias is not None else 0.0)
    error = float((gap - parts).abs().max())
    split = float((heads.sum(1) - attn).abs().max()) if heads.numel() else 0.0
    if not error < tol:
        raise UngrokError(
            f"logit-gap decomposition of the {what} misses its own gap by {error:.2e} nats (limit {tol:g})"
        )
    if not split < tol:
        raise UngrokError(f"head terms of the {what} miss their layer's attention term by {split:.2e} nats")
    return Decomposition(
        embed=float(embed.mean()),
        attn=tuple(float(v) for v in attn.mean(1)),
        heads=tuple(tuple(float(v) for v in row) for row in heads.mean(2)),
        mlp=tuple(float(v) for v in mlp.mean(1)),
        gap=float(gap.mean()),
        error=error,
        n_prompts=int(gap.numel()),
        bias=None if bias is None else float(bias.mean()),
    )


@torch.no_grad()
def decompose_gap(model: GPT, prompts: MechPrompts, tol: float = TOLERANCE) -> Decomposition:
    """Split the mean pre-softcap rule-prior gap on the CM prompts into embed / attn (per head) / mlp."""
    cfg = model.config
    idx, last = prompts.cm_batch()
    tr = trace(model, idx, read=last)
    rows = torch.arange(idx.shape[0])
    w = model.lm_head.weight.double()
    dw = w[prompts.rule_id] - w[prompts.prior_id]
    x = tr.final[rows, last].double()
    eps = torch.finfo(tr.final.dtype).eps  # F.rms_norm's default, as the model uses it
    rms = (x.pow(2).mean(-1) + eps).sqrt()

    def term(c: torch.Tensor) -> torch.Tensor:  # [B, T, d] -> [B]
        return (c[rows, last].double() @ dw) / rms

    wo = torch.stack(
        [b.attn.wo.weight.double().view(cfg.n_embd, cfg.n_head, cfg.head_dim) for b in model.blocks]
    )
    y = torch.stack([hd[rows, last].double() for hd in tr.heads])  # [L, B, H, hd]
    heads = torch.einsum("lbhk,ldhk,d->lhb", y, wo, dw) / rms
    gap = (tr.logits_raw[:, prompts.rule_id] - tr.logits_raw[:, prompts.prior_id]).double()
    return summarize_terms(
        term(tr.embed),
        torch.stack([term(a) for a in tr.attn]),
        heads,
        torch.stack([term(m) for m in tr.mlp]),
        gap,
        tol,
    )
