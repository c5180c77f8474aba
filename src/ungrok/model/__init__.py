"""Tiny nanochat-style decoders, their presets and checkpoints."""

from ungrok.model.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from ungrok.model.gpt import GPT, ModelConfig
from ungrok.model.presets import PRESETS, preset

__all__ = [
    "GPT",
    "PRESETS",
    "ModelConfig",
    "list_checkpoints",
    "load_checkpoint",
    "preset",
    "save_checkpoint",
]
