"""probes: batteries (build, load, hash), batched forced-choice scoring, margins, trajectories.

Names are imported lazily so `ungrok.probes.battery` stays usable without loading torch.

Score one loaded model on a battery:

    from ungrok.probes import BatteryPlan, GPTLogits, TokenizerFile, load_battery
    plan = BatteryPlan(load_battery("battery.jsonl"), TokenizerFile.load("tokenizer.json"))
    for g in plan.score(GPTLogits(model)).groups():
        print(g.family, g.condition, g.split, g.accuracy)
"""

from __future__ import annotations

from ungrok.lazy import lazy_getattr

_EXPORTS = {
    "Battery": "battery",
    "build_battery": "battery",
    "canonical_bytes": "battery",
    "load_battery": "battery",
    "parse_battery": "battery",
    "save_battery": "battery",
    "BatteryPlan": "score",
    "BatteryScores": "score",
    "GroupScore": "score",
    "LogitsModel": "score",
    "PairPlan": "score",
    "TextTokenizer": "score",
    "score_battery": "score",
    "MarginPlan": "margins",
    "MarginPrompts": "margins",
    "MarginScore": "margins",
    "margin_prompt_set": "margins",
    "margin_rules": "margins",
    "GPTLogits": "models",
    "HFLogits": "models",
    "HFTokenizer": "models",
    "TokenizerFile": "models",
    "load_hf": "models",
    "load_own_checkpoint": "models",
    "revision_step": "revisions",
    "run_checkpoints": "models",
    "run_tokenizer_path": "models",
    "CheckpointSource": "trajectories",
    "TrajectoryStore": "trajectories",
    "items_path_for": "trajectories",
    "margins_path_for": "trajectories",
    "score_checkpoints": "trajectories",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
