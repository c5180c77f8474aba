"""A nanochat-style decoder (docs/method.md §1.1).

RoPE then parameter-free RMSNorm on q and k, ReLU² MLP, value embeddings mixed into v
on alternating layers (the last layer always has one), parameter-free RMSNorm
everywhere, an untied head whose fp32 logits are soft-capped at 15. Output
projections and the head start at zero, so every logit is 0 at step 0: forced-choice
ties are then scored wrong and the contrast margin is exactly 0.

Named hook sites (`HookPoint`, identity modules) mark the activations the mechanism
instruments read or replace, so they hook this forward instead of re-stating it:
`hook_embed` (x0 = norm(wte)), per block `attn.hook_heads` (pre-W_O outputs [B, T, H, hd]),
`hook_attn_out`, `hook_mlp_out`, `hook_resid_post` (the residual after the block), and
`hook_final` (norm(x_final), what the head consumes). Without hooks they return their
input object unchanged: no op, no autograd node, no parameter, no state_dict key.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from ungrok.model.loss import chunked_softcap_cross_entropy, softcap_cross_entropy


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    vocab_size: int = Field(8192, ge=2)
    n_layer: int = Field(4, ge=1)
    n_head: int = Field(2, ge=1)
    n_embd: int = Field(256, ge=2)
    context: int = Field(2048, ge=1)
    mlp_ratio: int = Field(4, ge=1)
    softcap: float = Field(15.0, gt=0)
    rope_base: float = Field(10000.0, gt=0)

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if (self.n_embd // self.n_head) % 2:
            raise ValueError(f"head_dim {self.n_embd // self.n_head} must be even for RoPE")
        return self

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def has_value_embedding(self, layer: int) -> bool:
        return layer % 2 == (self.n_layer - 1) % 2


def _norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


class HookPoint(nn.Module):
    """An identity with a name: a forward hook on it reads, or by returning a tensor replaces, one activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def read_positions(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x [B, T, ...] at the (row, position) pairs of positions [N, 2] -> [N, ...]."""
    return x[positions[:, 0], positions[:, 1]]


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Half-split rotation: [x1 cos - x2 sin, x1 sin + x2 cos] on (B, T, H, D)."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        d = cfg.n_embd
        self.n_head, self.head_dim = cfg.n_head, cfg.head_dim
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        # v <- lambda0 * v + lambda1 * ve on value-embedding layers
        self.ve_lambda = nn.Parameter(torch.full((2,), 0.5)) if cfg.has_value_embedding(layer) else None
        # Under CPU bf16 autocast the attention core runs in fp32 unless the trainer says otherwise
        # (train.cpu_attention): without AMX tiles its bf16 flash backward is the slow one.
        self.cpu_core_fp32 = True
        self.hook_heads = HookPoint()  # [B, T, H, hd], value embeddings mixed in

    def forward(
        self, x: torch.Tensor, ve: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        B, T, _ = x.shape
        shape = (B, T, self.n_head, self.head_dim)
        q = self.wq(x).view(shape)
        k = self.wk(x).view(shape)
        v = self.wv(x).view(shape)
        if ve is not None:
            v = self.ve_lambda[0] * v + self.ve_lambda[1] * ve.view(shape)
        q, k = _norm(_rotate(q, cos, sin)), _norm(_rotate(k, cos, sin))
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if self.cpu_core_fp32 and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # CPU bf16 training: the attention core stays fp32; on a CPU without AMX its
            # flash-attention backward is about 4x faster than the bf16 one at these head sizes.
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(self.hook_heads(y.transpose(1, 2)).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.n_embd, cfg.mlp_ratio * cfg.n_embd, bias=False)
        self.down = nn.Linear(cfg.mlp_ratio * cfg.n_embd, cfg.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.relu(self.up(x)).square())


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int):
        super().__init__()
        self.attn = Attention(cfg, layer)
        self.mlp = MLP(cfg)
        self.hook_attn_out = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(
        self, x: torch.Tensor, ve: torch.Tensor | None, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        x = x + self.hook_attn_out(self.attn(_norm(x), ve, cos, sin))
        return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(_norm(x))))


class GPT(nn.Module):
    """forward(idx[B, T]) -> soft-capped fp32 logits [B, T, V]; with targets, also the mean CE."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.value_embeds = nn.ModuleDict(
            {
                str(i): nn.Embedding(cfg.vocab_size, cfg.n_embd)
                for i in range(cfg.n_layer)
                if cfg.has_value_embedding(i)
            }
        )
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.hook_embed = HookPoint()
        self.hook_final = HookPoint()
        # Rows per chunk of the training loss (train.loss_chunk; model/loss.py); None: one pass.
        self.loss_chunk: int | None = None
        cos, sin = self._rope_tables(cfg.context)
        self.register_buffer("cos", cos, persistent=False)  # derived, never checkpointed
        self.register_buffer("sin", sin, persistent=False)
        self.reset_parameters()

    def _rope_tables(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        hd = self.config.head_dim
        inv = 1.0 / (self.config.rope_base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        angles = torch.outer(torch.arange(length, dtype=torch.float32), inv)
        return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """docs/method.md §1.1 init; seed torch before calling for a reproducible model."""
        for name, module in self.named_modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 1.0)
            elif isinstance(module, nn.Linear):
                if name == "lm_head" or name.endswith((".wo", ".down")):
                    nn.init.zeros_(module.weight)
                else:
                    fan_out, fan_in = module.weight.shape
                    std = (1 / math.sqrt(fan_in)) * min(1.0, math.sqrt(fan_out / fan_in))
                    nn.init.normal_(module.weight, 0.0, std)
        for block in self.blocks:
            if block.attn.ve_lambda is not None:
                block.attn.ve_lambda.fill_(0.5)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, positions: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor | None, torch.Tensor]:
        """Soft-capped logits, or with targets (logits, mean loss); the logits are None when the
        loss runs in chunks (`loss_chunk`), which never holds them all.

        `positions` [N, 2] (row, position) pairs, without targets: the head runs at those N
        places only and the logits are [N, V] (a scorer reads a few positions of each row)."""
        length = idx.shape[1]
        if length > self.cos.shape[1]:
            raise ValueError(f"sequence of {length} tokens exceeds the model context {self.cos.shape[1]}")
        if positions is not None and targets is not None:
            raise ValueError("positions select logits to read; they do not go with targets")
        cos, sin = self.cos[:, :length], self.sin[:, :length]
        x = self.hook_embed(_norm(self.wte(idx)))
        for i, block in enumerate(self.blocks):
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, ve, cos, sin)
        h, cap = self.hook_final(_norm(x)), self.config.softcap
        if targets is None:
            if positions is not None:
                h = read_positions(h, positions)
            logits = self.lm_head(h).float()
            if torch.is_grad_enabled():
                return cap * torch.tanh(logits / cap)
            # Scoring: one new buffer for the rows x vocabulary cap instead of three (the same bits).
            # Not in place on the head's output: a hook on lm_head (mech/trace.py) may hold it.
            return (logits / cap).tanh_().mul_(cap)
        # Training: the head, cap and cross-entropy in one hand-written autograd step (model/loss.py).
        flat_h, flat_y = h.reshape(-1, h.size(-1)), targets.reshape(-1)
        if self.loss_chunk is not None:
            return None, chunked_softcap_cross_entropy(flat_h, self.lm_head.weight, flat_y, cap, self.loss_chunk)
        loss, logits = softcap_cross_entropy(flat_h, self.lm_head.weight, flat_y, cap)
        return logits.view(*h.shape[:-1], -1), loss
