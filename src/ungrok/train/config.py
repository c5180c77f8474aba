"""A training run's config: one YAML file, validated in full before any work starts.

The `sampler:` section is a SamplerConfig, so the same file can be handed to
`ungrok support --served` to count exactly what this run will see.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ungrok.corpus.shards import Manifest, read_manifest
from ungrok.errors import UngrokError, first_error
from ungrok.hashing import manifest_sha256
from ungrok.model.gpt import ModelConfig
from ungrok.model.optim import OptimizerConfig
from ungrok.model.presets import preset as model_preset
from ungrok.train.sampler import SamplerConfig, budgeted_shards
from ungrok.train.schedule import PAPER_CHECKPOINTS, CheckpointRule
from ungrok.train.trackers import parse_names


class ModelSpec(BaseModel):
    """A preset name plus any architecture fields to override (e.g. vocab_size, context)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    preset: str = "demo"
    vocab_size: int | None = None
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    context: int | None = None
    mlp_ratio: int | None = None
    softcap: float | None = None
    rope_base: float | None = None

    def resolve(self) -> ModelConfig:
        overrides = {k: v for k, v in self.model_dump().items() if k != "preset" and v is not None}
        base = model_preset(self.preset)
        return ModelConfig.model_validate({**base.model_dump(), **overrides})


class CheckpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dtype: Literal["float32", "bfloat16"] = "float32"  # the paper saved bf16; fp32 is exact for tiny models
    rules: tuple[CheckpointRule, ...] = PAPER_CHECKPOINTS


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    model: ModelSpec = ModelSpec()
    optimizer: OptimizerConfig = OptimizerConfig()
    sampler: SamplerConfig = SamplerConfig()
    checkpoints: CheckpointConfig = CheckpointConfig()
    probe_every: int = Field(5, ge=1)  # in-loop probe cadence after the dense start
    probe_dense_until: int = Field(50, ge=0)  # probes at every step <= this
    seed: int = Field(42, ge=0)  # torch init seed and sampler seed (phase B: seed + 1)
    device_batch_size: int | None = Field(None, ge=1)  # rows per forward pass (gradient accumulation)
    # Matmul precision of the forward/backward (docs/training.md): fp32 everywhere, or bf16 autocast
    # with fp32 master weights, optimiser state, loss and attention core. None: the device's default
    # (bf16 on CUDA, as the paper trained; fp32 on CPU).
    precision: Literal["fp32", "bf16"] | None = None
    compile: bool = False  # torch.compile the model's training forward/backward (needs a C++ compiler)
    # The attention core under CPU bf16 autocast: fp32 (the default; a CPU without AMX tiles runs
    # its bf16 flash backward ~4x slower) or bf16 (~2.2x faster than fp32 where the CPU has AMX).
    cpu_attention: Literal["fp32", "bf16"] = "fp32"
    # Rows per chunk of the head and loss, gradients made in the same pass (model/loss.py): the
    # vocab-wide logits stay near the cache. None (the default): one pass over all rows, the
    # arithmetic every registered run used.
    loss_chunk: int | None = Field(None, ge=1)
    # Where the curves also go (ungrok.train.trackers): tensorboard, wandb (offline), trackio (local);
    # a list or a comma list. Not part of the run's identity: config.json leaves it out.
    log: tuple[str, ...] = ()

    @field_validator("log", mode="before")
    @classmethod
    def _tracker_names(cls, v: Any) -> tuple[str, ...]:
        return parse_names(v)


def validation_line(e: ValidationError, where: str) -> str:
    """The first pydantic error as one line naming the field."""
    loc, msg = first_error(e)
    if e.errors()[0]["type"] == "extra_forbidden":
        return f"{where}: unknown field {loc}"
    return f"{where}: field {loc}: {msg}" if loc else f"{where}: {msg}"


def parse_config(doc: Any, where: str = "train config") -> TrainConfig:
    if not isinstance(doc, dict):
        raise UngrokError(f"{where}: expected a mapping of fields (model, optimizer, sampler, ...)")
    try:
        return TrainConfig.model_validate(doc)
    except ValidationError as e:
        raise UngrokError(validation_line(e, where)) from None


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a YAML config; `seed=`, `precision=`, `compile=`, `log=` and `steps=` (sampler.steps) from the command line win."""
    from ungrok.yamlfile import load_yaml

    doc = load_yaml(path, "train config")
    if isinstance(doc, dict):
        for key in ("seed", "precision", "compile", "log"):
            if overrides.get(key) is not None:
                doc[key] = overrides[key]
        if overrides.get("steps") is not None:
            doc["sampler"] = {**(doc.get("sampler") or {}), "steps": overrides["steps"]}
    return parse_config(doc, str(path))


def resolve_model(cfg: TrainConfig) -> ModelConfig:
    try:
        return cfg.model.resolve()
    except ValidationError as e:
        raise UngrokError(validation_line(e, "model")) from None


def check_corpus(data: str | Path, model: ModelConfig, sampler: SamplerConfig, max_tokens: int | None,
                 label: str = "--data") -> Manifest:
    """Refuse, in one line, a corpus this model and sampler cannot train on."""
    m = read_manifest(data)
    if m.vocab_size > model.vocab_size:
        raise UngrokError(
            f"{label} {data}: corpus vocab_size {m.vocab_size:,} is larger than the model's "
            f"vocab_size {model.vocab_size:,}; set model.vocab_size to at least {m.vocab_size:,}"
        )
    if max_tokens is not None and max_tokens > m.total_tokens:
        raise UngrokError(
            f"sampler.max_tokens {max_tokens:,} exceeds the size of {data} ({m.total_tokens:,} tokens)"
        )
    longest = max((take for _, take in budgeted_shards(m, max_tokens)), default=0)
    if longest <= sampler.context + 1:
        raise UngrokError(
            f"sampler.context {sampler.context:,} is too long for {data}: no shard holds more than "
            f"context + 1 tokens (longest usable shard: {longest:,})"
        )
    return m


def check_run(cfg: TrainConfig, model: ModelConfig, data: str | Path, world_size: int = 1) -> None:
    """Every cross-field and config-vs-corpus check, before anything is written."""
    s = cfg.sampler
    if s.context > model.context:
        raise UngrokError(
            f"sampler.context {s.context:,} is longer than the model's context {model.context:,} "
            f"(set model.context or lower sampler.context)"
        )
    rows = cfg.device_batch_size or s.batch_size // world_size
    if s.batch_size % (world_size * rows):
        raise UngrokError(
            f"sampler.batch_size {s.batch_size} is not divisible by {world_size} process(es) "
            f"x device_batch_size {rows}"
        )
    if s.phase_b is not None and s.phase_b.switch_step > s.steps:
        raise UngrokError(
            f"sampler.phase_b.switch_step {s.phase_b.switch_step} is after the last step {s.steps}"
        )
    main = check_corpus(data, model, s, s.max_tokens)
    if s.phase_b is not None:
        b = check_corpus(s.phase_b.data, model, s, None, label="sampler.phase_b.data")
        if b.tokenizer_sha256 != main.tokenizer_sha256:
            raise UngrokError("sampler.phase_b.data uses a different tokenizer from --data")


def resolved_config(cfg: TrainConfig, model: ModelConfig, data: str | Path) -> dict:
    """What OUT/config.json records: the full config, the model it resolves to, the data's identity."""
    doc = {
        "format": "ungrok-train/1",
        "config": cfg.model_dump(mode="json", exclude={"log"}),  # trackers watch a run, they do not define it
        "model": model.model_dump(),
        "data": {"path": str(Path(data).resolve()), "manifest_sha256": manifest_sha256(data)},
    }
    if cfg.sampler.phase_b is not None:
        pb = cfg.sampler.phase_b.data
        doc["phase_b_data"] = {"path": str(Path(pb).resolve()), "manifest_sha256": manifest_sha256(pb)}
    return doc
