"""Checkpoints: `model_{step:06d}.safetensors` plus `model_{step:06d}.json` (config, step, sha256).

The JSON is written last and names the weights' hash, so a checkpoint counts only once
complete, and a corrupt or truncated weights file is detected and named on load.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ungrok.atomic import atomic_path, write_json
from ungrok.errors import UngrokError
from ungrok.hashing import sha256_file
from ungrok.model.gpt import GPT, ModelConfig

FORMAT = "ungrok-gpt/1"
_NAME = re.compile(r"^model_(\d{6,})\.json$")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Checkpoint:
    step: int
    weights: Path
    meta: Path


@dataclass
class LoadedCheckpoint:
    model: GPT
    config: ModelConfig
    step: int
    extra: dict


def checkpoint_paths(folder: str | Path, step: int) -> Checkpoint:
    folder = Path(folder)
    stem = f"model_{step:06d}"
    return Checkpoint(step, folder / f"{stem}.safetensors", folder / f"{stem}.json")


def save_checkpoint(
    model: GPT, folder: str | Path, step: int, dtype: str = "float32", extra: dict | None = None
) -> Checkpoint:
    """Write the weights (as dtype) then the JSON that vouches for them; both atomically."""
    if dtype not in DTYPES:
        raise UngrokError(f"checkpoint dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    ck = checkpoint_paths(folder, step)
    tensors = {k: v.detach().to("cpu", DTYPES[dtype]).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(ck.weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})  # one key: the metadata map is unordered
    meta = {
        "format": FORMAT,
        "step": step,
        "dtype": dtype,
        "config": model.config.model_dump(),
        "sha256": sha256_file(ck.weights),
        "extra": extra or {},
    }
    write_json(ck.meta, meta)
    return ck


def list_checkpoints(folder: str | Path) -> list[Checkpoint]:
    """Complete checkpoints (JSON present) in step order; a run folder's checkpoints/ is looked in too."""
    folder = Path(folder)
    if (folder / "checkpoints").is_dir():
        folder = folder / "checkpoints"
    if not folder.is_dir():
        raise UngrokError(f"{folder}: not a folder of checkpoints")
    found = []
    for p in folder.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append(checkpoint_paths(folder, int(m.group(1))))
    return sorted(found, key=lambda c: c.step)


def read_meta(ck: Checkpoint) -> dict:
    try:
        meta = json.loads(ck.meta.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UngrokError(f"{ck.meta}: unreadable checkpoint metadata ({e})") from None
    if meta.get("format") != FORMAT:
        raise UngrokError(f"{ck.meta}: not an ungrok checkpoint (format {meta.get('format')!r})")
    return meta


def load_checkpoint(ck: Checkpoint | str | Path, device: str = "cpu", verify: bool = True) -> LoadedCheckpoint:
    """Rebuild the model in fp32 from a checkpoint (its JSON path, weights path or Checkpoint)."""
    if not isinstance(ck, Checkpoint):
        p = Path(ck)
        m = re.match(r"^model_(\d+)\.(json|safetensors)$", p.name)
        if not m:
            raise UngrokError(f"{p}: not a checkpoint file (expected model_NNNNNN.json)")
        ck = checkpoint_paths(p.parent, int(m.group(1)))
    if not ck.meta.exists():
        raise UngrokError(f"{ck.meta}: checkpoint not found")
    meta = read_meta(ck)
    if not ck.weights.exists():
        raise UngrokError(f"{ck.weights}: checkpoint weights missing")
    if verify and sha256_file(ck.weights) != meta["sha256"]:
        raise UngrokError(f"{ck.weights}: corrupt checkpoint (sha256 does not match {ck.meta.name})")
    config = ModelConfig(**meta["config"])
    model = GPT(config)
    try:
        state = load_file(str(ck.weights), device="cpu")
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise UngrokError(f"{ck.weights}: corrupt checkpoint ({e})") from None
    model.to(device).eval()
    return LoadedCheckpoint(model, config, meta["step"], meta.get("extra", {}))
