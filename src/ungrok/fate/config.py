"""Every constant of the frozen trajectory classifier and the margin instruments, in one place.

The paper's code scatters these through single-purpose scripts (docs/method.md §4.1, §5.2,
§7). Here they live in one frozen model, so a pre-registration can store its
`sha256()` and refuse to score with anything else. Changing any value, even a
threshold's last digit, changes the hash.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from ungrok.hashing import canonical_json, sha256_text


def share(v: float) -> float:
    """A threshold that compares with accuracies must be a share: 2.5 would make it unreachable."""
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"{v} is not a share in [0, 1] (thresholds compare with accuracies)")
    return v


def odd_window(k: int) -> int:
    """A smoothing window is centred, so it has an odd length."""
    if k % 2 != 1:
        raise ValueError("smooth_k must be odd: the window is centred")
    return k


class HashedConstants(BaseModel):
    """A frozen set of constants named by the hash of its JSON, so a changed value is a new name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def canonical_json(self) -> str:
        """Key-sorted, whitespace-free JSON of every constant: the text that is hashed."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return canonical_json(data, allow_nan=True)  # a non-finite constant still hashes, as it always has

    def sha256(self) -> str:
        """Hex SHA-256 of `canonical_json()`: what a registration or a monitor log stores."""
        return sha256_text(self.canonical_json())


class ClassifierConfig(HashedConstants):
    """The registered classifier constants (defaults = the paper's frozen values)."""

    # Smoothing: centred rolling mean of this (odd) width, truncated at both ends.
    smooth_k: int = Field(3, ge=1)
    # Behavioural rows below this step are dropped BEFORE smoothing; the CM peak search
    # also starts here (CM itself is smoothed over every checkpoint, step 0 included).
    min_step: int = Field(100, ge=0)
    emerged_thr: float = 0.8
    # Final window = max(final_min_ckpts, round(final_frac * n)) for the classifier and
    # max(final_min_ckpts, floor(final_frac * n)) for CM/PM (docs/method.md §16.7).
    final_frac: float = Field(0.10, gt=0.0, le=1.0)
    final_min_ckpts: int = Field(3, ge=1)
    recovered_thr: float = 0.8
    displaced_thr: float = 0.6
    agree_valid_thr: float = 0.8
    agree_drop_thr: float = 0.15
    # Range of the smoothed conflict tail (same final window) at or above which -> UNSTABLE.
    unstable_range: float = 0.2
    # Collapse onset = last step with smoothed conflict accuracy >= onset_thr.
    onset_thr: float = 0.5
    # CM instrument guard: max smoothed CM over steps >= min_step must reach this (nats).
    cm_guard_nats: float = 0.5
    # Registered M4b window: crossing in [timing_lo * onset, timing_hi * onset].
    timing_lo: float = 0.5
    timing_hi: float = 2.0
    exploratory_families: frozenset[str] = frozenset({"comparative_er"})
    anchor_family: str = "pronoun_gender_ref"

    _share = field_validator(
        "emerged_thr", "recovered_thr", "displaced_thr", "agree_valid_thr", "agree_drop_thr",
        "unstable_range", "onset_thr",
    )(lambda v: share(v))
    _odd = field_validator("smooth_k")(lambda k: odd_window(k))

    @field_serializer("exploratory_families")
    def _sorted(self, fams: frozenset[str]) -> list[str]:
        # A set's iteration order depends on the string hash seed; the hash must not.
        return sorted(fams)

    def is_confirmatory(self, family: str) -> bool:
        """False for exploratory families, which no confirmatory claim may use."""
        return family not in self.exploratory_families


DEFAULT_CONFIG = ClassifierConfig()
