"""Pilot runs: exploratory seeds, read before the freeze, bound into the registry, never scored.

The paper's protocol is "pilot, then confirm": look at a few exploratory seeds, then
freeze the predictions, then train the confirmatory seeds. Two kinds of pilot evidence
reach a registry:

- pilot reads: ledger reads (`CELL/SEED/NAME`, first-read time, file sha256) of the
  experiment's `pilot_seeds`, made by `ungrok run --phase pilot` in the same run folder;
- a pilot record: a pilot done elsewhere (e.g. shipped with the demo), one JSON file of
  per-(cell, seed, family) verdicts, each with the sha256 of its trajectory table.

`freeze` copies both into the registry's `pilot` block, so the registry's own sha256
proves what the pilot had seen when the predictions were frozen. Pilot seeds are never
governed or quarantined: no prediction, gate or scoreboard reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ungrok.errors import UngrokError, first_error, first_error_line
from ungrok.fate.classify import Fate
from ungrok.jsonfile import load_json_model
from ungrok.prereg.clock import Clock, parse_stamp, stamp, utc_now
from ungrok.prereg.ledger import REGISTRY_NAME, Ledger, artifact_key, parse_artifact_key, read_ledger

PILOT_FATES = "pilot_fates.json"
RECORD_FORMAT = "ungrok-pilot/1"
SHA256 = r"^[0-9a-f]{64}$"


# --------------------------------------------------------------------------- the pilot record file
class PilotEntry(BaseModel):
    """One family's verdict in one pilot run; `peak`/`final` are held-out conflict accuracy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cell: str = Field(min_length=1)
    seed: int = Field(ge=0)
    family: str = Field(min_length=1)
    verdict: Fate
    agree_gate: Literal["pass", "fail"] = "pass"
    cm_final: float | None = None
    peak: float
    final: float
    traj_sha256: str = Field(pattern=SHA256)


class PilotRecord(BaseModel):
    """A pilot record file. A bare list of entries is accepted too (then no date or source)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["ungrok-pilot/1"] = RECORD_FORMAT
    created_utc: str | None = None
    source: str | None = None  # the pilot run folder it was made from
    classifier_sha256: str | None = None
    entries: list[PilotEntry] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:
        return {"entries": data} if isinstance(data, list) else data

    @model_validator(mode="after")
    def _unique_and_dated(self) -> PilotRecord:
        seen: set[tuple[str, int, str]] = set()
        for e in self.entries:
            key = (e.cell, e.seed, e.family)
            if key in seen:
                raise ValueError(f"cell {e.cell} seed {e.seed} family {e.family} appears twice")
            seen.add(key)
        if self.created_utc is not None:
            try:
                parse_stamp(self.created_utc)
            except UngrokError as err:
                raise ValueError(str(err)) from None
        return self

    @property
    def seeds(self) -> list[int]:
        return sorted({e.seed for e in self.entries})


def load_pilot_record(path: str | Path) -> PilotRecord:
    """Read and validate a pilot record; bad input is one line naming the file and the field."""
    return load_json_model(path, PilotRecord, "pilot record")


def check_record_seeds(record: PilotRecord, confirmatory: Iterable[int], where: str) -> None:
    """A pilot on a confirmatory seed would be a confirmatory read before the freeze."""
    both = sorted(set(record.seeds) & set(confirmatory))
    if both:
        raise UngrokError(
            f"{where}: pilot record seed(s) {both} are governed or quarantined seeds; a pilot must use "
            "seeds the confirmatory runs do not"
        )


# --------------------------------------------------------------------------- making one from a run
def _fates_doc(run_dir: Path) -> tuple[dict[str, Any], str]:
    """The pilot verdicts of a run folder: pilot_fates.json, or fates.json of a run without a
    registry (a whole experiment run as a pilot). A registered run's fates are confirmatory."""
    for name in (PILOT_FATES, "fates.json"):
        p = run_dir / name
        if not p.is_file():
            continue
        if name == "fates.json" and (run_dir / REGISTRY_NAME).exists():
            raise UngrokError(
                f"{run_dir}: no {PILOT_FATES}, and its fates.json holds confirmatory verdicts (the folder has a "
                "registry); run `ungrok run EXP --phase pilot` first"
            )
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UngrokError(f"{p}: not valid JSON ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("records"), list) or not doc["records"]:
            raise UngrokError(f"{p}: holds no verdict records")
        return doc, name
    raise UngrokError(f"{run_dir}: neither {PILOT_FATES} nor fates.json; is it a finished pilot run folder?")


def pilot_record_from_run(run_dir: str | Path, *, clock: Clock = utc_now) -> PilotRecord:
    """Build a pilot record from a finished pilot run folder: its verdicts plus the sha256 of
    each run's traj.parquet (which must still be what the ledger saw at its first read)."""
    from ungrok.experiment.layout import TRAJ, seed_dir
    from ungrok.hashing import sha256_file

    run = Path(run_dir)
    doc, name = _fates_doc(run)
    digests = read_ledger(run).digests
    hashes: dict[tuple[str, int], str] = {}
    entries = []
    for i, r in enumerate(doc["records"]):
        try:
            cell, seed = str(r["cell"]), int(r["seed"])
            key = (cell, seed)
            if key not in hashes:
                traj = seed_dir(run, cell, seed) / TRAJ
                if not traj.is_file():
                    raise UngrokError(f"{run}: {name} names cell {cell} seed {seed}, but {traj} is missing")
                hashes[key] = sha256_file(traj)
                seen = digests.get(artifact_key(cell, seed, "trajectories"))
                if seen is not None and seen != hashes[key]:
                    raise UngrokError(
                        f"{traj} changed since it was classified (the ledger holds sha256 {seen[:12]}…)"
                    )
            entries.append(PilotEntry(cell=cell, seed=seed, family=r["family"], verdict=r["fate"],
                                      agree_gate=r["agree_gate"], cm_final=r.get("cm_final"),
                                      peak=r["conflict_max"], final=r["conflict_final"],
                                      traj_sha256=hashes[key]))
        except ValidationError as e:
            raise UngrokError(first_error_line(e, f"{run / name}: record {i}", top="", raw=True)) from None
        except KeyError as e:
            raise UngrokError(f"{run / name}: record {i} lacks {e}") from None
        except (TypeError, ValueError) as e:
            raise UngrokError(f"{run / name}: record {i} is not a verdict record ({e})") from None
    sha = doc.get("classifier_sha256") if isinstance(doc.get("classifier_sha256"), str) else None
    try:
        return PilotRecord(created_utc=stamp(clock), source=run.name, classifier_sha256=sha, entries=entries)
    except ValidationError as e:
        raise UngrokError(f"{run / name}: {first_error(e)[1]}") from None


def merge_pilot_records(records: list[PilotRecord], *, clock: Clock = utc_now) -> PilotRecord:
    """One record from several pilot folders (waves of a pilot study): each cell is named
    `SOURCE/CELL`, since two waves may reuse a cell name for different corpora."""
    if len(records) == 1:
        return records[0]
    sources = [r.source or f"run{i}" for i, r in enumerate(records)]
    if len(set(sources)) != len(sources):
        raise UngrokError(f"pilot folders share a name ({', '.join(sources)}); give folders with distinct names")
    shas = {r.classifier_sha256 for r in records} - {None}
    if len(shas) > 1:
        raise UngrokError("the pilot folders were classified with different classifier constants")
    entries = [e.model_copy(update={"cell": f"{src}/{e.cell}"}) for src, r in zip(sources, records, strict=True)
               for e in r.entries]
    return PilotRecord(created_utc=stamp(clock), source=", ".join(sources),
                       classifier_sha256=next(iter(shas), None), entries=entries)


def write_pilot_record(run_dirs: str | Path | list[str | Path], out: str | Path, *, force: bool = False,
                       clock: Clock = utc_now) -> PilotRecord:
    """`ungrok prereg pilot-record`: write the record atomically; never silently overwrite."""
    from ungrok.atomic import write_json

    dest = Path(out)
    if dest.exists() and not force:
        raise UngrokError(f"{dest}: exists; use --force to replace it")
    dirs = run_dirs if isinstance(run_dirs, list) else [run_dirs]
    rec = merge_pilot_records([pilot_record_from_run(d, clock=clock) for d in dirs], clock=clock)
    write_json(dest, rec.model_dump(mode="json"))
    return rec


# --------------------------------------------------------------------------- the registry's pilot block
class PilotRead(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    artifact: str  # CELL/SEED/NAME
    first_read: str
    sha256: str | None = None  # None: read before the ledger kept digests


class PilotRecordRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str  # relative to the registry's folder
    sha256: str
    entries: int
    seeds: list[int]
    created_utc: str | None = None


class PilotBlock(BaseModel):
    """What the registry binds about the pilot: its seeds, the reads made before the freeze,
    and the pilot record (if any). `reads == []` says: no pilot reads at the freeze."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seeds: list[int]
    reads: list[PilotRead]
    record: PilotRecordRef | None = None


def pilot_reads(led: Ledger, seeds: Iterable[int], until: str) -> list[PilotRead]:
    """The ledger's reads of pilot seeds up to `until` (the freeze), earliest first."""
    pilot, end = {int(s) for s in seeds}, parse_stamp(until)
    out = [PilotRead(artifact=k, first_read=t, sha256=led.digests.get(k))
           for k, t in led.reads.items() if parse_artifact_key(k)[1] in pilot and parse_stamp(t) <= end]
    return sorted(out, key=lambda r: (parse_stamp(r.first_read), r.artifact))

