"""One instrumented forward of our GPT that every mechanism instrument runs through.

It re-states `GPT.forward` op for op (same modules, same `_norm` / `_rotate`, same SDPA
call), so its logits equal the model's (bit for bit on CPU; tested to 1e-6), while it
keeps what the instruments read and lets them intervene:

- records the embedding stream x0 = norm(wte), each layer's per-head pre-W_O outputs
  (value embeddings mixed in, as in the model), attention outputs, MLP increments, the
  residual after every block, and pre- and post-softcap logits;
- zero-ablates heads (pre-W_O, all positions), replaces components with cached ones
  (patching: "embed", "L{l}H{h}", "mlp:L{l}") and projects a unit direction out of
  the residual after block k at all positions.

A re-statement rather than hooks because per-head pre-W_O outputs exist only inside
`Attention.forward`; a hook on `wo`'s input would reach them but not the residual
between the attention and MLP halves of a block, which projection and patching need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ungrok.model.gpt import GPT, _norm, _rotate


@dataclass(frozen=True)
class Intervention:
    """What to change in the forward; the default changes nothing.

    patch maps a component to the tensor that replaces it at all positions:
    "embed" [B, T, d], "L{l}H{h}" [B, T, head_dim] (pre-W_O), "mlp:L{l}" [B, T, d].
    project = (k, u): remove the unit vector u from the residual after block k (1-based;
    0 is the embedding stream).
    """

    ablate: frozenset[tuple[int, int]] = frozenset()
    patch: Mapping[str, torch.Tensor] = field(default_factory=dict)
    project: tuple[int, torch.Tensor] | None = None


NONE = Intervention()


@dataclass
class Trace:
    """Everything one forward produced; lists are per layer, `resid[k - 1]` is after block k."""

    embed: torch.Tensor  # [B, T, d]
    heads: list[torch.Tensor]  # [B, T, H, hd] pre-W_O
    attn: list[torch.Tensor]  # [B, T, d]
    mlp: list[torch.Tensor]  # [B, T, d]
    resid: list[torch.Tensor]  # [B, T, d], after any projection
    logits_raw: torch.Tensor  # fp32 pre-softcap, at the read positions
    logits: torch.Tensor  # soft-capped

    @property
    def final(self) -> torch.Tensor:
        return self.resid[-1]


def head_key(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def mlp_key(layer: int) -> str:
    return f"mlp:L{layer}"


def _project(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    return x - (x @ u).unsqueeze(-1) * u


def _gather(x: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """x [B, T, d] at positions read [B] -> [B, d], or [B, K] -> [B, K, d]."""
    if read.dim() == 1:
        return x[torch.arange(x.shape[0]), read]
    return torch.gather(x, 1, read.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


@torch.no_grad()
def trace(
    model: GPT, idx: torch.Tensor, intervention: Intervention | None = None, read: torch.Tensor | None = None
) -> Trace:
    """Run the model on idx [B, T] with an intervention; logits at `read` ([B] or [B, K]) or everywhere."""
    iv = intervention or NONE
    cfg = model.config
    B, T = idx.shape
    if model.cos.shape[1] < T:
        raise ValueError(f"sequence of {T} tokens exceeds the model context {model.cos.shape[1]}")
    cos, sin = model.cos[:, :T], model.sin[:, :T]
    k_proj, u = iv.project if iv.project is not None else (-1, None)

    x = _norm(model.wte(idx))
    if "embed" in iv.patch:
        x = iv.patch["embed"]
    if k_proj == 0:
        x = _project(x, u)
    embed = x
    heads, attns, mlps, resid = [], [], [], []
    shape = (B, T, cfg.n_head, cfg.head_dim)
    for i, block in enumerate(model.blocks):
        at = block.attn
        h_in = _norm(x)
        q = at.wq(h_in).view(shape)
        k = at.wk(h_in).view(shape)
        v = at.wv(h_in).view(shape)
        if at.ve_lambda is not None:
            ve = model.value_embeds[str(i)](idx)
            v = at.ve_lambda[0] * v + at.ve_lambda[1] * ve.view(shape)
        q, k = _norm(_rotate(q, cos, sin)), _norm(_rotate(k, cos, sin))
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        y = y.transpose(1, 2)  # [B, T, H, hd]
        changed = [h for h in range(cfg.n_head) if (i, h) in iv.ablate or head_key(i, h) in iv.patch]
        if changed:
            y = y.clone()
            for h in changed:
                y[:, :, h] = 0.0 if (i, h) in iv.ablate else iv.patch[head_key(i, h)]
        a = at.wo(y.reshape(B, T, -1))
        x = x + a
        m = block.mlp(_norm(x))
        if mlp_key(i) in iv.patch:
            m = iv.patch[mlp_key(i)]
        x = x + m
        if k_proj == i + 1:
            x = _project(x, u)
        heads.append(y)
        attns.append(a)
        mlps.append(m)
        resid.append(x)
    xr = x if read is None else _gather(x, read)
    raw = model.lm_head(_norm(xr)).float()
    cap = cfg.softcap
    return Trace(embed, heads, attns, mlps, resid, raw, cap * torch.tanh(raw / cap))


def cached_components(tr: Trace) -> dict[str, torch.Tensor]:
    """Every patchable component of a trace, keyed as `Intervention.patch` expects."""
    out = {"embed": tr.embed}
    for i, y in enumerate(tr.heads):
        for h in range(y.shape[2]):
            out[head_key(i, h)] = y[:, :, h]
        out[mlp_key(i)] = tr.mlp[i]
    return out


def last_margins(logits: torch.Tensor, rule_id: int, prior_id: int) -> torch.Tensor:
    """Per-row log p(rule) - log p(prior) from soft-capped logits [B, V] (float64)."""
    lp = torch.log_softmax(logits.float(), dim=-1)
    return (lp[:, rule_id] - lp[:, prior_id]).double()


def contrast_margin(model: GPT, prompts, intervention: Intervention | None = None) -> float:  # noqa: ANN001
    """Post-softcap CM over the CM prompts (the `probes.margins` definition) under an intervention."""
    idx, last = prompts.cm_batch()
    tr = trace(model, idx, intervention, read=last)
    return float(last_margins(tr.logits, prompts.rule_id, prompts.prior_id).mean())


class TracedLogits:
    """A probes `LogitsModel` running the traced forward under an intervention (for BatteryPlan)."""

    def __init__(self, model: GPT, intervention: Intervention | None = None):
        self.model = model
        self.intervention = intervention
        self.vocab_size = int(model.config.vocab_size)
        self.context = int(model.config.context)
        self.device = next(model.parameters()).device

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        return trace(self.model, input_ids, self.intervention, read=positions).logits
