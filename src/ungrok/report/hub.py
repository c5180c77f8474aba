"""The public-checkpoint (hub) suite read for the report (docs/method.md §10, the paper's
Figure 3): held-out accuracy per model on a log-step axis, a verdict per model and family, and
the depth-by-scale statistic. The section that shows it is sections/hub.py.

A hub suite folder (written by `ungrok hub score`, classified by `ungrok hub classify`):

    HUB/suite.json              battery, models (n_params, size_rank, revisions, notes), skipped
    HUB/traj.parquet            run = the model id, step = the revision's step
    HUB/traj.margins.parquet    CM / PM per model and rule                          (optional)
    HUB/hub_fates.json          summarize() records per (model, family) and "scale"  (optional)

It is reported on its own (`ungrok report HUB`: a hub-only report) or as RUN_DIR/hub/ of an
experiment (one more section of that report). Only suite.json is required; any other part
that is missing or unreadable becomes a note, as in the rest of the report. The report
never classifies the suite itself: verdicts and the scale statistic are what
`ungrok hub classify` wrote, so the report and the suite's records cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ungrok.errors import UngrokError, first_error
from ungrok.fate._series import ge
from ungrok.fate.config import DEFAULT_CONFIG, ClassifierConfig
from ungrok.report.data import (
    MARGIN_COLUMNS,
    TRAJ_COLUMNS,
    Curve,
    MarginCurve,
    check_record,
    heldout_curves,
    margin_curves,
    read_fates,
    read_model,
    read_parquet,
)
from ungrok.report.facts import fmt

HubKey = tuple[str, str]  # (model, family or rule)
HUB_RECORD_REQUIRED = ("family", "fate", "agree_gate", "conflict_final", "conflict_max")


class HubRevision(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    revision: str
    step: int | None = None
    status: str  # "scored" | "skipped" | "failed"; anything else is listed with the skipped ones
    why: str | None = None
    seconds: float | None = None
    peak_rss_mib: float | None = None


class HubModel(BaseModel):
    """One model of the suite as suite.json lists it (size_rank 1 = smallest)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    n_params: int | None = None  # None: the size could not be read (the model sorts last)
    size_rank: int | None = None
    revisions: list[HubRevision] = []
    notes: list[str] = []

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.revisions)


class _SkipIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    revision: str | None = None
    why: str


class _SuiteIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    battery: str | None = None
    battery_sha256: str | None = None
    models: dict[str, HubModel]
    skipped: list[_SkipIn] = []


class _ScaleModelIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    n_params: int | None = None
    size_rank: int | None = None
    final_accuracy: float | None = None


class HubScale(BaseModel):
    """Depth by scale: Spearman rho of final held-out conflict accuracy against model size."""

    model_config = ConfigDict(extra="allow", frozen=True)

    family: str
    condition: str = "conflict"
    split: str = "heldout"
    models: list[_ScaleModelIn] = []
    rho: float | None = None
    ci: tuple[float, float] | None = None
    n_boot: int | None = None
    seed: int | None = None
    note: str | None = None


@dataclass
class HubData:
    """A hub suite folder as the report shows it. `error` is set (and nothing else is) when
    suite.json itself could not be read; that only happens for RUN_DIR/hub/."""

    folder: str
    models: dict[str, HubModel] = field(default_factory=dict)  # smallest first
    battery: str | None = None
    battery_sha256: str | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)
    classifier: ClassifierConfig = DEFAULT_CONFIG
    classifier_sha256: str | None = None
    conflict: dict[HubKey, Curve] = field(default_factory=dict)  # raw held-out accuracy per revision step
    agree: dict[HubKey, Curve] = field(default_factory=dict)
    margins: dict[HubKey, MarginCurve] = field(default_factory=dict)
    records: list[dict[str, Any]] | None = None  # None: hub_fates.json not available
    unclassified: list[dict[str, str]] = field(default_factory=list)  # {"model", "why"}: no records
    scale: HubScale | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def name(self) -> str:
        return Path(self.folder).name or self.folder


# --------------------------------------------------------------------------- loading
def is_hub_folder(folder: Path) -> bool:
    """A bare hub suite folder: suite.json and no experiment.json."""
    return (folder / "suite.json").is_file() and not (folder / "experiment.json").exists()


def _read_suite(path: Path) -> _SuiteIn:
    if not path.is_file():
        raise UngrokError(f"{path}: not found; is {path.parent} a hub suite folder written by `ungrok hub score`?")
    return read_model(path, _SuiteIn)


def _known_rows(hub: HubData, rows: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    unknown = sorted({str(r["run"]) for r in rows} - set(hub.models))
    if unknown:
        hub.notes.append(f"{what}: model(s) not in suite.json left out: {', '.join(unknown)}")
    return [r for r in rows if str(r["run"]) in hub.models]


def _load_traj(hub: HubData, folder: Path) -> None:
    path = folder / "traj.parquet"
    if not path.is_file():
        hub.notes.append("traj.parquet is missing: no trajectories")
        return
    rows = read_parquet(path, TRAJ_COLUMNS, hub.notes, "traj.parquet", "no trajectories")
    if rows is None:
        return
    for (model, family, cond), curve in heldout_curves(_known_rows(hub, rows, "traj.parquet")).items():
        (hub.conflict if cond == "conflict" else hub.agree)[(model, family)] = curve


def _load_margins(hub: HubData, folder: Path) -> None:
    path = folder / "traj.margins.parquet"
    if not path.is_file():
        return
    rows = read_parquet(path, MARGIN_COLUMNS, hub.notes, "traj.margins.parquet", "no CM panels")
    if rows is None:
        return
    hub.margins = dict(margin_curves(_known_rows(hub, rows, "traj.margins.parquet")))


def record_model(r: dict[str, Any]) -> str:
    """The model a hub record is about: its "model" field, else summarize()'s "run"."""
    return str(r.get("model", r.get("run")))


def _load_fates(hub: HubData, folder: Path) -> None:
    got = read_fates(folder / "hub_fates.json", hub.notes, "hub_fates.json is missing (run `ungrok hub "
                     "classify`): no verdicts and no depth-by-scale statistic")
    if got is None:
        return
    doc, hub.classifier, hub.classifier_sha256 = got
    if isinstance(doc.get("unclassified"), list):
        hub.unclassified = [{"model": str(u.get("model")), "why": str(u.get("why"))}
                            for u in doc["unclassified"] if isinstance(u, dict)]
    records, seen, dropped = [], set(), 0
    for i, r in enumerate(doc["records"]):
        why = check_record(r, HUB_RECORD_REQUIRED)
        if why is None and ("model" not in r and "run" not in r):
            why = "names no model (neither 'model' nor 'run')"
        if why is None and record_model(r) not in hub.models:
            why = f"model {record_model(r)!r} is not in suite.json"
        if why is None and (record_model(r), r["family"]) in seen:
            why = f"a second record for {record_model(r)} {r['family']}"
        if why is not None:
            dropped += 1
            if dropped <= 3:
                hub.notes.append(f"hub_fates.json record {i} skipped: {why}")
            continue
        seen.add((record_model(r), r["family"]))
        records.append(dict(r))
    if dropped > 3:
        hub.notes.append(f"hub_fates.json: {dropped} records skipped in all")
    hub.records = records
    if doc.get("scale") is not None:
        try:
            hub.scale = HubScale.model_validate(doc["scale"])
        except ValidationError as e:
            loc, msg = first_error(e, top="top level", raw=True)
            hub.notes.append(f"hub_fates.json: scale.{loc}: {msg}; no depth-by-scale statistic")


def load_hub(folder: str | Path, strict: bool = True) -> HubData:
    """Read a hub suite folder. strict: a missing or malformed suite.json is a user error
    (a bare hub folder); otherwise (RUN_DIR/hub/) it becomes `error` and the section says so."""
    folder = Path(folder)
    if strict and not folder.is_dir():
        raise UngrokError(f"{folder}: hub suite folder not found")
    try:
        suite = _read_suite(folder / "suite.json")
    except UngrokError as e:
        if strict:
            raise
        return HubData(folder=str(folder), error=str(e), notes=[f"suite.json unusable: {e}"])
    models = dict(sorted(suite.models.items(), key=lambda kv: (kv[1].n_params is None, kv[1].size_rank or 0,
                                                               kv[1].n_params or 0, kv[0])))
    hub = HubData(folder=str(folder), models=models, battery=suite.battery, battery_sha256=suite.battery_sha256,
                  skipped=[s.model_dump() for s in suite.skipped])
    if not models:
        hub.notes.append("suite.json lists no models")
    _load_traj(hub, folder)
    _load_margins(hub, folder)
    _load_fates(hub, folder)
    return hub


# --------------------------------------------------------------------------- facts
def hub_families(hub: HubData) -> list[str]:
    """Every family with a trajectory or a verdict: anchor first, then confirmatory, then exploratory."""
    names = {k[1] for k in hub.conflict} | {r["family"] for r in hub.records or []}
    cfg = hub.classifier
    return sorted(names, key=lambda f: (f != cfg.anchor_family, not cfg.is_confirmatory(f), f))


def hub_record_index(hub: HubData) -> dict[HubKey, dict[str, Any]]:
    return {(record_model(r), r["family"]): r for r in hub.records or []}


def fmt_params(n: int | None) -> str:
    """70_426_624 -> 70.4M, 1_011_781_632 -> 1.01B."""
    if n is None:
        return "size unknown"
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def short_name(model: str) -> str:
    """The model id without its organisation ("EleutherAI/pythia-70m" -> "pythia-70m")."""
    return model.rsplit("/", 1)[-1]


def first_step_at(curve: Curve, thr: float) -> int | None:
    """The first scored revision step with raw accuracy >= thr (None if never)."""
    return next((s for s, v in zip(curve.steps, curve.values, strict=True) if ge(v, thr)), None)


def scale_sentence(hub: HubData) -> str:
    """The depth-by-scale statistic in words, saying plainly when it is not defined."""
    sc = hub.scale
    if hub.records is None:
        return "No depth-by-scale statistic: hub_fates.json is missing (run `ungrok hub classify`)."
    if sc is None:
        return "No depth-by-scale statistic: hub_fates.json has no 'scale' entry."
    n = sum(m.final_accuracy is not None for m in sc.models)
    what = f"Depth by scale ({sc.family}, {sc.split} {sc.condition} accuracy at the end of training)"
    if n < 3:
        text = (f"{what}: only {n} model{'s' if n != 1 else ''} ha{'ve' if n != 1 else 's'} a final accuracy; "
                "a rank correlation needs at least 3, so no ρ is reported")
        if sc.rho is not None:
            text += f" (the file gives ρ = {fmt(sc.rho, signed=True)}, which is not meaningful over {n} points)"
        return text + "."
    if sc.rho is None:
        return f"{what}: Spearman ρ is undefined over these {n} models (e.g. every final accuracy is equal)."
    text = f"{what}: Spearman ρ(model size, final accuracy) = {fmt(sc.rho, signed=True)} over {n} models"
    if sc.ci is not None:
        boot = [f"{sc.n_boot:,} resamples" if sc.n_boot is not None else None,
                f"seed {sc.seed}" if sc.seed is not None else None]
        extra = ", ".join(b for b in boot if b)
        text += (f", 95% bootstrap CI [{fmt(sc.ci[0], signed=True)}, {fmt(sc.ci[1], signed=True)}]"
                 + (f" ({extra})" if extra else ""))
    else:
        text += "; its bootstrap CI is undefined"
    return text + ". Positive ρ: larger models end with higher accuracy."


def hub_sentences(hub: HubData) -> list[str]:
    """What the suite shows, one counted fact per sentence."""
    n_listed = sum(len(m.revisions) for m in hub.models.values())
    scored, skipped, failed = (sum(m.count(status) for m in hub.models.values())
                               for status in ("scored", "skipped", "failed"))
    names = ", ".join(f"{short_name(k)} ({fmt_params(m.n_params)})" for k, m in hub.models.items())
    fams = hub_families(hub)
    out = [f"The suite covers {len(hub.models)} model{'s' if len(hub.models) != 1 else ''} ({names}; smallest "
           f"first) and {len(fams)} rule famil{'ies' if len(fams) != 1 else 'y'}; {scored} of {n_listed} listed "
           f"revisions were scored, {skipped} skipped and {failed} failed."]
    if hub.records is not None:
        idx = hub_record_index(hub)
        for fam in fams:
            recs = [(short_name(m), idx[(m, fam)]) for m in hub.models if (m, fam) in idx]
            if not recs:
                continue
            groups: dict[str, list[str]] = {}
            for name, rec in recs:
                groups.setdefault(rec["fate"], []).append(name)
            gate_failed = [name for name, rec in recs if rec["agree_gate"] == "fail"]
            text = f"{fam}: " + "; ".join(f"{fate} in {', '.join(ms)}" for fate, ms in groups.items())
            if gate_failed:
                text += f" (agree gate failed in {', '.join(gate_failed)})"
            out.append(text + ".")
    fam = hub.scale.family if hub.scale is not None else hub.classifier.anchor_family
    thr = hub.classifier.emerged_thr
    firsts = [(model, first_step_at(hub.conflict[(model, fam)], thr)) for model in hub.models
              if (model, fam) in hub.conflict]
    if firsts:
        parts = [f"{short_name(m)} {'step ' + str(s) if s is not None else 'never'}" for m, s in firsts]
        out.append(f"First scored revision with raw held-out {fam} conflict accuracy ≥ {thr:g}: "
                   + "; ".join(parts) + ".")
    out.append(scale_sentence(hub))
    return out
