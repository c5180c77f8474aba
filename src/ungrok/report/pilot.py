"""The pilot's verdicts, read for a table of their own (sections/pilot.py): exploratory, never scored.

Two sources, each only when the run has it: RUN_DIR/pilot_fates.json (the folder's own
`ungrok run --phase pilot`) and the pilot record the registry bound at its freeze (a pilot
done elsewhere). Pilot rows never reach the scoreboard, the phase grid or the summary,
which read fates.json (governed seeds) only; this section says so in its label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ungrok.errors import UngrokError
from ungrok.report.data import check_record, read_fates, read_json

LABEL = "pilot (exploratory, not scored)"


@dataclass(frozen=True)
class PilotRow:
    source: str
    cell: str
    seed: int
    family: str
    fate: str
    agree_gate: str
    final: float
    peak: float
    cm_final: float | None


@dataclass
class PilotData:
    rows: list[PilotRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _from_fates(path: Path, notes: list[str]) -> list[PilotRow]:
    got = read_fates(path, notes, f"{path.name} is missing")
    if got is None:
        return []
    rows = []
    for i, r in enumerate(got[0]["records"]):
        why = check_record(r)
        if why is not None:
            notes.append(f"{path.name} record {i} skipped: {why}")
            continue
        rows.append(PilotRow(path.name, r["cell"], r["seed"], r["family"], r["fate"], r["agree_gate"],
                             r["conflict_final"], r["conflict_max"], r.get("cm_final")))
    return rows


def _from_registry(run_dir: Path, notes: list[str]) -> list[PilotRow]:
    from ungrok.prereg.ledger import REGISTRY_NAME
    from ungrok.prereg.pilot import load_pilot_record

    reg = run_dir / REGISTRY_NAME
    if not reg.is_file():
        return []
    try:
        ref = (read_json(reg).get("pilot") or {}).get("record")
    except (ValueError, AttributeError):
        return []  # verify names a broken registry; the report does not
    if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
        return []
    try:
        rec = load_pilot_record(run_dir / ref["path"])
    except UngrokError as e:
        notes.append(f"the registry's pilot record is unreadable ({e}); its verdicts are omitted")
        return []
    src = f"pilot record {ref['path']}"
    return [PilotRow(src, e.cell, e.seed, e.family, e.verdict, e.agree_gate, e.final, e.peak, e.cm_final)
            for e in rec.entries]


def load_pilot(run_dir: Path) -> PilotData | None:
    """The run's pilot verdicts, or None (no section) when it has no pilot."""
    from ungrok.prereg.pilot import PILOT_FATES

    data = PilotData()
    if (run_dir / PILOT_FATES).is_file():
        data.rows += _from_fates(run_dir / PILOT_FATES, data.notes)
    data.rows += _from_registry(run_dir, data.notes)
    return data if data.rows or data.notes else None

