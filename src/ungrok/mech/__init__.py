"""mech: mechanism instruments (docs/method.md §11) that look inside a checkpoint rather than score it.

Logit-gap decomposition, cue decodability, head attribution / ablation / OV alignment,
same-run activation patching and class-direction removal for our GPT (its own forward, read
and edited at named hook sites, `mech.trace`; the instruments by name, `mech.instruments`), and
the same decomposition for Hugging Face GPT-NeoX models via forward hooks (`mech.neox`).
Everything is descriptive: no verdict reads these numbers.
"""
