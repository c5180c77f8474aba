"""Registered outcome and gate logic over per-seed verdicts (docs/method.md §7, §5.2).

Standing rule: a violated validity precondition yields INSTRUMENT-INVALID or
INTERVENTION-INVALID, never PASS or FAIL; these helpers report validity and leave
the scoring of a prediction to its caller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ungrok.errors import UngrokError
from ungrok.fate._series import ge
from ungrok.fate.classify import Verdict
from ungrok.fate.config import DEFAULT_CONFIG, ClassifierConfig
from ungrok.fate.margins import CMSummary

# KS (kill): every one of these must be RECOVERED+valid in >= 2/3 seeds; >= 2 failing
# families make the cell INTERVENTION-INVALID.
KS_FAMILIES = ("det_an_choice", "a_an_adjective", "irregular_past", "negation_bare_verb")
# RS (rescue, scored as a prediction) and G3 (Step-6T, both failing -> invalid).
RS_FAMILIES = ("det_an_choice", "a_an_adjective")
G3_FAMILIES = RS_FAMILIES
SEED_QUORUM = 2 / 3


def meets_quorum(count: int, total: int, need: float = SEED_QUORUM) -> bool:
    """count/total >= need, in exact arithmetic (2/3 of 3 seeds is 2, not 1.9999…)."""
    if total <= 0:
        raise UngrokError("a cell claim needs at least one seed")
    frac = Fraction(need).limit_denominator(1000)
    return count * frac.denominator >= frac.numerator * total


def recovered_valid(v: Verdict) -> bool:
    """RECOVERED and the agree control passed."""
    return v.cls == "RECOVERED" and v.valid


def cell_claim(
    verdicts: Sequence[Verdict], predicate: Callable[[Verdict], bool], need: float = SEED_QUORUM
) -> bool:
    """A cell-level behavioural claim: `predicate` holds in >= need of the seeds."""
    return meets_quorum(sum(1 for v in verdicts if predicate(v)), len(verdicts), need)


def artifact_seed(v: Verdict, cfg: ClassifierConfig = DEFAULT_CONFIG) -> bool:
    """Blanket-she seed: conflict_final >= 0.8 while the agree control failed."""
    return ge(v.conflict_final, cfg.recovered_thr) and not v.valid


def blanket_artifact(
    verdicts: Sequence[Verdict], cfg: ClassifierConfig = DEFAULT_CONFIG, need: float = SEED_QUORUM
) -> bool:
    """The blanket-she clause: artifact seeds in >= 2/3 of the cell count as an
    artifact, not a recovery."""
    return cell_claim(verdicts, lambda v: artifact_seed(v, cfg), need)


class InterventionGate(BaseModel):
    """Outcome of an intervention-validity gate for one cell."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    valid: bool
    label: Literal["VALID", "INTERVENTION-INVALID"]
    failed: tuple[str, ...]  # control families not RECOVERED+valid in >= 2/3 seeds


def allowed_failures(n_families: int) -> int:
    """How many of `n_families` control families may fail before the cell is INTERVENTION-INVALID.

    One rule for every intervention gate (docs/method.md §7): KS fires when >= 2 of its 4
    families fail, G3 when both of its 2 fail, so a gate fires at 2 failures, or at all of
    them when it has fewer than 2 families (a gate over one family fires when that family
    fails; otherwise it could never fire)."""
    if n_families < 1:
        raise UngrokError("intervention gate: no control families given")
    return min(1, n_families - 1)


def intervention_valid(
    control_verdicts_by_family: Mapping[str, Sequence[Verdict]],
    families: Sequence[str] = KS_FAMILIES,
    max_failures: int | None = None,
    need: float = SEED_QUORUM,
) -> InterventionGate:
    """The KS rule (and G3 with families=G3_FAMILIES): each control family must be
    RECOVERED+valid in >= 2/3 seeds; more than `max_failures` failing families (default:
    `allowed_failures(len(families))`, the rule every caller shares) make the cell
    INTERVENTION-INVALID."""
    if not families:
        raise UngrokError("intervention gate: no control families given")
    if max_failures is None:
        max_failures = allowed_failures(len(families))
    failed = []
    for fam in families:
        if fam not in control_verdicts_by_family:
            raise UngrokError(f"intervention gate: no verdicts for control family {fam}")
        if not cell_claim(control_verdicts_by_family[fam], recovered_valid, need):
            failed.append(fam)
    ok = len(failed) <= max_failures
    return InterventionGate(valid=ok, label="VALID" if ok else "INTERVENTION-INVALID", failed=tuple(failed))


def cm_cell_valid(summaries: Sequence[CMSummary], min_valid: int = 2) -> bool:
    """A cell CM verdict needs >= 2 instrument-valid seeds; otherwise INSTRUMENT-INVALID."""
    return sum(1 for s in summaries if s.instrument_valid) >= min_valid
