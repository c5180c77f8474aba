"""The experiment file: one YAML that names corpora, edits, training, seeds and predictions.

`load_experiment` validates everything a run needs before any work starts, so a typo in
cell 17 is one line at second 0, not a crash an hour in: unknown keys, cells that name a
missing parent or corpus, rules that cannot be killed or rescued, batteries that do not
load, training configs that do not parse, predictions that do not compile against the
experiment's cells and families, and intervention gates whose control families the
battery does not probe.

A `sweeps:` section (experiment/sweep.py) is expanded into ordinary cells first, so every
check below sees the generated cells exactly as if they had been written out.

Paths in the file (batteries, built corpora, cue files, rules_dir) are relative to the
file itself. `overrides` (a nested mapping, deep-merged; a None value deletes the key)
is the hook for running the same grid on stand-in data or with fewer steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ungrok.errors import UngrokError
from ungrok.experiment.cells import (
    CELL_NAME,
    CellSpec,
    KillSpec,
    RescueSpec,
    SweepSpec,
    deep_merge,
    validation_line,
)
from ungrok.fate.config import ClassifierConfig
from ungrok.limits import MAX_SEED
from ungrok.mech.store import ALL_INSTRUMENTS


class MechSpec(BaseModel):
    """Mechanism instruments (`ungrok mech`) on every governed run once it is classified.

    Descriptive only (docs/method.md §11): nothing here feeds a verdict, a gate or the scoreboard."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rules: list[str] = Field(min_length=1)
    instruments: list[str] = list(ALL_INSTRUMENTS)
    cells: list[str] | None = None  # the cells whose governed runs are read; None: every cell

    @model_validator(mode="after")
    def _known_instruments(self) -> MechSpec:
        bad = [i for i in self.instruments if i not in ALL_INSTRUMENTS]
        if bad:
            raise ValueError(f"unknown instrument {bad[0]!r}; use {', '.join(ALL_INSTRUMENTS)}")
        if not self.instruments:
            raise ValueError("name at least one instrument (or leave instruments out for all)")
        return self


class HubSpec(BaseModel):
    """Public checkpoints (`ungrok hub score` + `hub classify`) read with one of the batteries.

    The suite lands in RUN_DIR/hub/; its models are classified with the experiment's
    classifier on their revision steps and ranked by size (the depth-by-scale statistic)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    models: list[str] = Field(min_length=1)
    # auto | thinned | a list of revision names, for every model; or a mapping of model id -> one of
    # those, with "*" for the models not named (e.g. Pythia thinned, OLMo auto)
    revisions: str | list[str] | dict[str, str | list[str]] = "auto"
    battery: str | None = None  # a key of `batteries` (default: the only one)
    family: str | None = None  # the family of the scale statistic (default: the classifier's pick)
    scale_models: list[str] | None = None  # the models the scale statistic ranks (default: all)
    margins: bool = True
    device: str = "auto"
    dtype: str = "float32"
    offline: bool | None = None  # None: as the environment says (HF_HUB_OFFLINE)
    n_boot: int = Field(1000, ge=1)

    def revisions_for(self, model: str) -> str | list[str] | None:
        """The revision spec of one model (None: a mapping that names neither it nor "*")."""
        if isinstance(self.revisions, dict):
            return self.revisions.get(model, self.revisions.get("*"))
        return self.revisions


class ExperimentSpec(BaseModel):
    """The experiment file as written (paths unresolved)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    seeds: list[int] = []  # required with cells (each cell trains once per seed)
    quarantined_seeds: list[int] = []
    pilot_seeds: list[int] = []  # exploratory: trained by `ungrok run --phase pilot`, read freely, never scored
    pilot_record: str | None = None  # a pilot done elsewhere (prereg/pilot.py), bound into the registry
    rules: list[str] | None = None
    batteries: dict[str, str] = Field(min_length=1)
    train: dict[str, Any] = {}
    monitor: bool = True
    classifier: dict[str, Any] = {}
    cells: dict[str, CellSpec] = {}  # with the sweeps' cells added after the written ones
    sweeps: dict[str, SweepSpec] = {}
    predictions: list[Any] = []
    measures: list[str] = []
    cell_numbers: list[str] | None = None
    rules_dir: str | None = None
    mech: MechSpec | None = None
    hub: HubSpec | None = None

    @model_validator(mode="after")
    def _something_to_run(self) -> ExperimentSpec:
        if not self.cells and self.hub is None:
            raise ValueError("cells: give at least one cell (or a hub section of public checkpoints)")
        if self.cells and not self.seeds:
            raise ValueError("seeds: required key missing (every cell trains once per seed)")
        return self


@dataclass(frozen=True)
class Experiment:
    """A validated experiment with every path resolved and every cell's training config."""

    spec: ExperimentSpec
    path: Path  # the file it was read from
    text: str  # what RUN_DIR/experiment.yaml holds: the file's text, or the overridden document
    order: tuple[str, ...]  # cells in build order: every edit after its parent (and unit_from)
    train_docs: dict[str, dict[str, Any]]  # per cell, the merged train mapping (no seed)
    families: tuple[str, ...]  # battery families, in battery order
    rules: tuple[str, ...]  # rules whose support is counted
    monitor_rules: tuple[str, ...]  # rules the live monitor watches (empty: no monitor)
    classifier: ClassifierConfig
    rules_dir: Path | None
    sweep_points: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # sweep -> cell -> knobs
    focal: str | None = None  # the rule the report's phase diagram shows (see _focal)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def cells(self) -> dict[str, CellSpec]:
        return self.spec.cells

    @property
    def seeds(self) -> list[int]:
        return list(self.spec.seeds)

    @property
    def quarantined(self) -> list[int]:
        return list(self.spec.quarantined_seeds)

    @property
    def pilots(self) -> list[int]:
        return list(self.spec.pilot_seeds)

    @property
    def has_predictions(self) -> bool:
        return bool(self.spec.predictions)

    @property
    def needs_registry(self) -> bool:
        """A registry enforces predictions and the quarantine, and binds what the pilot read
        before the freeze, so any of them freezes it."""
        s = self.spec
        return bool(s.predictions or s.quarantined_seeds or s.pilot_seeds or s.pilot_record)

    def resolve(self, rel: str) -> Path:
        return resolve_path(self.path.parent, rel)

    def cell_steps(self, cell: str) -> int:
        from ungrok.train.config import parse_config

        return parse_config({**self.train_docs[cell], "seed": 0}).sampler.steps


def resolve_path(base: Path, rel: str) -> Path:
    """A path written in an experiment file: as written when absolute (after ~), else under `base`."""
    p = Path(rel).expanduser()
    return p if p.is_absolute() else base / p


def _inside(base: Path, rel: str, key: str, where: str) -> Path:
    """A relative path must stay inside the experiment's folder (the run folder keeps a copy at
    the same relative path, so the registry's hashes hold); the path resolved under `base`."""
    p = Path(rel).expanduser()
    if not p.is_absolute() and ".." in p.parts:
        raise UngrokError(f"{where}: {key}: {rel!r} leaves the experiment's folder; give a path inside it or "
                          "an absolute path")
    return resolve_path(base, rel)


def parse_spec(doc: Any, where: str) -> ExperimentSpec:
    """Schema validation only (no files, no cross-references); one line on failure."""
    if not isinstance(doc, dict):
        raise UngrokError(f"{where}: expected a mapping (name, seeds, batteries, cells, ...)")
    cells = doc.get("cells")
    if isinstance(cells, dict):
        for name, c in cells.items():
            if c is None:
                raise UngrokError(
                    f"{where}: cells.{name}: empty cell; give storyworld, corpus, kill or rescue"
                )
    if doc.get("sweeps") is not None:
        from ungrok.experiment.sweep import with_sweep_cells

        doc = with_sweep_cells(doc, where)
    try:
        return ExperimentSpec.model_validate(doc)
    except ValidationError as e:
        raise UngrokError(validation_line(e, where)) from None


# --------------------------------------------------------------------------- cross-checks
def _build_order(spec: ExperimentSpec, where: str) -> tuple[str, ...]:
    """Cells in file order, each edit moved after the cells it reads (parent, unit_from)."""
    deps: dict[str, list[str]] = {}
    for name, c in spec.cells.items():
        if not CELL_NAME.match(name):
            raise UngrokError(f"{where}: cell name {name!r}: use letters, digits, '_', '.', '+' or '-'")
        need = []
        e = c.edit
        if e is not None:
            if e.parent == name:
                raise UngrokError(f"{where}: cells.{name}: a cell cannot be its own parent")
            need.append(("parent", e.parent))
            if isinstance(e, RescueSpec) and e.unit_from is not None:
                need.append(("unit_from", e.unit_from))
        for what, other in need:
            if other not in spec.cells:
                kind = "kill" if c.kill is not None else "rescue"
                raise UngrokError(f"{where}: cells.{name}.{kind}.{what}: no cell named {other!r}")
        deps[name] = [o for _, o in need]
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, chain: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            raise UngrokError(f"{where}: cells form a cycle: {' -> '.join([*chain, n])}")
        state[n] = 1
        for d in deps[n]:
            visit(d, [*chain, n])
        state[n] = 2
        order.append(n)

    for n in spec.cells:
        visit(n, [])
    return tuple(order)


def _train_docs(spec: ExperimentSpec, order: tuple[str, ...], where: str) -> dict[str, dict[str, Any]]:
    """Each cell's train mapping: top level, then its parent's (edits train like their corpus), then its own."""
    from ungrok.train.config import parse_config

    if "seed" in spec.train:
        raise UngrokError(f"{where}: train.seed: give seeds at the top level (seeds:), not in train")
    docs: dict[str, dict[str, Any]] = {}
    for name in order:
        c = spec.cells[name]
        if "seed" in c.train:
            raise UngrokError(f"{where}: cells.{name}.train.seed: give seeds at the top level (seeds:)")
        base = docs[c.edit.parent] if c.edit is not None else spec.train
        docs[name] = deep_merge(base, c.train)
        parse_config({**docs[name], "seed": spec.seeds[0]}, f"{where}: cells.{name}.train")
    return docs


def _batteries(exp_dir: Path, spec: ExperimentSpec, where: str, check_files: bool) -> list[str]:
    """Battery families in order; relative paths must stay inside the experiment's folder."""
    from ungrok.probes.battery import load_battery

    families: list[str] = []
    owner: dict[str, str] = {}
    for name, rel in spec.batteries.items():
        path = _inside(exp_dir, rel, f"batteries.{name}", where)
        if not check_files:
            continue
        if not path.is_file():
            raise UngrokError(f"{where}: batteries.{name}: {path} not found")
        bat = load_battery(path)
        for i in range(len(bat)):
            fam, cond, _ = bat.group_key(i)
            if cond not in ("conflict", "agree"):
                raise UngrokError(
                    f"{where}: batteries.{name}: {path} has legacy items without family/condition "
                    "(e.g. the v1 in-loop battery); an experiment scores rule batteries (rvp schema)"
                )
        for fam in bat.families:
            if fam in owner and owner[fam] != name:
                raise UngrokError(
                    f"{where}: batteries {owner[fam]} and {name} both probe family {fam!r}; "
                    "each family may come from one battery only"
                )
            owner[fam] = name
            families.append(fam)
    return list(dict.fromkeys(families))


def _check_edits(spec: ExperimentSpec, exp: Path, rules_dir: Path | None, families: set[str],
                 train_docs: dict[str, dict[str, Any]], where: str, check_files: bool) -> None:
    from ungrok.edit.rescue import parse_window
    from ungrok.edit.validity import AK5_FAMILIES, related_families
    from ungrok.fate.gates import G3_FAMILIES, KS_FAMILIES
    from ungrok.rules.registry import get_rule
    from ungrok.train.config import parse_config

    for name, c in spec.cells.items():
        if c.corpus is not None and check_files:
            path = resolve_path(exp, c.corpus)
            if not (path / "manifest.json").is_file():
                raise UngrokError(
                    f"{where}: cells.{name}.corpus: {path} is not a corpus folder (no manifest.json)"
                )
        e = c.edit
        if e is None:
            continue
        kind = "kill" if c.kill is not None else "rescue"
        spec_r = get_rule(e.rule, rules_dir)
        if kind == "kill" and spec_r.kill is None:
            raise UngrokError(
                f"{where}: cells.{name}.kill.rule: rule {e.rule!r} has no kill spec; it cannot be killed"
            )
        if kind == "rescue" and spec_r.rescue is None:
            raise UngrokError(
                f"{where}: cells.{name}.rescue.rule: rule {e.rule!r} has no rescue spec; it cannot be rescued"
            )
        if (isinstance(e, KillSpec) and e.cues not in ("spec", "scan") and check_files
                and not resolve_path(exp, e.cues).is_file()):
            raise UngrokError(f"{where}: cells.{name}.kill.cues: cue file {e.cues} not found")
        if isinstance(e, RescueSpec) and e.window is not None:
            steps = parse_config({**train_docs[name], "seed": 0}).sampler.steps
            try:
                parse_window(e.window, steps)
            except UngrokError as err:
                raise UngrokError(
                    f"{where}: cells.{name}.rescue.window: {err}".replace("--window ", "")
                ) from None
        gate = e.gate if isinstance(e, KillSpec) else e.gate_kind
        if gate == "none":
            continue
        controls = {"kill": KS_FAMILIES, "ladder": AK5_FAMILIES}.get(gate, G3_FAMILIES)
        related = related_families(e.rule, rules_dir)
        missing = [f for f in controls if f not in related and f not in families]
        if missing and check_files:
            raise UngrokError(
                f"{where}: cells.{name}: the {gate} gate needs the control famil"
                f"{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)} in a battery; add "
                f"{'it' if len(missing) == 1 else 'them'} or set {kind}.gate: none"
            )


def _check_seeds(spec: ExperimentSpec, where: str) -> None:
    g, q = spec.seeds, spec.quarantined_seeds
    if len(set(g)) != len(g) or len(set(q)) != len(q):
        raise UngrokError(f"{where}: seeds: a seed is listed twice")
    both = sorted(set(g) & set(q))
    if both:
        raise UngrokError(f"{where}: seed(s) {both} are both governed (seeds) and quarantined")
    if any(s < 0 for s in [*g, *q]):
        raise UngrokError(f"{where}: seeds must be >= 0")
    p = spec.pilot_seeds
    if len(set(p)) != len(p):
        raise UngrokError(f"{where}: pilot_seeds: a seed is listed twice")
    for name, other in (("governed (seeds)", g), ("quarantined", q)):
        both = sorted(set(p) & set(other))
        if both:
            raise UngrokError(f"{where}: seed(s) {both} are both pilot and {name}; pilot seeds must be apart")
    if any(s < 0 for s in p):
        raise UngrokError(f"{where}: pilot_seeds must be >= 0")
    big = [s for s in [*g, *q, *spec.pilot_seeds] if not 0 <= s <= MAX_SEED]
    if big:
        raise UngrokError(f"{where}: seed {big[0]} is outside 0 .. 2**62, the range every generator takes")


def _check_pilot_record(spec: ExperimentSpec, exp_dir: Path, where: str, check_files: bool) -> None:
    """The pilot record stays inside the experiment's folder (the run folder keeps a copy at the
    same relative path, as for batteries), validates, and uses no confirmatory seed."""
    if spec.pilot_record is None:
        return
    from ungrok.prereg.pilot import check_record_seeds, load_pilot_record

    path = _inside(exp_dir, spec.pilot_record, "pilot_record", where)
    if not check_files:
        return
    try:
        rec = load_pilot_record(path)
    except UngrokError as e:
        raise UngrokError(f"{where}: pilot_record: {e}") from None
    check_record_seeds(rec, [*spec.seeds, *spec.quarantined_seeds], where)


# --------------------------------------------------------------------------- loading
def load_experiment(
    path: str | Path, overrides: Mapping[str, Any] | None = None, *, check_files: bool = True
) -> Experiment:
    """Read and validate an experiment file; every problem is one UngrokError line naming it.

    `check_files=False` validates the schema and the references between cells, rules and
    predictions without opening batteries or corpora (e.g. a GPU grid on a laptop).
    """
    from ungrok.yamlfile import load_yaml

    path = Path(path)
    where = str(path)
    doc = load_yaml(path, "experiment file")
    if overrides:
        if not isinstance(doc, dict):
            raise UngrokError(f"{where}: expected a mapping (name, seeds, batteries, cells, ...)")
        doc = deep_merge(doc, overrides)
        text = f"# {path.name} with overrides, as run\n" + yaml.safe_dump(
            doc, sort_keys=False, allow_unicode=True
        )
    else:
        text = path.read_text(encoding="utf-8")
    spec = parse_spec(doc, where)
    _check_seeds(spec, where)
    _check_pilot_record(spec, path.parent, where, check_files)
    order = _build_order(spec, where)
    try:
        classifier = ClassifierConfig(**spec.classifier)
    except ValidationError as e:
        raise UngrokError(validation_line(e, f"{where}: classifier")) from None
    except TypeError as e:
        raise UngrokError(f"{where}: classifier: {e}") from None
    rules_dir = None
    if spec.rules_dir is not None:
        rules_dir = resolve_path(path.parent, spec.rules_dir)
        if check_files and not rules_dir.is_dir():
            raise UngrokError(f"{where}: rules_dir: {rules_dir} is not a folder")
    from ungrok.rules.registry import load_rules

    known = load_rules(rules_dir)
    families = _batteries(path.parent, spec, where, check_files)
    if spec.rules is not None:
        for r in spec.rules:
            if r not in known:
                raise UngrokError(f"{where}: rules: unknown rule {r!r} (see `ungrok rules list`)")
        rules = list(dict.fromkeys(spec.rules))
    else:
        rules = [f for f in families if f in known]
    train_docs = _train_docs(spec, order, where)
    _check_edits(spec, path.parent, rules_dir, set(families), train_docs, where, check_files)
    compiled = _check_predictions(spec, set(known) | set(families), where)
    _check_mech(spec, known, set(families) if check_files else None, where)
    _check_hub(spec, set(families) if check_files else None, where)
    monitor = tuple(r for r in rules if r in families) if spec.monitor else ()
    from ungrok.experiment.sweep import sweep_points

    return Experiment(
        spec=spec,
        path=path,
        text=text,
        order=order,
        train_docs=train_docs,
        families=tuple(families),
        rules=tuple(rules),
        monitor_rules=monitor,
        classifier=classifier,
        rules_dir=rules_dir,
        sweep_points=sweep_points(spec.sweeps),
        focal=_focal(spec, families, classifier, compiled),
    )


def _focal(spec: ExperimentSpec, families: list[str], classifier: ClassifierConfig, compiled: list[Any]) -> str | None:
    """The experiment's focal rule: the first mechanism rule, else the classifier's anchor family
    when a battery probes it, else the family the first prediction reads."""
    if spec.mech is not None:
        return spec.mech.rules[0]
    if classifier.anchor_family in families:
        return classifier.anchor_family
    from ungrok.prereg.predictions import leaves

    for pred in compiled:
        for leaf in leaves(pred):
            fam = getattr(leaf, "family", None) or getattr(leaf, "families", None)
            if fam:
                return fam if isinstance(fam, str) else fam[0]
    return None


def _check_mech(spec: ExperimentSpec, known: Mapping[str, Any], families: set[str] | None, where: str) -> None:
    """Mechanism rules must exist, declare margin prompts (the instruments read the CM prompts) and
    be probed by a battery (decodability and the class direction read its held-out items)."""
    if spec.mech is None:
        return
    unknown = [c for c in spec.mech.cells or () if c not in spec.cells]
    if unknown:
        raise UngrokError(f"{where}: mech.cells: unknown cell {unknown[0]!r}")
    for r in spec.mech.rules:
        if r not in known:
            raise UngrokError(f"{where}: mech.rules: unknown rule {r!r} (see `ungrok rules list`)")
        if known[r].margin is None:
            raise UngrokError(
                f"{where}: mech.rules: rule {r!r} declares no margin section; the mechanism instruments "
                "read its contrast-margin prompts"
            )
        if families is not None and r not in families:
            raise UngrokError(f"{where}: mech.rules: no battery probes rule {r!r}; the instruments read its "
                              "held-out conflict and agree items")


def _check_hub(spec: ExperimentSpec, families: set[str] | None, where: str) -> None:
    """The hub section names a battery of this file, a probed family and a revision grid per model."""
    from ungrok.hub.revisions import check_grids, parse_revision_spec
    from ungrok.probes.models import DTYPES

    h = spec.hub
    if h is None:
        return
    if h.battery is None and len(spec.batteries) != 1:
        raise UngrokError(f"{where}: hub.battery: name one of the batteries ({', '.join(spec.batteries)})")
    if h.battery is not None and h.battery not in spec.batteries:
        raise UngrokError(f"{where}: hub.battery: {h.battery!r} is not a key of batteries "
                          f"({', '.join(spec.batteries)})")
    if h.family is not None and families is not None and h.family not in families:
        raise UngrokError(f"{where}: hub.family: no battery probes {h.family!r}")
    if h.dtype not in DTYPES:
        raise UngrokError(f"{where}: hub.dtype: must be one of {', '.join(DTYPES)}, not {h.dtype!r}")
    if h.scale_models is not None:
        stray = [m for m in h.scale_models if m not in h.models]
        if stray:
            raise UngrokError(f"{where}: hub.scale_models: {stray[0]!r} is not one of hub.models")
    if isinstance(h.revisions, dict):
        stray = [k for k in h.revisions if k != "*" and k not in h.models]
        if stray:
            raise UngrokError(f"{where}: hub.revisions: {stray[0]!r} is not one of hub.models")
    for m in h.models:
        rev = h.revisions_for(m)
        if rev is None:
            raise UngrokError(f"{where}: hub.revisions: no grid for {m} (name it or add a \"*\" entry)")
        try:
            check_grids([m], parse_revision_spec(rev))
        except UngrokError as e:
            raise UngrokError(f"{where}: hub: {e}") from None


def _check_predictions(spec: ExperimentSpec, families: set[str], where: str) -> list[Any]:
    """Compile the predictions now, so a typo fails before anything is built (prereg compiles
    them again at the freeze, against the same cells and families)."""
    if not spec.predictions:
        return []
    from ungrok.prereg.predictions import Vocabulary, compile_predictions

    vocab = Vocabulary.of(families, spec.cells, spec.measures, spec.cell_numbers)
    try:
        return compile_predictions(spec.predictions, vocab)
    except UngrokError as e:
        raise UngrokError(f"{where}: {e}") from None
