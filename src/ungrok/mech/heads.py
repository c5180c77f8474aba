"""Per-head views of the rule-prior gap: attribution, share, zero-ablation and OV alignment
(docs/method.md §11.3).

- attribution: the head's term of the exact gap decomposition (signed nats, mean over
  the CM prompts); share = |attribution| / sum of |attribution| over all heads.
- ablation_dcm: CM with the head's pre-W_O output zeroed at every position, minus CM
  (post-softcap, the `probes.margins` definition). Unlike the attribution it includes
  every downstream effect of the head.
- ov_cos: cosine between the head's mean OV output on the rule's single-token conflict
  cue words, W_O,h v_h(norm(wte(cue))) with the layer's value embedding mixed in as in
  the forward, and the rule-prior unembedding direction: does what the head copies from
  a cue point at the rule's target? A static property of the weights, no prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ungrok.mech.decompose import Decomposition, decompose_gap
from ungrok.mech.prompts import MechPrompts
from ungrok.mech.rows import mech_row
from ungrok.mech.trace import Intervention, contrast_margin, head_key
from ungrok.model.gpt import GPT, _norm


def head_rows(metrics: Sequence[tuple[str, np.ndarray]], run: str, step: int, rule: str,
              prompts_sha256: str) -> list[dict[str, Any]]:
    """Store rows of [n_layer, n_head] arrays, head by head, each head's metrics in the given order."""
    n_layer, n_head = metrics[0][1].shape
    return [mech_row(run, step, rule, "heads", head_key(layer, h), metric, float(arr[layer, h]),
                     prompts_sha256)
            for layer in range(n_layer) for h in range(n_head) for metric, arr in metrics]


@dataclass(frozen=True)
class HeadAttribution:
    """Each head's decomposition term ([n_layer, n_head], signed nats) and its share of Σ|terms|:
    the part of the head views any decomposition gives (the GPT-NeoX instruments have only this)."""

    attribution: np.ndarray
    share: np.ndarray

    def rows(self, run: str, step: int, rule: str, prompts_sha256: str) -> list[dict[str, Any]]:
        return head_rows((("attribution", self.attribution), ("share", self.share)),
                         run, step, rule, prompts_sha256)


def head_attribution(dec: Decomposition) -> HeadAttribution:
    """The head table of a decomposition; share is NaN when no head contributes at all."""
    attr = np.array(dec.heads, dtype=np.float64)
    total = float(np.abs(attr).sum())
    share = np.abs(attr) / total if total > 0 else np.full_like(attr, np.nan)
    return HeadAttribution(attr, share)


@dataclass(frozen=True)
class HeadReport:
    """Arrays are [n_layer, n_head]; NaN where undefined (no attribution at all, no cue token)."""

    cm: float
    attribution: np.ndarray
    share: np.ndarray
    ablation_dcm: np.ndarray
    ov_cos: np.ndarray
    n_cue_tokens: int

    @property
    def top(self) -> tuple[int, int]:
        """(layer, head) carrying the largest |attribution| (first on ties)."""
        flat = int(np.argmax(np.abs(self.attribution)))
        return divmod(flat, self.attribution.shape[1])

    def rows(self, run: str, step: int, rule: str, prompts_sha256: str) -> list[dict[str, Any]]:
        return head_rows((("attribution", self.attribution), ("share", self.share),
                          ("ablation_dcm", self.ablation_dcm), ("ov_cos", self.ov_cos)),
                         run, step, rule, prompts_sha256)


@torch.no_grad()
def ov_cosines(model: GPT, cue_ids: Sequence[int], rule_id: int, prior_id: int) -> np.ndarray:
    """[n_layer, n_head] cos(mean_cue W_O,h v_h(cue), w_rule - w_prior); NaN without cues or at zero norm."""
    cfg = model.config
    out = np.full((cfg.n_layer, cfg.n_head), np.nan)
    if not cue_ids:
        return out
    ids = torch.tensor(list(cue_ids), dtype=torch.long)
    w = model.lm_head.weight.double()
    dw = w[rule_id] - w[prior_id]
    e = _norm(model.wte.weight[ids])
    for layer, block in enumerate(model.blocks):
        at = block.attn
        v = at.wv(e)
        if at.ve_lambda is not None:
            v = at.ve_lambda[0] * v + at.ve_lambda[1] * model.value_embeds[str(layer)].weight[ids]
        v_mean = v.double().mean(0).view(cfg.n_head, cfg.head_dim)
        wo = at.wo.weight.double().view(cfg.n_embd, cfg.n_head, cfg.head_dim)
        for h in range(cfg.n_head):
            ov = wo[:, h] @ v_mean[h]  # W_O,h applied to the mean v = the mean of W_O,h v (linear)
            denom = float(ov.norm() * dw.norm())
            if denom > 0:
                out[layer, h] = float(ov @ dw) / denom
    return out


def head_report(
    model: GPT, prompts: MechPrompts, decomposition: Decomposition | None = None, cm: float | None = None
) -> HeadReport:
    """Attribution, share, ablation ΔCM and OV cosine of every head at one checkpoint (the
    decomposition and unablated CM are computed unless the caller already has them)."""
    cfg = model.config
    dec = decomposition if decomposition is not None else decompose_gap(model, prompts)
    att = head_attribution(dec)
    cm = contrast_margin(model, prompts) if cm is None else cm
    dcm = np.zeros((cfg.n_layer, cfg.n_head))
    for layer in range(cfg.n_layer):
        for h in range(cfg.n_head):
            dcm[layer, h] = contrast_margin(model, prompts, Intervention(ablate=frozenset({(layer, h)}))) - cm
    ov = ov_cosines(model, prompts.cue_ids, prompts.rule_id, prompts.prior_id)
    return HeadReport(cm, att.attribution, att.share, dcm, ov, len(prompts.cue_ids))
