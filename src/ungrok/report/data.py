"""What a report is made of, and how it is read from a run directory.

The run directory (written by `ungrok run`):

    RUN_DIR/experiment.json                          name, cells (kind, rate, dose, parent, rule), seeds;
                                                     sweeps and focal when it has sweeps (report/phase.py)
    RUN_DIR/cells/<CELL>/support.json                `ungrok support --json` output       (optional)
    RUN_DIR/cells/<CELL>/seed<S>/traj.parquet        battery accuracy per step
    RUN_DIR/cells/<CELL>/seed<S>/traj.margins.parquet  CM / PM per step and rule           (optional)
    RUN_DIR/cells/<CELL>/seed<S>/monitor.jsonl       live-monitor lines: "warnings", per-rule "rules" states
                                                     (report/monitor.py)                  (optional)
    RUN_DIR/fates.json                               classifier hash + summary records with cell, seed
    RUN_DIR/scoreboard.json                          pre-registration scoreboard          (optional)
    RUN_DIR/pilot_fates.json, registry pilot record  pilot verdicts, shown apart (report/pilot.py) (optional)
    RUN_DIR/hub/                                     a hub suite folder (report/hub.py)   (optional)
    RUN_DIR/cells/<CELL>/seed<S>/traj.mech.parquet   mechanism store (report/mech.py)    (optional)
    RUN_DIR/cells/<CELL>/seed<S>/traj.ngram.parquet  n-gram baseline (report/mech.py)    (optional)

Only experiment.json is required. Any other part that is missing or unreadable becomes a
note, and the sections that need it say so instead of failing: a report is most wanted
exactly when a run went partly wrong. Only the seeds experiment.json lists are opened,
never a directory listing, so a quarantined seed's folder beside them stays unread.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ungrok.errors import UngrokError, first_error_line
from ungrok.fate.classify import FATES
from ungrok.fate.config import DEFAULT_CONFIG, ClassifierConfig

if TYPE_CHECKING:
    from ungrok.report.hub import HubData
    from ungrok.report.mech import MechData
    from ungrok.report.monitor import WatchData
    from ungrok.report.phase import PhaseData
    from ungrok.report.pilot import PilotData

M = TypeVar("M", bound=BaseModel)
RunKey = tuple[str, int, str]  # (cell, seed, family or rule)
TRAJ_COLUMNS = ("run", "step", "family", "condition", "split", "accuracy")  # what heldout_curves reads
MARGIN_COLUMNS = ("run", "step", "rule", "cm", "pm")  # what margin_curves reads

RECORD_REQUIRED = ("cell", "seed", "family", "fate", "agree_gate", "conflict_final", "conflict_max")


@dataclass(frozen=True)
class CellInfo:
    """One cell of the grid. Kill cells carry a rate, rescue cells a dose; both name a parent."""

    name: str
    kind: str
    rate: float | None = None
    dose: float | None = None
    parent: str | None = None
    rule: str | None = None  # the rule an edit targets, when the experiment says


@dataclass(frozen=True)
class Curve:
    """One raw (unsmoothed) series, sorted by step."""

    steps: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class MarginCurve:
    """One rule's raw CM (and PM, which may be missing) per step, sorted by step."""

    steps: tuple[int, ...]
    cm: tuple[float, ...]
    pm: tuple[float | None, ...]


@dataclass
class ReportData:
    """Everything a report shows. `records is None` means fates.json was not available."""

    name: str
    cells: dict[str, CellInfo]
    seeds: list[int]
    records: list[dict[str, Any]] | None = None
    classifier_sha256: str | None = None
    classifier: ClassifierConfig = DEFAULT_CONFIG
    conflict: dict[RunKey, Curve] = field(default_factory=dict)  # held-out conflict accuracy
    agree: dict[RunKey, Curve] = field(default_factory=dict)  # held-out agree accuracy
    margins: dict[RunKey, MarginCurve] = field(default_factory=dict)
    support: dict[str, dict[str, Any]] = field(default_factory=dict)
    monitor: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    # per-rule monitor states of the same lines, parsed once here (report/monitor.py reads them)
    monitor_states: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    scoreboard: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    source: str | None = None  # the run directory, shown in the header
    # experiment.json's keys besides name, cells and seeds, as written (focal.py and phase.py read them)
    experiment: dict[str, Any] = field(default_factory=dict)
    focal: str | None = None  # the focal rule the run folder names (report/focal.py picks the one shown)
    # Optional parts with their own sections; None (no section at all) when the run has none.
    hub: HubData | None = None  # RUN_DIR/hub/
    mech: MechData | None = None  # traj.mech.parquet / traj.ngram.parquet of the seed folders
    phase: PhaseData | None = None  # the sweeps experiment.json records (report/phase.py)
    pilot: PilotData | None = None  # pilot verdicts, never scored (report/pilot.py)
    watch: WatchData | None = None  # per-rule monitor states, for the warnings' lead (report/monitor.py)


class _CellIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    kind: str
    rate: float | None = None
    dose: float | None = None
    parent: str | None = None
    rule: str | None = None


class _ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    cells: dict[str, _CellIn]
    seeds: list[int]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_model(path: Path, model: type[M]) -> M:
    """A JSON file validated as `model`; bad JSON or a bad field is a user error naming the file."""
    try:
        return model.model_validate(read_json(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UngrokError(f"{path}: not valid JSON ({e})") from None
    except ValidationError as e:
        raise UngrokError(first_error_line(e, str(path), raw=True)) from None


def read_experiment(run_dir: Path) -> ReportData:
    """The report begun from experiment.json: name, cells (in file order), seeds and the file's
    other keys; a missing or malformed file is a user error."""
    path = run_dir / "experiment.json"
    if not run_dir.is_dir():
        raise UngrokError(f"{run_dir}: run directory not found")
    if not path.is_file():
        raise UngrokError(f"{path}: not found; is {run_dir} a run directory written by `ungrok run`?")
    exp = read_model(path, _ExperimentIn)
    if not exp.cells:
        raise UngrokError(f"{path}: lists no cells")
    cells = {
        name: CellInfo(name=name, kind=c.kind, rate=c.rate, dose=c.dose, parent=c.parent, rule=c.rule)
        for name, c in exp.cells.items()
    }
    return ReportData(name=exp.name, cells=cells, seeds=list(dict.fromkeys(exp.seeds)), source=str(run_dir),
                      experiment=dict(exp.model_extra or {}))


def check_record(r: Any, required: tuple[str, ...] = RECORD_REQUIRED) -> str | None:
    """Why a verdict record cannot be shown (None when it can); `required` names its fields."""
    if not isinstance(r, dict):
        return "not an object"
    missing = [k for k in required if k not in r]
    if missing:
        return f"lacks {', '.join(missing)}"
    if r["fate"] not in FATES:
        return f"unknown fate {r['fate']!r}"
    if r["agree_gate"] not in ("pass", "fail"):
        return f"agree_gate {r['agree_gate']!r} is neither 'pass' nor 'fail'"
    if "seed" in required and (isinstance(r["seed"], bool) or not isinstance(r["seed"], int)):
        return f"seed {r['seed']!r} is not an integer"
    return None


def read_fates(path: Path, notes: list[str], missing: str) -> tuple[dict[str, Any], ClassifierConfig, str | None] | None:
    """A fates file (fates.json, hub_fates.json): its document, classifier constants and their hash.

    Whatever is missing or unreadable becomes a note (`missing` when the file is absent)
    and None; constants that do not match the recorded hash are noted, not fatal."""
    name = path.name
    if not path.is_file():
        notes.append(missing)
        return None
    try:
        doc = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        notes.append(f"{name} is not valid JSON ({e}); verdicts are omitted")
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        notes.append(f"{name} has no 'records' list; verdicts are omitted")
        return None
    sha = doc.get("classifier_sha256") if isinstance(doc.get("classifier_sha256"), str) else None
    cfg = DEFAULT_CONFIG
    if isinstance(doc.get("classifier"), dict):
        try:
            cfg = ClassifierConfig(**doc["classifier"])
        except (ValidationError, TypeError) as e:
            notes.append(f"{name}: classifier constants unreadable ({e.__class__.__name__}); "
                         "figures use the default constants")
    if sha and cfg.sha256() != sha:
        notes.append(f"{name} was classified with constants sha256 {sha[:12]}…, which differ "
                     f"from the constants the figures smooth with ({cfg.sha256()[:12]}…)")
    return doc, cfg, sha


def _load_fates(data: ReportData, run_dir: Path) -> None:
    got = read_fates(run_dir / "fates.json", data.notes, "fates.json is missing: no verdicts, so the phase "
                     "grid, the onset markers and the dose-response plots are omitted")
    if got is None:
        return
    doc, data.classifier, data.classifier_sha256 = got
    records, dropped = [], 0
    for i, r in enumerate(doc["records"]):
        why = check_record(r)
        if why is None and r["cell"] not in data.cells:
            why = f"cell {r['cell']!r} is not in experiment.json"
        if why is None and r["seed"] not in data.seeds:
            why = f"seed {r['seed']} is not among experiment.json's seeds"
        if why is not None:
            dropped += 1
            if dropped <= 3:
                data.notes.append(f"fates.json record {i} skipped: {why}")
            continue
        records.append(dict(r))
    if dropped > 3:
        data.notes.append(f"fates.json: {dropped} records skipped in all")
    seen: set[RunKey] = set()
    for r in records:
        key = (r["cell"], r["seed"], r["family"])
        if key in seen:
            raise UngrokError(f"{run_dir / 'fates.json'}: cell {key[0]} seed {key[1]} family {key[2]} has two records")
        seen.add(key)
    data.records = records


def read_parquet(path: Path, columns: tuple[str, ...], notes: list[str], where: str,
                 omitted: str) -> list[dict[str, Any]] | None:
    """The rows of `columns`; None, with the note "<where>: <why>; <omitted>", when the file is
    unreadable or lacks one of them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        notes.append(f"{where}: not a readable parquet file ({e}); {omitted}")
        return None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        notes.append(f"{where}: lacks column(s) {', '.join(missing)}; {omitted}")
        return None
    return table.select(list(columns)).to_pylist()


def one_run(rows: list[dict[str, Any]], where: str, notes: list[str]) -> list[dict[str, Any]]:
    runs = sorted({str(r["run"]) for r in rows})
    if len(runs) > 1:
        notes.append(f"{where} holds {len(runs)} runs; only run {runs[0]!r} is shown")
        return [r for r in rows if str(r["run"]) == runs[0]]
    return rows


def finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def heldout_curves(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], Curve]:
    """(run, family, condition) -> held-out conflict / agree accuracy per step; other rows and
    non-finite values are left out (a later row for the same step wins)."""
    series: dict[tuple[str, str, str], dict[int, float]] = {}
    for r in rows:
        if r["split"] != "heldout" or r["condition"] not in ("conflict", "agree"):
            continue
        if not finite(r["accuracy"]) or r["step"] is None:
            continue
        series.setdefault((str(r["run"]), r["family"], r["condition"]), {})[int(r["step"])] = float(r["accuracy"])
    return {key: Curve(tuple(sorted(by_step)), tuple(v for _, v in sorted(by_step.items())))
            for key, by_step in series.items()}


def margin_curves(rows: list[dict[str, Any]]) -> dict[tuple[str, str], MarginCurve]:
    """(run, rule) -> raw CM and PM per step (rows with a non-finite CM are left out)."""
    series: dict[tuple[str, str], dict[int, tuple[float, float | None]]] = {}
    for r in rows:
        if not finite(r["cm"]) or r["step"] is None:
            continue
        pm = float(r["pm"]) if finite(r["pm"]) else None
        series.setdefault((str(r["run"]), r["rule"]), {})[int(r["step"])] = (float(r["cm"]), pm)
    out = {}
    for key, by_step in series.items():
        steps = sorted(by_step)
        out[key] = MarginCurve(tuple(steps), tuple(by_step[s][0] for s in steps), tuple(by_step[s][1] for s in steps))
    return out


def _load_traj(data: ReportData, path: Path, cell: str, seed: int, where: str) -> None:
    rows = read_parquet(path, TRAJ_COLUMNS, data.notes, where, "its trajectories are omitted")
    if rows is None:
        return
    for (_, family, cond), curve in heldout_curves(one_run(rows, where, data.notes)).items():
        (data.conflict if cond == "conflict" else data.agree)[(cell, seed, family)] = curve


def _load_margins(data: ReportData, path: Path, cell: str, seed: int, where: str) -> None:
    rows = read_parquet(path, MARGIN_COLUMNS, data.notes, where, "its margins are omitted")
    if rows is None:
        return
    for (_, rule), curve in margin_curves(one_run(rows, where, data.notes)).items():
        data.margins[(cell, seed, rule)] = curve


def state_row(rec: Any) -> dict[str, Any] | None:
    """A monitor line's step, per-rule states and early-warning flags, and the warning rule's
    sha256 (None on older lines), or None for a line without per-rule states."""
    if not isinstance(rec, dict) or not isinstance(rec.get("rules"), dict):
        return None
    states: dict[str, dict[str, Any]] = {}
    for r, e in rec["rules"].items():
        if isinstance(e, dict) and isinstance(e.get("state"), str):
            states[str(r)] = {"state": e["state"]}
            if isinstance(e.get("warning"), bool):
                states[str(r)]["warning"] = e["warning"]
    sha = rec.get("watch_sha256")
    return {"step": rec.get("step"), "rules": states, "watch_sha256": sha if isinstance(sha, str) else None}


def _load_monitor(data: ReportData, path: Path, cell: str, seed: int, where: str) -> None:
    lines, states = [], []
    for n, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except json.JSONDecodeError:
            data.notes.append(f"{where}:{n}: not a JSON line; skipped")
            continue
        if isinstance(rec, dict) and rec.get("warnings"):
            warnings = rec["warnings"] if isinstance(rec["warnings"], list) else [rec["warnings"]]
            lines.append({"step": rec.get("step"), "warnings": [str(w) for w in warnings]})
        row = state_row(rec)
        if row is not None:
            states.append(row)
    data.monitor[(cell, seed)] = lines
    data.monitor_states[(cell, seed)] = states


def _load_support(data: ReportData, path: Path, cell: str) -> None:
    try:
        doc = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        data.notes.append(f"cells/{cell}/support.json is not valid JSON ({e}); its support table is omitted")
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), dict):
        data.notes.append(f"cells/{cell}/support.json has no 'rules' table; its support table is omitted")
        return
    data.support[cell] = doc


def _load_scoreboard(data: ReportData, run_dir: Path) -> None:
    path = run_dir / "scoreboard.json"
    if not path.is_file():
        return
    try:
        doc = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        data.notes.append(f"scoreboard.json is not valid JSON ({e}); the scoreboard is omitted")
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("outcomes"), list):
        data.notes.append("scoreboard.json has no 'outcomes' list; the scoreboard is omitted")
        return
    bad = [i for i, o in enumerate(doc["outcomes"]) if not isinstance(o, dict) or "name" not in o
           or o.get("status") not in ("PASS", "FAIL", "UNSCOREABLE")]
    if bad:
        data.notes.append(f"scoreboard.json outcome {bad[0]} lacks a name or a PASS/FAIL/UNSCOREABLE "
                          "status; the scoreboard is omitted")
        return
    data.scoreboard = doc


def read_run(run_dir: str | Path) -> ReportData:
    """The core of a run directory (experiment, verdicts, trajectories, margins, monitor lines,
    support, scoreboard); load.load_run adds the optional parts, whose modules build on this one.
    Missing parts become notes."""
    run_dir = Path(run_dir)
    data = read_experiment(run_dir)
    _load_fates(data, run_dir)
    no_traj: list[str] = []
    for cell, info in data.cells.items():
        if info.parent is not None and info.parent not in data.cells:
            data.notes.append(f"cell {cell!r} names parent {info.parent!r}, which is not a cell")
        if info.kind in ("kill", "rescue"):
            what = "rate" if info.kind == "kill" else "dose"
            if info.parent is None or getattr(info, what) is None:
                data.notes.append(f"{info.kind} cell {cell!r} lacks a parent or a {what}; it is on no ladder")
        cdir = run_dir / "cells" / cell
        if (cdir / "support.json").is_file():
            _load_support(data, cdir / "support.json", cell)
        for seed in data.seeds:
            sdir = cdir / f"seed{seed}"
            where = f"cells/{cell}/seed{seed}"
            traj = sdir / "traj.parquet"
            if traj.is_file():
                _load_traj(data, traj, cell, seed, f"{where}/traj.parquet")
            else:
                no_traj.append(where)
            if (sdir / "traj.margins.parquet").is_file():
                _load_margins(data, sdir / "traj.margins.parquet", cell, seed, f"{where}/traj.margins.parquet")
            if (sdir / "monitor.jsonl").is_file():
                _load_monitor(data, sdir / "monitor.jsonl", cell, seed, f"{where}/monitor.jsonl")
    if no_traj:
        data.notes.append(f"traj.parquet is missing for {len(no_traj)} run(s): {', '.join(no_traj)}")
    _load_scoreboard(data, run_dir)
    return data

