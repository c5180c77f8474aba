"""Every constant of the live monitor's displacement warning, in one frozen, hashed model.

The warning (`ungrok.train.watch`) is measured as a classifier of the final DISPLACED
verdict (`ungrok.fate.warning`, bench/monitor.py). A measured figure means something only
together with the exact rule that produced it, so the rule's thresholds live here, not in
code: the package ships them as ``watch.json`` beside this module, `RuleWatch` uses them by
default, and the monitor writes their `sha256()` into every monitor.jsonl line. Changing any
value changes the hash, exactly as with the classifier's `ClassifierConfig`.

The ``displaced`` state is not defined here: it is the frozen classifier's own DISPLACED
verdict on the readings so far (`ClassifierConfig`), kept apart from the early warning.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator

from ungrok.errors import UngrokError
from ungrok.fate.config import HashedConstants, odd_window, share

WATCH_JSON = "watch.json"


class WatchConfig(HashedConstants):
    """The early-warning rule's constants (defaults: the tuned values shipped in watch.json).

    The warning fires at a probe when, after the rule has emerged, the mean of the last
    `level_window` raw held-out conflict readings is <= `level_thr` (and at least `drop_thr`
    below the best smoothed reading), optionally or'ed with a falling-CM trigger, and this
    has held at `sustain` consecutive probes. Emergence follows the classifier's convention:
    probes before `min_step` are ignored, the rest are smoothed with a centred, truncated mean
    of width `smooth_k`, and the rule has emerged once that reaches `emerged_thr`.
    """

    # Emergence, as the classifier sees it (docs/method.md §4): drop early probes, smooth, max.
    min_step: int = Field(100, ge=0)
    smooth_k: int = Field(3, ge=1)
    emerged_thr: float = 0.8
    # The level trigger: trailing mean of this many raw conflict readings ...
    level_window: int = Field(1, ge=1)
    # ... at or below this accuracy ...
    level_thr: float = 0.6
    # ... and at least this far below the best smoothed conflict reading (0: no extra condition).
    drop_thr: float = 0.0
    # The trailing smoothed agree reading must be at least this (0: the control is not consulted).
    agree_min: float = 0.0
    # Optional CM trigger (or'ed with the level trigger): the smoothed CM lost at least
    # max(cm_lost_nats, cm_lost_share * peak) from a positive peak and its least-squares slope
    # over the last cm_slope_window probes is negative.
    cm_trigger: bool = False
    cm_lost_share: float = 0.5
    cm_lost_nats: float = Field(0.5, ge=0.0)
    cm_slope_window: int = Field(3, ge=2)
    # The trigger must hold at this many consecutive probes before the warning is raised.
    sustain: int = Field(3, ge=1)

    # accuracies (or a share of the CM peak) and a centred window: the classifier's own checks
    _share = field_validator("emerged_thr", "level_thr", "drop_thr", "agree_min", "cm_lost_share")(
        lambda v: share(v)
    )
    _odd = field_validator("smooth_k")(lambda k: odd_window(k))

    @model_validator(mode="after")
    def _reachable(self) -> WatchConfig:
        # A warning level at or above emergence would fire on a rule that is still solved.
        if self.level_thr >= self.emerged_thr:
            raise ValueError(
                f"level_thr {self.level_thr} must be below emerged_thr {self.emerged_thr}: "
                "a warning level at or above emergence fires on a solved rule"
            )
        return self


def parse_watch_config(text: str, where: str) -> WatchConfig:
    """A `WatchConfig` from JSON text; one-line UngrokError naming `where` on bad input."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UngrokError(f"{where}: not JSON ({e})") from None
    if not isinstance(data, dict):
        raise UngrokError(f"{where}: expected a JSON object of warning constants")
    try:
        return WatchConfig(**data)
    except ValidationError as e:
        errs = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or 'config'}: {err['msg']}" for err in e.errors()
        )
        raise UngrokError(f"{where}: invalid warning config: {errs}") from None


def load_watch_config(path: str | Path | None = None) -> WatchConfig:
    """The config in `path`, or the one shipped with the package (watch.json) when None."""
    if path is None:
        text = resources.files("ungrok.fate").joinpath(WATCH_JSON).read_text(encoding="utf-8")
        return parse_watch_config(text, f"ungrok/fate/{WATCH_JSON}")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise UngrokError(f"{p}: cannot read the warning config ({e.strerror or e})") from None
    return parse_watch_config(text, str(p))


DEFAULT_WATCH = load_watch_config()
"""The warning rule the monitor uses unless told otherwise (the shipped watch.json)."""
