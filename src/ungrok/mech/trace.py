"""Reading and editing our GPT's activations at its hook sites: `GPT.forward` itself, no second forward.

The model names the activations the instruments need (`HookPoint`s in model/gpt.py); a
forward hook on a site records its tensor or returns a replacement. `hooked` attaches
them for one `with` block and always removes them, so the model is left as it was.

- `trace` records the embedding stream, each layer's per-head pre-W_O outputs, attention
  outputs, MLP increments and residual after every block, and the pre- and post-softcap
  logits, under an optional `Intervention`;
- an `Intervention` zero-ablates heads (pre-W_O, all positions), replaces components with
  cached ones (patching: "embed", "L{l}H{h}", "mlp:L{l}") and projects a unit direction
  out of the residual after block k at all positions; recorded values are the edited ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from ungrok.model.gpt import GPT, read_positions

Edit = Callable[[torch.Tensor], torch.Tensor]  # activation -> its replacement

EMBED = "hook_embed"  # x0 = norm(wte(idx)) [B, T, d]
FINAL = "hook_final"  # norm(x_final) [B, T, d]: what lm_head consumes
LOGITS_RAW = "lm_head"  # the head's output before the soft-cap [B, T, V] (the inference path)


def heads_site(layer: int) -> str:
    """Per-head pre-W_O outputs [B, T, H, hd] of a layer (value embeddings mixed in)."""
    return f"blocks.{layer}.attn.hook_heads"


def attn_site(layer: int) -> str:
    return f"blocks.{layer}.hook_attn_out"


def mlp_site(layer: int) -> str:
    return f"blocks.{layer}.hook_mlp_out"


def resid_site(layer: int) -> str:
    """The residual after block `layer` (0-based), i.e. before block `layer + 1`."""
    return f"blocks.{layer}.hook_resid_post"


@contextmanager
def hooked(
    model: torch.nn.Module, edits: Mapping[str, Sequence[Edit]] | None = None, keep: Iterable[str] = ()
) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, every forward applies `edits` at their sites (in order), then records each
    `keep` site's (edited) tensor into the yielded dict; the hooks are removed on exit."""
    edits, keep = edits or {}, list(keep)
    modules = {}
    for name in (*edits, *keep):  # every site found before any hook is attached
        try:
            modules[name] = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"no hook site {name!r} in {type(model).__name__}") from None
    cache: dict[str, torch.Tensor] = {}

    def replace(fn: Edit) -> Callable[..., torch.Tensor]:
        return lambda _m, _args, out: fn(out)

    def record(name: str) -> Callable[..., None]:
        return lambda _m, _args, out: cache.__setitem__(name, out)

    hooks = [(name, replace(fn)) for name, fns in edits.items() for fn in fns]
    hooks += [(name, record(name)) for name in keep]
    handles = []
    try:
        for name, hook in hooks:
            handles.append(modules[name].register_forward_hook(hook))
        yield cache
    finally:
        for h in handles:
            h.remove()


# --------------------------------------------------------------------------- interventions
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


def head_key(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def mlp_key(layer: int) -> str:
    return f"mlp:L{layer}"


def _project(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    return x - (x @ u).unsqueeze(-1) * u


def _set_heads(changes: dict[int, torch.Tensor | None]) -> Edit:
    """Head h of a [B, T, H, hd] site replaced by changes[h], or zeroed where it is None."""

    def edit(y: torch.Tensor) -> torch.Tensor:
        y = y.clone()
        for h, value in changes.items():
            y[:, :, h] = 0.0 if value is None else value
        return y

    return edit


def intervention_edits(model: GPT, iv: Intervention) -> dict[str, list[Edit]]:
    """The hook edits that carry out an intervention (patch before projection at the embedding)."""
    cfg = model.config
    edits: dict[str, list[Edit]] = {}
    if "embed" in iv.patch:
        edits[EMBED] = [lambda _x, t=iv.patch["embed"]: t]
    for layer in range(cfg.n_layer):
        changes = {h: None if (layer, h) in iv.ablate else iv.patch[head_key(layer, h)] for h in range(cfg.n_head)
                   if (layer, h) in iv.ablate or head_key(layer, h) in iv.patch}
        if changes:
            edits[heads_site(layer)] = [_set_heads(changes)]
        if mlp_key(layer) in iv.patch:
            edits[mlp_site(layer)] = [lambda _x, t=iv.patch[mlp_key(layer)]: t]
    if iv.project is not None:
        k, u = iv.project
        edits.setdefault(EMBED if k == 0 else resid_site(k - 1), []).append(lambda x, u=u: _project(x, u))
    return edits


# --------------------------------------------------------------------------- reading
@dataclass
class Trace:
    """What one forward produced; lists are per layer, `resid[k - 1]` is after block k."""

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


def _gather(x: torch.Tensor, read: torch.Tensor | None) -> torch.Tensor:
    """x [B, T, d] at one position per row, read [B] -> [B, d], or at (row, position) pairs,
    read [N, 2] -> [N, d] (the scorer's `LogitsModel` form); None: all of x."""
    if read is None:
        return x
    if read.dim() == 1:
        return x[torch.arange(x.shape[0]), read]
    return read_positions(x, read)


def _edits(model: GPT, iv: Intervention | None, read: torch.Tensor | None) -> dict[str, list[Edit]]:
    """The intervention's edits, plus, with `read`, the final state narrowed to the read positions:
    the head and soft-cap are position-wise, so only the logits that are read get computed."""
    edits = intervention_edits(model, iv or NONE)
    if read is not None:
        edits.setdefault(FINAL, []).append(lambda h: _gather(h, read))
    return edits


@torch.no_grad()
def forward_logits(
    model: GPT, idx: torch.Tensor, intervention: Intervention | None = None, read: torch.Tensor | None = None
) -> torch.Tensor:
    """The model's soft-capped logits on idx [B, T] under an intervention, at `read` or everywhere."""
    with hooked(model, _edits(model, intervention, read)):
        return model(idx)


@torch.no_grad()
def trace(
    model: GPT, idx: torch.Tensor, intervention: Intervention | None = None, read: torch.Tensor | None = None
) -> Trace:
    """Run the model on idx [B, T] with an intervention, recording every site; logits at `read` ([B] or [N, 2] pairs)."""
    n = model.config.n_layer
    layers = {kind: [f(i) for i in range(n)] for kind, f in
              (("heads", heads_site), ("attn", attn_site), ("mlp", mlp_site), ("resid", resid_site))}
    keep = [EMBED, LOGITS_RAW, *(s for sites in layers.values() for s in sites)]
    with hooked(model, _edits(model, intervention, read), keep) as got:
        out = model(idx)
    per = {kind: [got[s] for s in sites] for kind, sites in layers.items()}
    return Trace(got[EMBED], per["heads"], per["attn"], per["mlp"], per["resid"], got[LOGITS_RAW].float(), out)


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


def contrast_margin(model: GPT, prompts: Any, intervention: Intervention | None = None) -> float:
    """Post-softcap CM over the CM prompts (the `probes.margins` definition) under an intervention."""
    idx, last = prompts.cm_batch()
    out = forward_logits(model, idx, intervention, last)
    return float(last_margins(out, prompts.rule_id, prompts.prior_id).mean())


class TracedLogits:
    """A probes `LogitsModel` running the model under an intervention (for BatteryPlan)."""

    def __init__(self, model: GPT, intervention: Intervention | None = None):
        self.model = model
        self.intervention = intervention
        self.vocab_size = int(model.config.vocab_size)
        self.context = int(model.config.context)
        self.device = next(model.parameters()).device

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        return forward_logits(self.model, input_ids, self.intervention, positions)
