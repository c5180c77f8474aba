"""The logit-gap decomposition for Hugging Face GPT-NeoX models (Pythia), by forward hooks.

The residual stream of GPTNeoX is a sum too (parallel or sequential residual alike):
x_final = embed + sum_l attn_l + sum_l mlp_l. Its final LayerNorm is not linear, but
with its realised mean and std held fixed it is, per part c:

    term(c) = (c - mean(c)) * g / std(x_final) . (w_rule - w_prior),  plus b . (w_rule - w_prior)

where g, b are the LayerNorm's gain and bias. The attention term splits into heads
through the column slices of the `dense` projection applied to its input; the bias
vectors (each `dense` bias, each MLP output bias, the final LayerNorm bias) add terms
that do not depend on the tokens except through std, reported together as "bias".

Why forward hooks rather than TransformerLens or nnsight: read-only hooks (embed_in's
output, attention.dense's input, the mlp's output, final_layer_norm's input) reach
everything the decomposition needs on the unmodified transformers class, so the gap is
the model's own logits at any revision, with no second implementation of the model and
no new dependency. TransformerLens re-implements the model and by default folds and
centres LayerNorm weights (a different parametrisation whose outputs must be checked
against transformers anyway); nnsight wraps the same hooks behind a tracing context.
"""

from __future__ import annotations

from typing import Any

import torch

from ungrok.errors import UngrokError
from ungrok.mech.decompose import TOLERANCE, Decomposition, summarize_terms
from ungrok.mech.prompts import MechPrompts


def _base(model: Any) -> Any:
    base = getattr(model, "gpt_neox", None)
    if base is None or not hasattr(base, "final_layer_norm"):
        raise UngrokError(
            f"{type(model).__name__} is not a GPT-NeoX causal LM (no gpt_neox.final_layer_norm)"
        )
    return base


@torch.no_grad()
def decompose_neox(model: Any, prompts: MechPrompts, tol: float = TOLERANCE) -> Decomposition:
    """Split the mean rule-prior logit gap of a GPTNeoXForCausalLM on the CM prompts (fp32 weights)."""
    base = _base(model)
    if next(model.parameters()).dtype != torch.float32:
        raise UngrokError(
            "the GPT-NeoX decomposition needs float32 weights (load the model with dtype float32)"
        )
    cfg = model.config
    n_head = cfg.num_attention_heads
    seen: dict[str, torch.Tensor] = {}
    handles = []

    def keep(name: str, pre: bool = False):  # noqa: ANN202
        def hook(_m: Any, args: Any, out: Any = None) -> None:
            value = args[0] if pre else (out[0] if isinstance(out, tuple) else out)
            seen[name] = value.detach()

        return hook

    handles.append(base.embed_in.register_forward_hook(keep("embed")))
    for i, layer in enumerate(base.layers):
        handles.append(layer.attention.dense.register_forward_pre_hook(keep(f"z{i}", pre=True)))
        handles.append(layer.mlp.register_forward_hook(keep(f"mlp{i}")))
    handles.append(base.final_layer_norm.register_forward_pre_hook(keep("final", pre=True)))

    seqs = prompts.cm_ids
    width = max(len(s) for s in seqs)
    idx = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros_like(idx)
    for r, s in enumerate(seqs):
        idx[r, : len(s)] = torch.tensor(s)
        mask[r, : len(s)] = 1
    last = mask.sum(1) - 1
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        logits = model(input_ids=idx.to(dev), attention_mask=mask.to(dev), use_cache=False).logits
    finally:
        model.train(was)
        for h in handles:
            h.remove()

    rows = torch.arange(len(seqs))

    def at_last(t: torch.Tensor) -> torch.Tensor:
        return t[rows, last.to(t.device)].double().cpu()

    ln = base.final_layer_norm
    head = model.get_output_embeddings()
    w = head.weight.double().cpu()
    dw = w[prompts.rule_id] - w[prompts.prior_id]
    gain = ln.weight.double().cpu() if ln.weight is not None else torch.ones_like(dw)
    g_dw = gain * dw
    x = at_last(seen["final"])
    std = (x.var(-1, unbiased=False) + ln.eps).sqrt()

    def term(v: torch.Tensor) -> torch.Tensor:  # [B, d] or [d] -> [B]
        return ((v - v.mean(-1, keepdim=True)) @ g_dw) / std

    bias = (
        (ln.bias.double().cpu() @ dw) * torch.ones_like(std) if ln.bias is not None else torch.zeros_like(std)
    )
    attn, heads, mlp = [], [], []
    for i, layer in enumerate(base.layers):
        dense = layer.attention.dense
        wd = dense.weight.double().cpu()  # [d, H * hd]
        z = at_last(seen[f"z{i}"]).view(len(seqs), n_head, -1)
        per_head = torch.stack(
            [term(z[:, h] @ wd[:, h * z.shape[-1] : (h + 1) * z.shape[-1]].T) for h in range(n_head)]
        )
        heads.append(per_head)
        attn.append(per_head.sum(0))
        if dense.bias is not None:
            bias = bias + term(dense.bias.double().cpu())
        b_mlp = layer.mlp.dense_4h_to_h.bias
        m = at_last(seen[f"mlp{i}"])
        if b_mlp is not None:
            m = m - b_mlp.double().cpu()
            bias = bias + term(b_mlp.double().cpu())
        mlp.append(term(m))
    lg = at_last(logits)
    gap = lg[:, prompts.rule_id] - lg[:, prompts.prior_id]
    if head.bias is not None:
        gap = gap - (head.bias[prompts.rule_id] - head.bias[prompts.prior_id]).double().cpu()
    return summarize_terms(
        term(at_last(seen["embed"])),
        torch.stack(attn),
        torch.stack(heads),
        torch.stack(mlp),
        gap,
        tol,
        bias=bias,
        what="GPT-NeoX model",
    )
