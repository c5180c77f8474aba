"""The training loss: soft-capped logits and cross-entropy as one autograd function.

At the demo's size the head dominates a CPU step: rows·context × vocab logits
(2,048 × 1,456 floats) go through divide, tanh, log-softmax and back, each a full
pass over memory that autograd also keeps a copy of. Doing the chain by hand keeps
two (N, V) tensors (the tanh and the capped logits) and makes three passes back
(softmax, minus the one-hot, times the tanh derivative) instead of autograd's
eight. The values are those of `cross_entropy(cap · tanh(h Wᵀ / cap), y)`; the
test compares value and gradients with that composition.

Under autocast (bf16 training) the three head matmuls run in the autocast dtype, the
backward two included (autograd does not replay the forward's autocast there), while
the soft-cap, softmax and loss stay fp32.
"""

from __future__ import annotations

from typing import Any

import torch


class SoftcapCrossEntropy(torch.autograd.Function):
    """mean_i [logsumexp(z_i) − z_i[y_i]] with z = cap · tanh(h Wᵀ / cap), computed in fp32.

    Returns (loss, z); z is the post-cap logits, handed back without a gradient."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, cap: float) -> Any:
        kind = h.device.type
        ctx.low = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
        t = (h @ weight.t()).float().div_(cap).tanh_()
        z = t * cap
        lse = torch.logsumexp(z, dim=-1)
        loss = (lse - z.gather(1, targets[:, None]).squeeze(1)).mean()
        ctx.save_for_backward(h, weight, targets, t, z, lse)
        ctx.mark_non_differentiable(z)
        return loss, z

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, _grad_z: Any) -> Any:
        h, weight, targets, t, z, lse = ctx.saved_tensors
        g = (z - lse[:, None]).exp_()  # softmax(z), out of place: z was returned to the caller
        g[torch.arange(g.shape[0], device=g.device), targets] -= 1
        g.mul_(1 - t * t).mul_(grad_loss / g.shape[0])  # d z / d logits = 1 − tanh²
        if ctx.low is not None:
            g, w_low, h_low = g.to(ctx.low), weight.to(ctx.low), h.to(ctx.low)
            return (g @ w_low).to(h.dtype), (g.t() @ h_low).to(weight.dtype), None, None
        g = g.to(h.dtype)
        return g @ weight.to(h.dtype), (g.t() @ h).to(weight.dtype), None, None


def softcap_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, cap: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss, post-cap logits) for hidden states h (N, d), head weight (V, d), targets (N,)."""
    return SoftcapCrossEntropy.apply(h, weight, targets, cap)
