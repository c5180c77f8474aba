"""Score every registered prediction: PASS (✓) / FAIL (×) / UNSCOREABLE (◦), and falsifiers.

A falsifier is a prediction whose condition, if it holds, refutes the theory it guards:
it has *triggered* when it evaluates PASS, is *silent* on FAIL, and is not applicable
when UNSCOREABLE. The summary counts predictions and falsifiers separately, as the
paper's scoreboard does ("22 ✓ / 12 × / 8 ◦; 2 of 7 applicable falsifiers triggered").
A prediction registered after the data it governs were first read (per the run's read
ledger) is post hoc and gets no verdict: UNSCOREABLE. So is one that reads a result file
whose bytes changed since the ledger recorded them (integrity.py): never a silent PASS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from ungrok.atomic import write_json
from ungrok.errors import UngrokError
from ungrok.prereg import predictions as preds
from ungrok.prereg.evaluate import Context, Result, Status, evaluate
from ungrok.prereg.evidence import Evidence
from ungrok.prereg.ledger import Ledger
from ungrok.prereg.registry import Registry, first_governed_read

if TYPE_CHECKING:
    from ungrok.prereg.integrity import Changed

SYMBOL = {"PASS": "✓", "FAIL": "×", "UNSCOREABLE": "◦"}


class Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    group: str | None
    status: Status
    reason: str
    value: float | str | None
    falsifier: bool
    triggered: bool | None  # falsifiers only: PASS -> True, FAIL -> False, UNSCOREABLE -> None
    registered_utc: str
    registered_in: str  # "freeze" or "amendment N"
    source: str | None  # the one-line expression, if it was written as one


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    passed: int
    failed: int
    unscoreable: int
    falsifiers: int
    triggered: int
    silent: int
    falsifiers_unscoreable: int

    def line(self) -> str:
        text = f"{self.passed} ✓ / {self.failed} × / {self.unscoreable} ◦"
        if self.falsifiers:
            applicable = self.triggered + self.silent
            text += f"; falsifiers: {self.triggered} of {applicable} applicable triggered"
            if self.falsifiers_unscoreable:
                text += f" ({self.falsifiers_unscoreable} unscoreable)"
        return text


class GroupSummary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str
    passed: int
    failed: int
    unscoreable: int
    falsifier: Literal["triggered", "silent", "unscoreable"] | None


class Scoreboard(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["ungrok-scoreboard/1"] = "ungrok-scoreboard/1"
    registry_sha256: str
    registry_head_sha256: str
    ledger_head_sha256: str | None = None  # the run ledger's head when scored (None: scored without one)
    classifier_sha256: str
    invalid_cells: dict[str, str]
    outcomes: list[Outcome]
    summary: Summary
    groups: list[GroupSummary]


def _summary(outcomes: list[Outcome]) -> Summary:
    plain = [o for o in outcomes if not o.falsifier]
    fals = [o for o in outcomes if o.falsifier]
    return Summary(
        passed=sum(o.status == "PASS" for o in plain),
        failed=sum(o.status == "FAIL" for o in plain),
        unscoreable=sum(o.status == "UNSCOREABLE" for o in plain),
        falsifiers=len(fals),
        triggered=sum(o.triggered is True for o in fals),
        silent=sum(o.triggered is False for o in fals),
        falsifiers_unscoreable=sum(o.triggered is None for o in fals),
    )


def _groups(outcomes: list[Outcome]) -> list[GroupSummary]:
    names = list(dict.fromkeys(o.group or "(ungrouped)" for o in outcomes))
    out = []
    for g in names:
        members = [o for o in outcomes if (o.group or "(ungrouped)") == g]
        s = _summary(members)
        fal: Literal["triggered", "silent", "unscoreable"] | None = None
        if s.falsifiers:
            fal = "triggered" if s.triggered else ("silent" if s.silent else "unscoreable")
        out.append(
            GroupSummary(group=g, passed=s.passed, failed=s.failed, unscoreable=s.unscoreable, falsifier=fal)
        )
    return out


def _check_evidence(reg: Registry, ev: Evidence) -> None:
    if ev.classifier_sha256 != reg.classifier_sha256:
        raise UngrokError(
            f"the evidence was classified with constants sha256 {ev.classifier_sha256[:12]}…, not the "
            f"registered {reg.classifier_sha256[:12]}…; re-classify with the frozen constants"
        )
    cells, locked = set(reg.cells), reg.locked_seeds()
    seeds = reg.seeds.confirmatory
    pilot: set[int] = set()
    if reg.pilot is not None:
        pilot = set(reg.pilot.seeds) | set(reg.pilot.record.seeds if reg.pilot.record else ())
    for r in ev.records:
        if r.seed in pilot:
            raise UngrokError(
                f"the evidence holds pilot seed {r.seed} (cell {r.cell}); pilot runs are exploratory and "
                "never scored: leave them out of the evidence"
            )
        if r.cell not in cells:
            raise UngrokError(f"the evidence holds cell {r.cell!r}, which the registry does not list")
        if r.seed in locked:
            raise UngrokError(
                f"the evidence holds quarantined seed {r.seed} (cell {r.cell}), which is locked until "
                "`ungrok prereg unlock`"
            )
        if r.seed not in seeds:
            raise UngrokError(
                f"the evidence holds seed {r.seed} (cell {r.cell}), which the registry does not list"
            )
    for name, table in (("cells", ev.cells), ("families", ev.families)):
        for c in table:
            if c not in cells:
                raise UngrokError(
                    f"the evidence's {name} table names cell {c!r}, which the registry does not list"
                )


def _post_hoc(reg: Registry, led: Ledger | None, pred: object, when: str) -> str | None:
    hit = None if led is None else first_governed_read(led, pred, reg.seeds, when)
    if hit is None:
        return None
    key, first = hit
    return f"post hoc: {key} was first read at {first}, before this prediction was registered at {when}"


def _changed(reg: Registry, changed: Iterable[Changed], pred: object) -> str | None:
    for c in changed:
        if c.governs(preds.governed_cells(pred), reg.seeds.read_by(pred)):
            return f"a result it reads changed: {c.line()}"
    return None


def score(
    registry: Registry,
    evidence: Evidence,
    invalid_cells: Mapping[str, str] | Iterable[str] = (),
    *,
    ledger: Ledger | None = None,
    changed: Iterable[Changed] = (),
) -> Scoreboard:
    """Score every registered prediction (frozen ones, then each amendment's) against the evidence.

    `invalid_cells` are cells the run found INTERVENTION-INVALID (a mapping gives the
    reason); predictions reading them are UNSCOREABLE. With `ledger`, a prediction
    registered after its data were first read is UNSCOREABLE (post hoc); so is one reading a
    result in `changed` (integrity.check_run: the file differs from its first read).
    """
    changed = list(changed)
    _check_evidence(registry, evidence)
    invalid = (
        dict(invalid_cells)
        if isinstance(invalid_cells, Mapping)
        else {c: "flagged by the run" for c in invalid_cells}
    )
    for c in invalid:
        if c not in registry.cells:
            raise UngrokError(f"invalid cell {c!r} is not a cell of the registry")
    ctx = Context(
        evidence=evidence,
        cfg=registry.classifier_config(),
        governed=list(registry.seeds.governed),
        quarantined=list(registry.seeds.quarantined),
        quarantine_locked=bool(registry.locked_seeds()),
        invalid_cells=invalid,
    )
    outcomes = []
    for pred, when, where in registry.registered():
        why = _changed(registry, changed, pred) or _post_hoc(registry, ledger, pred, when)
        res = Result("UNSCOREABLE", why) if why else evaluate(pred, ctx)
        outcomes.append(
            Outcome(
                name=pred.name,
                kind=pred.kind,
                group=pred.group,
                status=res.status,
                reason=res.reason,
                value=res.value,
                falsifier=pred.falsifier,
                triggered=None if not pred.falsifier or res.status == "UNSCOREABLE" else res.status == "PASS",
                registered_utc=when,
                registered_in=where,
                source=pred.source,
            )
        )
    return Scoreboard(
        registry_sha256=registry.sha256,
        registry_head_sha256=registry.head_sha256,
        ledger_head_sha256=None if ledger is None else ledger.head,
        classifier_sha256=registry.classifier_sha256,
        invalid_cells=invalid,
        outcomes=outcomes,
        summary=_summary(outcomes),
        groups=_groups(outcomes),
    )


def write_scoreboard(path: str | Path, board: Scoreboard, force: bool = False) -> None:
    """Write the scoreboard JSON (the registry's hashes inside); never silently overwrite."""
    p = Path(path)
    if p.exists() and not force:
        raise FileExistsError(p)
    write_json(p, board.model_dump(mode="json"))
