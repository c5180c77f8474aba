"""When things happen in a run: LR multiplier, Muon weight decay, checkpoints, probes
(docs/method.md §1.2, §1.4).

No warm-up: Muon's orthogonalised updates are bounded from step 0. The LR stays at
1.0× for the first 70% of steps, then follows a half cosine to 0 at the last step.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def lr_multiplier(step: int, steps: int, warmdown_start: float = 0.7) -> float:
    """1.0 before int(steps·warmdown_start), then 0.5·(1 + cos(π·(step − start)/(steps − start)))."""
    start = int(steps * warmdown_start)
    if step < start or steps <= start:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - start) / (steps - start)))


def muon_weight_decay(step: int, steps: int, wd0: float, decay: Literal["linear", "none"]) -> float:
    """wd0·(1 − step/steps) for the linear arm (TinyStories), wd0 throughout otherwise."""
    if decay == "linear" and steps > 0:
        return wd0 * (1.0 - step / steps)
    return wd0


class CheckpointRule(BaseModel):
    """Save at start, start + every, ... up to end (inclusive; None means the last step)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: int = Field(0, ge=0)
    end: int | None = Field(None, ge=0)
    every: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> CheckpointRule:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


# The paper's schedule: step 0, every 100 steps, and every 25 steps in [100, 2400].
PAPER_CHECKPOINTS = (CheckpointRule(start=0, every=100), CheckpointRule(start=100, end=2400, every=25))


def checkpoint_steps(rules: tuple[CheckpointRule, ...] | list[CheckpointRule], steps: int) -> list[int]:
    """Sorted union of the rules' steps within [0, steps]; the last step is always saved."""
    found = {steps}
    for r in rules:
        end = steps if r.end is None else min(r.end, steps)
        found.update(range(r.start, end + 1, r.every))
    return sorted(found)


def probe_due(step: int, every: int, dense_until: int) -> bool:
    """In-loop probes: every step up to dense_until, then every `every` steps."""
    return step <= dense_until or step % every == 0
