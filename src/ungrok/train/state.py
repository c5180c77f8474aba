"""The full trainer state that makes a resumed run bit-identical to an uninterrupted one.

Saved at every checkpoint step, after the checkpoint and before that step's probes:
fp32 model weights, both optimisers' states, torch RNG state, the step (the sampler
replays its draws up to it), the line counts of train_log.jsonl and monitor.jsonl, the
wall time so far and any probe callback's own state. `resume/state_XXXXXX.pt` is
written first, then `resume/state.json` names it with its sha256, then older states
are removed, so a kill at any moment leaves one complete, verifiable state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ungrok.atomic import atomic_path, write_json
from ungrok.errors import UngrokError
from ungrok.hashing import sha256_file

FORMAT = "ungrok-resume/1"
INDEX = "state.json"


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_resume_state(folder: Path, state: dict[str, Any]) -> Path:
    """Write the state for state["step"], then point state.json at it, then drop older ones."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"state_{state['step']:06d}.pt"
    with atomic_path(folder / name) as tmp:
        torch.save(state, tmp)
    write_json(folder / INDEX, {"format": FORMAT, "step": state["step"], "file": name,
                                "sha256": sha256_file(folder / name)})
    for old in folder.glob("state_*.pt"):
        if old.name != name:
            old.unlink()
    return folder / name


def load_resume_state(folder: Path) -> dict[str, Any] | None:
    """The verified latest state, or None when no state was ever completed; damage is refused by name."""
    index = folder / INDEX
    if not index.is_file():
        return None
    try:
        meta = json.loads(index.read_text(encoding="utf-8"))
        file = folder / meta["file"]
        expected = meta["sha256"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise UngrokError(
            f"{index}: unreadable resume index ({e}); remove {folder} to restart from step 0"
        ) from None
    if meta.get("format") != FORMAT:
        raise UngrokError(f"{index}: not an ungrok resume state (format {meta.get('format')!r})")
    if not file.is_file():
        raise UngrokError(f"{file}: resume state named by {index.name} is missing; "
                          f"remove {folder} to restart from step 0")
    if sha256_file(file) != expected:
        raise UngrokError(f"{file}: corrupt resume state (sha256 does not match {index.name}); "
                          f"remove {folder} to restart from step 0")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several types for damaged files
        raise UngrokError(f"{file}: corrupt resume state ({e})") from None
