"""The cell schema of the experiment file: what one cell is (a storyworld, a built corpus, a
kill or a rescue of a parent cell) and a sweep of cells, plus the document helpers both the
file's loader (experiment/spec.py) and the sweep expansion (experiment/sweep.py) use.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ungrok.corpus.storyworld import StoryworldConfig
from ungrok.edit.scan_defaults import MIN_EVENTS, MIN_RATIO
from ungrok.errors import first_error

CellKind = Literal["storyworld", "built", "kill", "rescue"]
CELL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class KillSpec(BaseModel):
    """Kill `rule` in the parent cell's corpus at `rate` (ungrok.edit.kill_corpus)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    parent: str
    rule: str
    rate: float = Field(ge=0.0, le=1.0)
    seed: int = Field(0, ge=0)
    cues: str = "spec"  # "spec" (the rule's cue classes), "scan" (docs/method.md §6.4), or a cue file path
    min_events: int = Field(MIN_EVENTS, ge=0)  # cues: scan
    min_ratio: float = Field(MIN_RATIO, gt=0)  # cues: scan
    gate: Literal["kill", "ladder", "none"] = "kill"  # KS (pronoun kill) or AK5 (a/an ladder)


class RescueSpec(BaseModel):
    """Inject synthetic support for `rule` into the parent cell's corpus (ungrok.edit.build_rescue)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    parent: str
    rule: str
    dose: float = Field(gt=0.0)
    unit_from: str | None = None  # a cell whose corpus gives the unit (rule events per token)
    unit: float | None = Field(None, gt=0.0)
    placement: Literal["append", "replace"] = "append"
    window: str | None = None  # "0:E" (early) or "S:" (late), in training steps
    seed: int = Field(0, ge=0)
    gate: Literal["rescue", "timing", "none"] | None = None  # default: timing with a window, else rescue

    @model_validator(mode="after")
    def _one_unit(self) -> RescueSpec:
        if (self.unit is None) == (self.unit_from is None):
            raise ValueError("give exactly one of unit_from (a cell) or unit (events per token)")
        return self

    @property
    def gate_kind(self) -> str:
        if self.gate is not None:
            return self.gate
        return "timing" if self.window else "rescue"


class CellSpec(BaseModel):
    """One corpus of the grid, and how its runs train."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    storyworld: StoryworldConfig | None = None
    corpus: str | None = None  # a pre-built shards folder
    kill: KillSpec | None = None
    rescue: RescueSpec | None = None
    train: dict[str, Any] = {}  # deep-merged over the parent's and the top-level train

    @model_validator(mode="after")
    def _one_source(self) -> CellSpec:
        given = [k for k in ("storyworld", "corpus", "kill", "rescue") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a cell needs exactly one of storyworld, corpus, kill or rescue"
                + (f" (it gives {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> CellKind:
        if self.storyworld is not None:
            return "storyworld"
        if self.corpus is not None:
            return "built"
        return "kill" if self.kill is not None else "rescue"

    @property
    def edit(self) -> KillSpec | RescueSpec | None:
        return self.kill if self.kill is not None else self.rescue


class SweepSpec(BaseModel):
    """A base cell (the cell schema, possibly incomplete) and knob paths with the values to try
    (experiment/sweep.py expands it into one cell per point of the grid)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    base: dict[str, Any] = {}
    grid: dict[str, list[Any]]  # knob path -> values (sweep.parse_sweeps checks both)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, recursively for mappings; a None value removes the key."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def validation_line(e: ValidationError, where: str) -> str:
    """The first pydantic error of an experiment document as one line naming the key."""
    loc, msg = first_error(e)
    kind = e.errors()[0]["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown key {loc}"
    if kind == "missing":
        return f"{where}: {loc}: required key missing"
    return f"{where}: {loc}: {msg}" if loc else f"{where}: {msg}"
