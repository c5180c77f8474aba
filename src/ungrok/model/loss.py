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


def _capped(h: torch.Tensor, weight: torch.Tensor, cap: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tanh(h Wᵀ / cap), the capped logits z, logsumexp(z)) in fp32; under autocast the matmul runs low."""
    t = (h @ weight.t()).float().div_(cap).tanh_()
    z = t * cap
    return t, z, torch.logsumexp(z, dim=-1)


def _row_losses(z: torch.Tensor, lse: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return lse - z.gather(1, targets[:, None]).squeeze(1)


def _logit_grad(softmax: torch.Tensor, t: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each row's loss gradient w.r.t. its pre-cap logits, (softmax − one-hot) · (1 − tanh²),
    written over `softmax`."""
    softmax[torch.arange(softmax.shape[0], device=softmax.device), targets] -= 1
    return softmax.mul_(1 - t * t)  # d z / d logits = 1 − tanh²


class SoftcapCrossEntropy(torch.autograd.Function):
    """mean_i [logsumexp(z_i) − z_i[y_i]] with z = cap · tanh(h Wᵀ / cap), computed in fp32.

    Returns (loss, z); z is the post-cap logits, handed back without a gradient."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, cap: float) -> Any:
        kind = h.device.type
        ctx.low = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else None
        t, z, lse = _capped(h, weight, cap)
        loss = _row_losses(z, lse, targets).mean()
        ctx.save_for_backward(h, weight, targets, t, z, lse)
        ctx.mark_non_differentiable(z)
        return loss, z

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, _grad_z: Any) -> Any:
        h, weight, targets, t, z, lse = ctx.saved_tensors
        # softmax(z) out of place: z was returned to the caller
        g = _logit_grad((z - lse[:, None]).exp_(), t, targets).mul_(grad_loss / targets.shape[0])
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


class ChunkedSoftcapCrossEntropy(torch.autograd.Function):
    """The same loss, `rows` rows at a time, with both gradients computed in the forward pass.

    A chunk's logits (rows × V) are made, capped, reduced to its loss and turned straight into
    its gradient, which goes through the two head matmuls at once; the N × V logits never
    exist, and a chunk of 256 rows × 8,192 logits stays near the cache where the whole
    8,192 × 8,192 of a paper-11.5m step (268 MB a pass) does not. The backward only scales the
    stored gradients. Values agree with `SoftcapCrossEntropy` to float rounding (the weight
    gradient is summed chunk by chunk, so not bit for bit): a separate arithmetic, chosen in
    the train config (`loss_chunk`), never by default."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, cap: float, rows: int) -> Any:
        n, autocast = h.shape[0], torch.is_autocast_enabled(h.device.type)
        grad_h = torch.empty_like(h)
        grad_w = torch.zeros_like(weight, dtype=torch.promote_types(weight.dtype, torch.float32))
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for s in range(0, n, rows):
            hc, y = h[s : s + rows], targets[s : s + rows]
            t, z, lse = _capped(hc, weight, cap)
            total += _row_losses(z, lse, y).sum()
            g = _logit_grad(z.sub_(lse[:, None]).exp_(), t, y)  # softmax(z), in z's place
            g = g if autocast else g.to(h.dtype)  # autocast casts the matmul operands itself
            grad_h[s : s + rows] = (g @ weight).to(h.dtype)
            grad_w += g.t() @ hc
        ctx.save_for_backward(grad_h, grad_w)
        ctx.n, ctx.weight_dtype = n, weight.dtype
        return total / n

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> Any:
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_loss / ctx.n
        return grad_h * scale, (grad_w * scale).to(ctx.weight_dtype), None, None, None


def chunked_softcap_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, cap: float, rows: int
) -> torch.Tensor:
    """Mean loss of `softcap_cross_entropy` computed `rows` rows at a time (no logits returned)."""
    if rows < 1:
        raise ValueError(f"loss chunk rows must be at least 1, not {rows}")
    return ChunkedSoftcapCrossEntropy.apply(h, weight, targets, cap, rows)
