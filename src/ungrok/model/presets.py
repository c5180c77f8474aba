"""Named architectures: the paper's 11.5M model and small CPU models for the embedded demo."""

from __future__ import annotations

from ungrok.errors import UngrokError
from ungrok.model.gpt import ModelConfig

PRESETS: dict[str, ModelConfig] = {
    # docs/method.md §1.1: exactly 11,534,340 parameters.
    "paper-11.5m": ModelConfig(vocab_size=8192, n_layer=4, n_head=2, n_embd=256, context=2048),
    # The embedded demo: storyworld's word-level vocabulary fits in 2,048 ids.
    "demo": ModelConfig(vocab_size=2048, n_layer=2, n_head=2, n_embd=128, context=128),
    # Tests and smoke runs: seconds on one core.
    "tiny": ModelConfig(vocab_size=2048, n_layer=2, n_head=2, n_embd=32, context=64),
}


def preset(name: str, **overrides: object) -> ModelConfig:
    """The named config, with fields such as vocab_size or context overridden."""
    if name not in PRESETS:
        raise UngrokError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name].model_copy(update=overrides) if overrides else PRESETS[name]
