"""Intervention validity (docs/method.md §7): an edit that breaks unrelated rules yields no verdict.

An edited cell is INTERVENTION-INVALID when control families the edit should not touch
lose RECOVERED+valid (the agree control passing) in >= 2/3 of the seeds:

- kill (KS): det_an_choice, a_an_adjective, irregular_past, negation_bare_verb; two or
  more failing make the cell invalid;
- rescue and timing (G3): det_an_choice and a_an_adjective; both failing make it
  invalid. The paper also scores RS (both RECOVERED+valid in every rescue cell) as a
  prediction; it is reported among the reasons, not gated;
- ladder (AK5, the a/an kill ladder): the pronoun, negation and irregular-past family
  means of the held-out conflict final accuracy stay within ±0.05 of the base cell.

Control families related to the edited rule (sharing a target, a kill flip or a base
name such as pronoun_gender_ref / _v2) are dropped from its control set: a kill of
det_an_choice is expected to move a_an_adjective, which shares its a/an counter.
The gate logic itself is `ungrok.fate.gates`; this module picks the families, groups
the verdicts and explains the decision.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ungrok.errors import UngrokError
from ungrok.fate.classify import Verdict, classify_table
from ungrok.fate.config import DEFAULT_CONFIG, ClassifierConfig
from ungrok.fate.gates import (
    G3_FAMILIES,
    KS_FAMILIES,
    RS_FAMILIES,
    SEED_QUORUM,
    allowed_failures,
    cell_claim,
    intervention_valid,
    recovered_valid,
)

GateKind = Literal["kill", "rescue", "timing", "ladder"]
AK5_FAMILIES = ("pronoun_gender_ref", "negation_bare_verb", "irregular_past")
AK5_TOLERANCE = 0.05
_VERSION = re.compile(r"_v\d+$")


class GateDecision(NamedTuple):
    """`valid, reasons = intervention_gate(...)`; `label` is what a scoreboard prints."""

    valid: bool
    reasons: tuple[str, ...]

    @property
    def label(self) -> str:
        return "VALID" if self.valid else "INTERVENTION-INVALID"


def verdicts_by_family(data: Any, cfg: ClassifierConfig = DEFAULT_CONFIG) -> dict[str, list[Verdict]]:
    """Per-family seed verdicts from {family: [Verdict]}, {(run, family): Verdict} or a trajectory table."""
    if isinstance(data, Mapping) and data:
        key = next(iter(data))
        if isinstance(key, tuple):
            out: dict[str, list[Verdict]] = {}
            for (_run, fam), v in data.items():
                out.setdefault(fam, []).append(v)
            return out
        if isinstance(key, str):
            out = {}
            for fam, vs in data.items():
                vs = [vs] if isinstance(vs, Verdict) else list(vs)
                if not all(isinstance(v, Verdict) for v in vs):
                    raise UngrokError(f"verdicts for family {fam} must be Verdict objects")
                out[fam] = vs
            return out
    if isinstance(data, Mapping):
        raise UngrokError("intervention gate: no verdicts given")
    return verdicts_by_family(classify_table(data, cfg), cfg)


def _stem(name: str) -> str:
    return _VERSION.sub("", name)


def related_families(rule: str, rules_dir: str | Path | None = None) -> set[str]:
    """Families an edit of `rule` may legitimately move: itself, its versions, rules sharing
    an event target or a kill flip."""
    from ungrok.rules.expand import ngram_patterns
    from ungrok.rules.registry import load_rules
    from ungrok.rules.spec import LookaheadEvent, NgramEvent

    rules = load_rules(rules_dir)

    def surface(name: str) -> set[str]:
        spec = rules[name]
        ev = spec.event
        out: set[str] = set()
        if isinstance(ev, LookaheadEvent):
            out |= set(ev.rule) | set(ev.prior)
        elif isinstance(ev, NgramEvent):
            from ungrok.rules.registry import lists_for

            r, p = ngram_patterns(spec, lists_for(spec, rules_dir))
            out |= set(r) | set(p)
        for c in spec.cues:
            if c.role == "conflict":
                out |= set(c.rule) | set(c.prior)
        if spec.kill is not None:
            out |= set(spec.kill.flip) | set(spec.kill.flip.values())
        return out

    related = {rule} | {n for n in rules if _stem(n) == _stem(rule)}
    if rule in rules:
        mine = surface(rule)
        related |= {n for n in rules if surface(n) & mine}
    return related


def _claim_line(gate: str, fam: str, verdicts: Sequence[Verdict], need: float) -> str:
    ok = sum(1 for v in verdicts if recovered_valid(v))
    mark = "ok" if cell_claim(verdicts, recovered_valid, need) else "FAILED"
    return f"{gate}: {fam} RECOVERED+valid in {ok}/{len(verdicts)} seeds ({mark})"


def _mean_final(verdicts: Sequence[Verdict], fam: str, where: str) -> float:
    if not verdicts:
        raise UngrokError(f"intervention gate: no {where} verdicts for family {fam}")
    return math.fsum(v.conflict_final for v in verdicts) / len(verdicts)


def intervention_gate(
    data: Any,
    edited_rule: str,
    kind: GateKind = "kill",
    *,
    base: Any = None,
    rules_dir: str | Path | None = None,
    cfg: ClassifierConfig = DEFAULT_CONFIG,
    need: float = SEED_QUORUM,
    tolerance: float = AK5_TOLERANCE,
) -> GateDecision:
    """Is an edited cell's verdict admissible? `data`: the cell's verdicts or trajectory table
    (all seeds); `base`: the unedited cell's, for the ladder's AK5 gate."""
    by_fam = verdicts_by_family(data, cfg)
    related = related_families(edited_rule, rules_dir)
    reasons: list[str] = []
    if kind == "ladder":
        if base is None:
            raise UngrokError("the ladder gate (AK5) needs the base cell's verdicts (base=...)")
        base_fam = verdicts_by_family(base, cfg)
        fams = [f for f in AK5_FAMILIES if f not in related]
        bad = []
        for f in fams:
            cell = _mean_final(by_fam.get(f, []), f, "edited-cell")
            ref = _mean_final(base_fam.get(f, []), f, "base-cell")
            ok = abs(cell - ref) <= tolerance + 1e-12
            reasons.append(
                f"AK5: {f} mean conflict final {cell:.3f} vs base {ref:.3f} ({'ok' if ok else 'FAILED'})"
            )
            if not ok:
                bad.append(f)
        valid = not bad
        reasons.append(f"AK5: {len(bad)} of {len(fams)} families moved more than ±{tolerance:g}")
        return GateDecision(valid, tuple(reasons))
    if kind == "kill":
        fams, gate = [f for f in KS_FAMILIES if f not in related], "KS"
    elif kind in ("rescue", "timing"):
        fams, gate = [f for f in G3_FAMILIES if f not in related], "G3"
    else:
        raise UngrokError(f"unknown intervention kind {kind!r}; use kill, rescue, timing or ladder")
    if not fams:
        raise UngrokError(f"no unrelated control family is left to gate an edit of {edited_rule!r}")
    max_fail = allowed_failures(len(fams))  # the rule the prereg evaluator applies too
    result = intervention_valid(by_fam, fams, max_failures=max_fail, need=need)
    reasons += [_claim_line(gate, f, by_fam[f], need) for f in fams]
    dropped = [f for f in (KS_FAMILIES if kind == "kill" else G3_FAMILIES) if f in related]
    if dropped:
        reasons.append(f"{gate}: {', '.join(dropped)} related to {edited_rule}, not used as control")
    reasons.append(
        f"{gate}: {len(result.failed)} of {len(fams)} control families failed "
        f"({max_fail} allowed) -> {result.label}"
    )
    if kind == "rescue":
        rs = [f for f in RS_FAMILIES if f in by_fam]
        held = all(cell_claim(by_fam[f], recovered_valid, need) for f in rs)
        reasons.append(
            f"RS prediction (not a gate): {'held' if held and rs else 'not held'} for {', '.join(rs) or '-'}"
        )
    return GateDecision(result.valid, tuple(reasons))
