"""The frozen registry: predictions, classifier constants, battery and experiment hashes,
seeds — hashed, dated, and only ever appended to.

Layout of `registry.json`:
    format, created_utc, experiment {path, sha256}, batteries {name: {path, sha256}},
    classifier {...}, classifier_sha256, cells, seeds {governed, quarantined},
    families, measures, cell_numbers, predictions [...],
    pilot       = {seeds, reads [{artifact, first_read, sha256}], record {path, sha256, ...}}
                  (only when the experiment declares pilot_seeds or a pilot_record; see pilot.py)
    ledger_head = the run ledger's head hash just before the freeze (ledger.py)
    sha256      = sha256 of the canonical JSON of everything above
    amendments  = [{index, created_utc, kind, reason, predictions, changes,
                    unlocked_seeds, prev_sha256, ledger_head, sha256}, ...]
Each amendment's sha256 covers its own content and `prev_sha256` (the registry's
sha256 for the first, the previous amendment's after that): a hash chain, so editing,
removing or reordering any earlier entry is detected by `verify`. The run ledger records
each registration's sha256 and each registration records the ledger's head before it, so
the registry and the ledger bind each other (integrity.py checks both). Hashes are taken
over the parsed JSON in canonical form (sorted keys, no whitespace), so they do not
depend on how the file is indented. Paths are stored relative to the registry's folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, field_validator, model_validator

from ungrok.errors import UngrokError, first_error, first_error_line
from ungrok.fate.config import ClassifierConfig
from ungrok.hashing import sha256_file, sha256_json
from ungrok.jsonfile import read_json
from ungrok.prereg import predictions as preds
from ungrok.prereg.clock import Clock, parse_stamp, stamp, utc_now
from ungrok.prereg.ledger import (
    REGISTRY_NAME,
    Ledger,
    locked,
    read_ledger,
    reads_not_after,
    record_registration,
    registrations_for,
)
from ungrok.prereg.pilot import PilotBlock, PilotRecordRef, check_record_seeds, load_pilot_record, pilot_reads
from ungrok.probes.battery import battery_families
from ungrok.yamlfile import load_yaml

FORMAT = "ungrok-prereg/1"


# --------------------------------------------------------------------------- hashing
def base_content(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What the registry's own sha256 covers: everything but the hash and the amendments."""
    return {k: v for k, v in raw.items() if k not in ("sha256", "amendments")}


def amendment_content(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k != "sha256"}


# --------------------------------------------------------------------------- models
class FileHash(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    sha256: str


class SeedSets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    governed: list[int]
    quarantined: list[int] = []

    @property
    def confirmatory(self) -> set[int]:
        """Every seed a prediction may read: governed and quarantined (never the pilot's)."""
        return set(self.governed) | set(self.quarantined)

    def read_by(self, pred: Any) -> list[int]:
        """The seeds a (possibly composite) prediction reads, governed first."""
        sets = preds.seed_sets(pred)
        return (self.governed if "governed" in sets else []) + (
            self.quarantined if "quarantined" in sets else []
        )


class Amendment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    created_utc: str
    kind: Literal["amend", "unlock"]
    reason: str
    predictions: list[dict[str, Any]] = []
    changes: str | None = None
    unlocked_seeds: list[int] = []
    prev_sha256: str
    ledger_head: str  # the run ledger's head hash just before this amendment was recorded
    sha256: str


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["ungrok-prereg/1"]
    created_utc: str
    experiment: FileHash
    batteries: dict[str, FileHash]
    classifier: dict[str, Any]
    classifier_sha256: str
    cells: list[str]
    seeds: SeedSets
    families: list[str]
    measures: list[str]
    cell_numbers: list[str] | None
    predictions: list[dict[str, Any]]
    pilot: PilotBlock | None = None
    ledger_head: str  # the run ledger's head hash just before the freeze
    sha256: str
    amendments: list[Amendment] = []
    _path: Path | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def head_sha256(self) -> str:
        """The hash at the end of the chain: changes with every amendment."""
        return self.amendments[-1].sha256 if self.amendments else self.sha256

    def classifier_config(self) -> ClassifierConfig:
        return ClassifierConfig(**self.classifier)

    def vocabulary(self) -> preds.Vocabulary:
        return preds.Vocabulary.of(self.families, self.cells, self.measures, self.cell_numbers)

    def registered(self) -> list[tuple[Any, str, str]]:
        """Every prediction with its registration time and where it was registered."""
        out = [(p, self.created_utc, "freeze") for p in preds.load(self.predictions)]
        for a in self.amendments:
            out.extend((p, a.created_utc, f"amendment {a.index}") for p in preds.load(a.predictions))
        return out

    def names(self) -> list[str]:
        return [p.name for p, _, _ in self.registered()]

    def locked_seeds(self) -> set[int]:
        """Quarantined seeds not yet unlocked."""
        unlocked = {s for a in self.amendments if a.kind == "unlock" for s in a.unlocked_seeds}
        return set(self.seeds.quarantined) - unlocked


# --------------------------------------------------------------------------- experiment view
class ExperimentPrereg(BaseModel):
    """The parts of an experiment file the pre-registration reads.

    Other top-level keys belong to the experiment schema (which validates them) and are
    ignored here. `cells` is a mapping name -> spec, a list of names, or a list of
    mappings with a `name`; `seeds` is a list (with `quarantined_seeds` beside it) or
    {governed: [...], quarantined: [...]}; `batteries` maps a name to a JSONL path
    (or is a list of paths), relative to the experiment file. `pilot_seeds` (exploratory,
    never scored) and `pilot_record` (a pilot done elsewhere) become the pilot block.
    """

    model_config = ConfigDict(extra="ignore")

    cells: list[str]
    seeds: SeedSets
    batteries: dict[str, str] = {}
    classifier: dict[str, Any] = {}
    measures: list[str] = []
    cell_numbers: list[str] | None = None
    rules_dir: str | None = None
    predictions: list[Any] = []
    pilot_seeds: list[int] = []
    pilot_record: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError("the experiment file must be a mapping")
        data = dict(data)
        cells = data.get("cells")
        if isinstance(cells, dict):
            data["cells"] = list(cells)
        elif isinstance(cells, list):
            data["cells"] = [c.get("name") if isinstance(c, dict) else c for c in cells]
        seeds, q = data.get("seeds"), data.pop("quarantined_seeds", None)
        if isinstance(seeds, list):
            data["seeds"] = {"governed": seeds, "quarantined": q or []}
        elif q is not None:
            raise ValueError(
                "give quarantined seeds either in seeds: {quarantined: ...} or as quarantined_seeds"
            )
        bats = data.get("batteries")
        if isinstance(bats, list):
            data["batteries"] = {str(b): str(b) for b in bats}
        return data

    @field_validator("cells")
    @classmethod
    def _cell_names(cls, cells: list[str]) -> list[str]:
        if not cells:
            raise ValueError("the experiment names no cells")
        for c in cells:
            if not isinstance(c, str) or not c or "/" in c or c != c.strip():
                raise ValueError(f"cell name {c!r} must be a non-empty name without '/' or edge spaces")
        if len(set(cells)) != len(cells):
            raise ValueError("cell names must be unique")
        return cells

    @field_validator("seeds")
    @classmethod
    def _disjoint(cls, s: SeedSets) -> SeedSets:
        if not s.governed:
            raise ValueError("the experiment governs no seeds")
        both = sorted(set(s.governed) & set(s.quarantined))
        if both:
            raise ValueError(f"seed(s) {both} are both governed and quarantined")
        if len(set(s.governed)) != len(s.governed) or len(set(s.quarantined)) != len(s.quarantined):
            raise ValueError("a seed is listed twice")
        return s

    @model_validator(mode="after")
    def _pilot_apart(self) -> ExperimentPrereg:
        if len(set(self.pilot_seeds)) != len(self.pilot_seeds):
            raise ValueError("pilot_seeds: a seed is listed twice")
        both = sorted(set(self.pilot_seeds) & self.seeds.confirmatory)
        if both:
            raise ValueError(f"seed(s) {both} are both pilot and governed or quarantined")
        return self


def read_experiment(path: str | Path) -> ExperimentPrereg:
    data = load_yaml(path, "experiment file")
    if isinstance(data, dict) and data.get("sweeps") is not None:
        from ungrok.experiment.sweep import with_sweep_cells  # the cells a sweep generates are cells too

        data = with_sweep_cells(data, str(path))
    try:
        return ExperimentPrereg.model_validate(data)
    except ValidationError as e:
        raise UngrokError(first_error_line(e, str(path))) from None


def _rel(path: Path, base: Path) -> str:
    """Relative to the registry's folder when close by (the tree can move as a whole),
    else absolute (a shared reference folder elsewhere)."""
    rel = Path(os.path.relpath(path.resolve(), base.resolve()))
    return rel.as_posix() if rel.parts[:3].count("..") <= 2 else path.resolve().as_posix()


# --------------------------------------------------------------------------- freeze
def registry_file(out: str | Path) -> Path:
    """`--out` may name the registry file or the run folder (then RUN/registry.json)."""
    p = Path(out)
    return p / REGISTRY_NAME if p.is_dir() or not p.suffix else p


def _write_new(dest: Path, text: str) -> None:
    """Write a file that must not exist yet, atomically and without a window to clobber one."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, dest)
        except FileExistsError:
            raise UngrokError(
                f"{dest}: a registry already exists; a frozen registry is never overwritten (amend it instead)"
            ) from None
    finally:
        os.unlink(tmp)


def registry_text(obj: Mapping[str, Any]) -> str:
    """A registry as written to disk (sorted keys, indented), so a rewrite after an amendment is stable."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def freeze(
    experiment: str | Path,
    out: str | Path,
    *,
    rules_dir: str | Path | None = None,
    clock: Clock = utc_now,
) -> Registry:
    """Freeze an experiment's predictions into a new registry; refuse if one exists there
    or if the run folder's ledger shows a governed artifact was already read."""
    exp_path = Path(experiment)
    dest = registry_file(out)
    if dest.exists():
        raise UngrokError(
            f"{dest}: a registry already exists; a frozen registry is never overwritten (amend it instead)"
        )
    exp = read_experiment(exp_path)
    exp_sha = sha256_file(exp_path)
    try:
        cfg = ClassifierConfig(**exp.classifier)
    except ValidationError as e:
        loc, msg = first_error(e, raw=True)
        raise UngrokError(f"{exp_path}: classifier.{loc}: {msg}") from None

    from ungrok.rules.registry import load_rules

    rdir = (
        rules_dir if rules_dir is not None else (exp_path.parent / exp.rules_dir if exp.rules_dir else None)
    )
    families = set(load_rules(rdir))
    batteries: dict[str, FileHash] = {}
    for name, rel in sorted(exp.batteries.items()):
        bp = exp_path.parent / rel  # an absolute path stays as it is
        if not bp.is_file():
            raise UngrokError(f"{exp_path}: battery {name}: {bp} not found")
        families |= set(battery_families(bp))
        batteries[name] = FileHash(path=_rel(bp, dest.parent), sha256=sha256_file(bp))

    vocab = preds.Vocabulary.of(families, exp.cells, exp.measures, exp.cell_numbers)
    compiled = preds.compile_predictions(exp.predictions, vocab)
    now = stamp(clock)
    record = _pilot_record_ref(exp, exp_path, dest, now)
    with locked(dest.parent):
        led = read_ledger(dest.parent)
        if registrations_for(led, dest.name):
            raise UngrokError(
                f"{dest.parent}: the run ledger already records a registry named {dest.name}; "
                "a run folder's registry is frozen once"
            )
        refuse_post_hoc(led, compiled, exp.seeds, now)
        _refuse_after_training(dest.parent, led, exp)
        raw: dict[str, Any] = {
            "format": FORMAT,
            "created_utc": now,
            "experiment": {"path": _rel(exp_path, dest.parent), "sha256": exp_sha},
            "batteries": {k: v.model_dump() for k, v in batteries.items()},
            "classifier": cfg.model_dump(mode="json"),
            "classifier_sha256": cfg.sha256(),
            "cells": list(exp.cells),
            "seeds": exp.seeds.model_dump(),
            "families": sorted(families),
            "measures": sorted(exp.measures),
            "cell_numbers": None if exp.cell_numbers is None else sorted(exp.cell_numbers),
            "predictions": preds.dump(compiled),
        }
        if exp.pilot_seeds or record is not None:
            block = PilotBlock(seeds=list(exp.pilot_seeds), reads=pilot_reads(led, exp.pilot_seeds, now),
                               record=record)
            raw["pilot"] = block.model_dump(mode="json")
        raw["ledger_head"] = led.head
        raw["sha256"] = sha256_json(base_content(raw))
        raw["amendments"] = []
        _write_new(dest, registry_text(raw))
        record_registration(dest.parent, dest.name, "freeze", raw["sha256"], now, lock=False)
    return load_registry(dest)


def freeze_warnings(reg: Registry) -> list[str]:
    """Registered predictions (or parts) that can only ever be UNSCOREABLE with this registry's
    seeds, one line each; `prereg freeze` and the run's freeze step print them. A warning, not
    an error: the registration stands as written (docs/method.md §7)."""
    counts = {"governed": len(reg.seeds.governed), "quarantined": len(reg.seeds.quarantined)}
    return [w for p, _, _ in reg.registered() for w in preds.unscoreable_by_design(p, counts)]


def _pilot_record_ref(exp: ExperimentPrereg, exp_path: Path, dest: Path, now: str) -> PilotRecordRef | None:
    """The experiment's pilot record (None without one), hashed for the freeze; refused if it
    overlaps the confirmatory seeds or claims to have been made after the freeze."""
    if exp.pilot_record is None:
        return None
    path = exp_path.parent / Path(exp.pilot_record).expanduser()  # an absolute path stays as it is
    where = f"{exp_path}: pilot_record"
    if not path.is_file():
        raise UngrokError(f"{where}: {path} not found")
    rec = load_pilot_record(path)
    check_record_seeds(rec, exp.seeds.confirmatory, where)
    if rec.created_utc is not None and parse_stamp(rec.created_utc) > parse_stamp(now):
        raise UngrokError(f"{where}: the pilot record is dated {rec.created_utc}, after this freeze at {now}")
    return PilotRecordRef(path=_rel(path, dest.parent), sha256=sha256_file(path), entries=len(rec.entries),
                          seeds=rec.seeds, created_utc=rec.created_utc)


def _refuse_after_training(run: Path, led: Ledger, exp: ExperimentPrereg) -> None:
    """A registry frozen after training output exists proves nothing: refuse the freeze when
    the ledger or the run folder shows a non-pilot run was started, trained or read."""
    pilot = set(exp.pilot_seeds)
    for key, at in [*led.started.items(), *led.reads.items()]:
        if int(key.split("/")[1]) not in pilot:
            raise UngrokError(
                f"{run}: the run ledger records training output of {key} (at {at}); a registry must be frozen "
                "before any training, so this run folder cannot be pre-registered any more"
            )
    for folder in sorted((run / "cells").glob("*/seed*")):
        seed = folder.name.removeprefix("seed")
        if seed.lstrip("-").isdigit() and int(seed) in pilot:
            continue
        first = next((f for f in sorted(folder.rglob("*")) if f.is_file()), None)
        if first is not None:
            raise UngrokError(
                f"{run}: training output {first.relative_to(run).as_posix()} already exists; a registry must be "
                "frozen before any training, so this run folder cannot be pre-registered any more"
            )


def first_governed_read(led: Ledger, pred: Any, seeds: SeedSets, moment: str) -> tuple[str, str] | None:
    """The earliest read, at or before `moment`, of data the prediction governs: (artifact key,
    first read), or None. A prediction registered at `moment` must precede every such read."""
    hits = reads_not_after(led, preds.governed_cells(pred), seeds.read_by(pred), moment)
    return hits[0] if hits else None


def refuse_post_hoc(led: Ledger, compiled: list[Any], seeds: SeedSets, moment: str) -> None:
    """Refuse predictions (at a freeze or an amendment) on seeds whose results were already read."""
    for p in compiled:
        hit = first_governed_read(led, p, seeds, moment)
        if hit is not None:
            key, first = hit
            raise UngrokError(
                f"prediction {p.name} governs {key}, which was first read at {first}, before this "
                f"registration at {moment}; predictions must be registered before their data are read"
            )


# --------------------------------------------------------------------------- load and verify
def read_raw_registry(path: Path) -> dict[str, Any]:
    """The registry's JSON as stored (hashes not yet checked); anything else is one line."""
    raw = read_json(path, "registry", frozen=True)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise UngrokError(f"{path}: not an ungrok registry ({FORMAT})")
    return raw


def _check_chain(path: Path, raw: dict[str, Any]) -> None:
    """Recompute the registry hash and every amendment hash; name the first that differs."""
    now = sha256_json(base_content(raw))
    if raw.get("sha256") != now:
        raise UngrokError(
            f"{path}: the frozen registry changed after it was frozen "
            f"(recorded sha256 {str(raw.get('sha256'))[:12]}…, content now hashes to {now[:12]}…)"
        )
    prev = now
    amendments = raw.get("amendments")
    if not isinstance(amendments, list):
        raise UngrokError(f"{path}: the amendments list is missing or malformed; the registry was modified")
    for i, a in enumerate(amendments, 1):
        if not isinstance(a, dict):
            raise UngrokError(f"{path}: amendment {i} is malformed; the registry was modified")
        label = f"amendment {i} (dated {a.get('created_utc')})"
        if a.get("index") != i or a.get("prev_sha256") != prev:
            raise UngrokError(
                f"{path}: {label} does not follow the entry before it (hash chain broken: an amendment "
                "was removed, reordered or edited)"
            )
        h = sha256_json(amendment_content(a))
        if a.get("sha256") != h:
            raise UngrokError(f"{path}: {label} changed after it was recorded")
        prev = h


def load_registry(path: str | Path, *, check_files: bool = False) -> Registry:
    """Load a registry, refusing one whose hashes no longer match (and, with check_files,
    whose experiment file or batteries changed)."""
    p = Path(path)
    raw = read_raw_registry(p)
    _check_chain(p, raw)
    try:
        reg = Registry.model_validate(raw)
    except ValidationError as e:
        loc, msg = first_error(e, raw=True)
        raise UngrokError(f"{p}: malformed registry at {loc}: {msg}") from None
    reg._path = p
    cfg = reg.classifier_config()
    if cfg.sha256() != reg.classifier_sha256:
        raise UngrokError(
            f"{p}: the classifier constants no longer hash to the frozen classifier_sha256 "
            "(this version of ungrok reads them differently)"
        )
    reg.registered()  # every stored prediction must load
    if check_files:
        _check_file(p, reg.experiment, "experiment file")
        for name, fh in reg.batteries.items():
            _check_file(p, fh, f"battery {name}")
        rec = reg.pilot.record if reg.pilot is not None else None
        if rec is not None:
            _check_file(p, FileHash(path=rec.path, sha256=rec.sha256), "pilot record")
    return reg


def _check_file(reg_path: Path, fh: FileHash, what: str) -> None:
    f = reg_path.parent / fh.path
    if not f.is_file():
        raise UngrokError(f"{reg_path}: {what} {fh.path} (frozen with the registry) is missing")
    now = sha256_file(f)
    if now != fh.sha256:
        raise UngrokError(
            f"{reg_path}: {what} {fh.path} changed since the freeze (sha256 {fh.sha256[:12]}… -> {now[:12]}…)"
        )

