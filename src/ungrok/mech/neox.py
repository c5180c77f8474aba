"""The mechanism instruments for Hugging Face GPT-NeoX models (Pythia), read through nnsight.

The residual stream of GPTNeoX is a sum too (parallel or sequential residual alike):
x_final = embed + sum_l attn_l + sum_l mlp_l. Its final LayerNorm is not linear, but
with its realised mean and std held fixed it is, per part c:

    term(c) = (c - mean(c)) * g / std(x_final) . (w_rule - w_prior),  plus b . (w_rule - w_prior)

where g, b are the LayerNorm's gain and bias. The attention term splits into heads
through the column slices of the `dense` projection applied to its input (heads.py's
head_attribution tabulates those terms); the bias vectors (each `dense` bias, each MLP output bias, the
final LayerNorm bias) add terms that do not depend on the tokens except through std,
reported together as "bias". Cue decodability is decode.py's cross-frame nearest class
mean on the RMS-normalised last-position residual after each layer.

Why nnsight: one trace of the unmodified transformers GPTNeoXForCausalLM reads every
site these need (embed_in's output, each attention.dense's input, each MLP's and each
layer's output, final_layer_norm's input, the logits), so the gap is the model's own
logits at any revision, with no second implementation of the model. TransformerLens
re-implements GPT-NeoX and by default folds and centres the LayerNorm weights, a
different parametrisation whose outputs must be checked against transformers anyway.
nnsight installs an inert controller as each wrapped module's `forward` (it changes no
output outside a trace); it is imported on first use (the `interp` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ungrok.errors import UngrokError
from ungrok.mech.decode import Decodability, decodability
from ungrok.mech.decompose import TOLERANCE, Decomposition, summarize_terms
from ungrok.mech.prompts import MechPrompts, pad
from ungrok.model.gpt import _norm
from ungrok.probes.models import eval_mode


def _base(model: Any) -> Any:
    base = getattr(model, "gpt_neox", None)
    if base is None or not hasattr(base, "final_layer_norm"):
        raise UngrokError(
            f"{type(model).__name__} is not a GPT-NeoX causal LM (no gpt_neox.final_layer_norm)"
        )
    return base


def _check_fp32(model: Any) -> None:
    if next(model.parameters()).dtype != torch.float32:
        raise UngrokError(
            "the GPT-NeoX instruments need float32 weights (load the model with dtype float32)"
        )


def _nnsight() -> Any:
    try:
        import nnsight
    except ImportError:
        raise UngrokError("the GPT-NeoX instruments need nnsight (pip install 'ungrok[interp]')") from None
    return nnsight


def _first(value: Any) -> torch.Tensor:
    """A module output that may be a tuple (older transformers layers) -> its hidden states."""
    return value[0] if isinstance(value, tuple) else value


@torch.no_grad()
def read_sites(model: Any, seqs: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
    """One nnsight trace of the model on right-padded `seqs`; every site at each row's last token.

    Keys: embed, z{l} (attention.dense input), mlp{l}, resid{l} (layer l's output), final
    (final_layer_norm's input), logits. Float64 on the CPU, [B, d] (logits [B, V]).
    """
    nnsight = _nnsight()
    _base(model)
    idx, last = pad(seqs)
    mask = (torch.arange(idx.shape[1])[None] <= last[:, None]).long()
    dev = next(model.parameters()).device
    traced = nnsight.NNsight(model)
    seen: dict[str, Any] = {}
    with eval_mode(model), traced.trace(input_ids=idx.to(dev), attention_mask=mask.to(dev), use_cache=False):
        # requested in execution order: nnsight serves each site as the forward reaches it
        seen["embed"] = traced.gpt_neox.embed_in.output.save()
        for i, layer in enumerate(traced.gpt_neox.layers):
            seen[f"z{i}"] = layer.attention.dense.input.save()
            seen[f"mlp{i}"] = layer.mlp.output.save()
            seen[f"resid{i}"] = layer.output.save()
        seen["final"] = traced.gpt_neox.final_layer_norm.input.save()
        seen["logits"] = traced.output.logits.save()
    rows = torch.arange(len(seqs))
    return {k: _first(v)[rows, last.to(_first(v).device)].double().cpu() for k, v in seen.items()}


@torch.no_grad()
def decompose_neox(model: Any, prompts: MechPrompts, tol: float = TOLERANCE) -> Decomposition:
    """Split the mean rule-prior logit gap of a GPTNeoXForCausalLM on the CM prompts (fp32 weights)."""
    base = _base(model)
    _check_fp32(model)
    n_head = model.config.num_attention_heads
    seen = read_sites(model, prompts.cm_ids)
    ln = base.final_layer_norm
    head = model.get_output_embeddings()
    w = head.weight.double().cpu()
    dw = w[prompts.rule_id] - w[prompts.prior_id]
    gain = ln.weight.double().cpu() if ln.weight is not None else torch.ones_like(dw)
    g_dw = gain * dw
    x = seen["final"]
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
        z = seen[f"z{i}"].view(len(prompts.cm_ids), n_head, -1)
        hd = z.shape[-1]
        per_head = torch.stack([term(z[:, h] @ wd[:, h * hd : (h + 1) * hd].T) for h in range(n_head)])
        heads.append(per_head)
        attn.append(per_head.sum(0))
        if dense.bias is not None:
            bias = bias + term(dense.bias.double().cpu())
        b_mlp = layer.mlp.dense_4h_to_h.bias
        m = seen[f"mlp{i}"]
        if b_mlp is not None:
            m = m - b_mlp.double().cpu()
            bias = bias + term(b_mlp.double().cpu())
        mlp.append(term(m))
    lg = seen["logits"]
    gap = lg[:, prompts.rule_id] - lg[:, prompts.prior_id]
    if head.bias is not None:
        gap = gap - (head.bias[prompts.rule_id] - head.bias[prompts.prior_id]).double().cpu()
    return summarize_terms(
        term(seen["embed"]),
        torch.stack(attn),
        torch.stack(heads),
        torch.stack(mlp),
        gap,
        tol,
        bias=bias,
        what="GPT-NeoX model",
    )


def neox_decodability(model: Any, prompts: MechPrompts) -> Decodability:
    """Cross-frame cue-vs-control decodability of the residual after each GPT-NeoX layer."""
    _check_fp32(model)
    seen = read_sites(model, prompts.class_ids)
    return decodability([_norm(seen[f"resid{i}"]).numpy() for i in range(len(_base(model).layers))], prompts)
