"""The evidence predictions are scored against: one verdict record per (cell, seed, family).

A record is a `fate.summarize` record plus `cell` and `seed` (and, optionally, the run's
checkpoint `steps`, for `within(k)`, and extra per-seed measures the experiment declared,
e.g. `ood_conflict_final`). Cell-level numbers (a kill rate, a rescue dose) and
per-(cell, family) numbers (a support ratio) ride alongside. The runner builds this with
`records_for_run`; a key that is absent is *missing data* (the prediction is
unscoreable), while a key present with value null is an *unknown* for that seed (e.g. a
CM series that never crossed zero).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from ungrok.errors import UngrokError
from ungrok.fate.classify import Fate, Verdict
from ungrok.fate.classify import letter as verdict_letter
from ungrok.fate.summary import VERDICT_MEASURES
from ungrok.jsonfile import load_json_model

CM_MEASURES = ("cm_final", "cm_peak", "cm_peak_step", "cm_zero_crossing", "pm_final", "pm_at_peak")
BUILTIN_MEASURES = VERDICT_MEASURES + CM_MEASURES
ACCURACIES = ("conflict_final", "conflict_max", "agree_final", "agree_max")  # fractions of items: [0, 1]
NUMBERS = ACCURACIES + ("cm_final", "cm_peak", "pm_final", "pm_at_peak")


class SeedRecord(BaseModel):
    """One family's verdict in one training run (cell x seed). Extra keys are extra measures."""

    model_config = ConfigDict(extra="allow", frozen=True)

    cell: str
    seed: int
    family: str
    run: str | None = None
    fate: Fate
    agree_gate: Literal["pass", "fail"]
    letter: str | None = None
    confirmatory: bool = True
    conflict_final: float
    conflict_max: float
    agree_final: float
    agree_max: float
    n_checkpoints: int = 0
    onset: int | None = None
    transient: bool | None = None
    cm_final: float | None = None
    cm_peak_step: int | None = None
    cm_peak: float | None = None
    cm_instrument_valid: bool | None = None
    cm_zero_crossing: int | None = None
    pm_final: float | None = None
    pm_at_peak: float | None = None
    timing: Literal["PASS", "FAIL"] | None = None
    steps: list[int] | None = None  # the run's checkpoint steps, for within(k)

    @model_validator(mode="after")
    def _extra_are_numbers(self) -> SeedRecord:
        for k, v in (self.model_extra or {}).items():
            ok = v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
            if not ok:
                raise ValueError(f"extra measure {k!r} must be a finite number or null, not {v!r}")
        return self

    def problem(self) -> str | None:
        """Why this record cannot be scored (None: it can). NaN or infinity compare false and
        would turn into a FAIL, and an accuracy outside [0, 1] is no accuracy: both make the
        predictions reading the record UNSCOREABLE, with this reason."""
        where = f"the evidence for {self.family} in cell {self.cell} seed {self.seed}"
        for name in NUMBERS:
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                return f"{where} gives {name} = {v}, not a finite number"
            if name in ACCURACIES and not 0.0 <= v <= 1.0:
                return f"{where} gives {name} = {v:g}, outside [0, 1]"
        return None

    def has(self, name: str) -> bool:
        """Was this key given? (absent = missing data; given as null = unknown for this seed)"""
        return name in self.model_fields_set or name in (self.model_extra or {})

    def get(self, name: str) -> Any:
        if name in (self.model_extra or {}):
            return self.model_extra[name]  # type: ignore[index]
        return getattr(self, name)

    @property
    def valid(self) -> bool:
        return self.agree_gate == "pass"

    def verdict(self) -> Verdict:
        return Verdict(cls=self.fate, valid=self.valid, **{k: getattr(self, k) for k in VERDICT_MEASURES})

    def letter_or_derived(self) -> str:
        return self.letter if self.letter is not None else verdict_letter(self.verdict())


class Evidence(BaseModel):
    """Everything a scoreboard reads; `classifier_sha256` must match the registry's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classifier_sha256: str
    records: list[SeedRecord]
    cells: dict[str, dict[str, float]] = {}  # cell -> {rate: 0.645, dose: 1.0, ...}
    families: dict[str, dict[str, dict[str, float]]] = {}  # cell -> family -> {support_ratio: 6.94}

    def index(self) -> dict[tuple[str, int, str], SeedRecord]:
        out: dict[tuple[str, int, str], SeedRecord] = {}
        for r in self.records:
            key = (r.cell, r.seed, r.family)
            if key in out:
                raise UngrokError(f"evidence: cell {r.cell} seed {r.seed} family {r.family} appears twice")
            out[key] = r
        return out


def records_for_run(
    cell: str,
    seed: int,
    summary_records: Iterable[Mapping[str, Any]],
    steps: Iterable[int] | None = None,
    extra: Mapping[str, Mapping[str, float | None]] | None = None,
) -> list[dict[str, Any]]:
    """Evidence records for one run: `fate.summarize` records plus cell, seed, checkpoint
    steps and any extra per-family measures ({family: {measure: value}})."""
    out = []
    for rec in summary_records:
        r = {**rec, "cell": cell, "seed": int(seed)}
        if steps is not None:
            r["steps"] = sorted(int(s) for s in steps)
        r.update((extra or {}).get(rec["family"], {}))
        out.append(r)
    return out


def load_evidence(path: str | Path) -> Evidence:
    """Read an evidence JSON file; bad input is one line."""
    return load_json_model(path, Evidence, "evidence file")
