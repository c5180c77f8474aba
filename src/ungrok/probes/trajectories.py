"""Trajectory store: battery scores and margins per checkpoint, in Parquet tables, resumable.

`traj.parquet` has one row per (run, step, family, condition, split):
    run, step, revision, family, condition, split, accuracy, n_items, n_skipped,
    mean_margin, mean_margin_norm, battery_sha256
`traj.margins.parquet` (beside it) has one row per (run, step, rule):
    run, step, revision, rule, cm, pm, n_cm, n_pm, prompts_sha256
`traj.items.parquet` (only with items=True / `--items`) has one row per item and checkpoint:
    run, step, revision, item_id, family, condition, split, template_id, skipped,
    logp_correct, logp_distractor, correct, battery_sha256
(the input of template-stratified bootstrap CIs, `ungrok.fate.bootstrap_ci`).
The first two are what `ungrok classify` (ungrok.fate) reads. All are rewritten
atomically after every checkpoint, so an interrupted scoring loses at most the
checkpoint in flight, and a rerun skips every checkpoint whose rows are present
(same run, step and battery hash; margins: same run, step, rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ungrok.errors import UngrokError
from ungrok.probes.battery import Battery
from ungrok.probes.margins import MarginPlan, MarginPrompts, MarginScore
from ungrok.probes.score import (
    DEFAULT_BATCH_TOKENS,
    BatteryPlan,
    BatteryScores,
    GroupScore,
    LogitsModel,
    TextTokenizer,
)

TRAJ_COLUMNS = (
    ("run", "string"),
    ("step", "int64"),
    ("revision", "string"),
    ("family", "string"),
    ("condition", "string"),
    ("split", "string"),
    ("accuracy", "float64"),
    ("n_items", "int64"),
    ("n_skipped", "int64"),
    ("mean_margin", "float64"),
    ("mean_margin_norm", "float64"),
    ("battery_sha256", "string"),
)
MARGIN_COLUMNS = (
    ("run", "string"),
    ("step", "int64"),
    ("revision", "string"),
    ("rule", "string"),
    ("cm", "float64"),
    ("pm", "float64"),
    ("n_cm", "int64"),
    ("n_pm", "int64"),
    ("prompts_sha256", "string"),
)
ITEM_COLUMNS = (
    ("run", "string"),
    ("step", "int64"),
    ("revision", "string"),
    ("item_id", "string"),
    ("family", "string"),
    ("condition", "string"),
    ("split", "string"),
    ("template_id", "string"),
    ("skipped", "bool_"),
    ("logp_correct", "float64"),
    ("logp_distractor", "float64"),
    ("correct", "bool_"),
    ("battery_sha256", "string"),
)


def margins_path_for(traj: str | Path) -> Path:
    """The margin table beside a trajectory table: traj.parquet -> traj.margins.parquet."""
    p = Path(traj)
    return p.with_name(p.name.removesuffix(".parquet") + ".margins.parquet")


def items_path_for(traj: str | Path) -> Path:
    """The per-item table beside a trajectory table: traj.parquet -> traj.items.parquet."""
    p = Path(traj)
    return p.with_name(p.name.removesuffix(".parquet") + ".items.parquet")


def arrow_schema(columns: Sequence[tuple[str, str]]) -> Any:
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in columns])


def read_rows(path: Path, columns: Sequence[tuple[str, str]], what: str) -> list[dict[str, Any]]:
    table = read_table(path, columns, what)
    return [] if table is None else table.to_pylist()


def read_table(path: Path, columns: Sequence[tuple[str, str]], what: str, writer: str = "ungrok score") -> Any:
    """The parquet table at `path` with exactly `columns`, typed (None if it does not exist).

    A file that is not such a table is one error line naming it, `what` it should be and
    the command that writes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.exists():
        return None
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise UngrokError(f"{path}: not a readable parquet {what} ({e})") from None
    missing = [c for c, _ in columns if c not in table.column_names]
    if missing:
        raise UngrokError(f"{path}: not a {what} written by `{writer}` (no column {missing[0]!r})")
    try:
        return table.select([c for c, _ in columns]).cast(arrow_schema(columns))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise UngrokError(f"{path}: {what} has a column of the wrong type ({e})") from None


def _sorted_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]], key: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_pylist(sorted(rows, key=key), schema=arrow_schema(columns))


def _write(path: Path, table: Any) -> None:
    import pyarrow.parquet as pq

    from ungrok.atomic import atomic_path

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _traj_key(r: dict[str, Any]) -> tuple:
    return (r["run"], r["step"], r["family"], r["condition"], r["split"])


def _margin_key(r: dict[str, Any]) -> tuple:
    return (r["run"], r["step"], r["rule"])


def group_rows(
    run: str, step: int, revision: str | None, battery_sha256: str, groups: Sequence[GroupScore]
) -> list[dict[str, Any]]:
    """traj.parquet rows (TRAJ_COLUMNS) of one scored checkpoint, a row per group."""
    return [
        {"run": run, "step": step, "revision": revision, **asdict(g), "battery_sha256": battery_sha256}
        for g in groups
    ]


class TrajectoryStore:
    """The tables of one `--out`, held in memory and saved whole after each checkpoint.

    With items=True the per-item table is kept too (as Arrow tables: it is the big one).
    """

    def __init__(self, path: str | Path, items: bool = False):
        self.path = Path(path)
        if not self.path.name.endswith(".parquet"):
            raise UngrokError(f"{self.path}: the trajectory table must be a .parquet file")
        self.margins_path = margins_path_for(self.path)
        self.items_path = items_path_for(self.path) if items else None
        self.rows = read_rows(self.path, TRAJ_COLUMNS, "trajectory table")
        self.margin_rows = read_rows(self.margins_path, MARGIN_COLUMNS, "margin table")
        self._done = {(r["run"], r["step"], r["battery_sha256"]) for r in self.rows}
        self._margin_done = {_margin_key(r): r["prompts_sha256"] for r in self.margin_rows}
        self._item_tables: list[Any] = []
        self._items_done: set[tuple[str, int, str]] = set()
        if self.items_path is not None:
            table = read_table(self.items_path, ITEM_COLUMNS, "item table")
            if table is not None:
                self._item_tables.append(table)
                cols = [table.column(c).to_pylist() for c in ("run", "step", "battery_sha256")]
                self._items_done = set(zip(*cols, strict=True))

    def has_scores(self, run: str, step: int, battery_sha256: str) -> bool:
        """Group rows present (and item rows too, when this store keeps items)."""
        key = (run, step, battery_sha256)
        return key in self._done and (self.items_path is None or key in self._items_done)

    def missing_margins(
        self, run: str, step: int, prompt_sets: Iterable[MarginPrompts]
    ) -> list[MarginPrompts]:
        return [ps for ps in prompt_sets if (run, step, ps.rule) not in self._margin_done]

    def check_compatible(self, run: str, battery: Battery, prompt_sets: Iterable[MarginPrompts]) -> None:
        """Refuse to mix two batteries' rows for one group, or two prompt sets for one rule."""
        groups = set(battery.counts())
        for r in self.rows:
            if (r["run"] == run and r["battery_sha256"] != battery.sha256
                    and (r["family"], r["condition"], r["split"]) in groups):
                raise UngrokError(
                    f"{self.path}: run {run!r} already has {r['family']} rows from another battery "
                    f"(sha256 {r['battery_sha256'][:12]}…); write to another --out"
                )
        for ps in prompt_sets:
            self.check_prompts(run, ps.rule, ps.sha256)

    def check_prompts(self, run: str, rule: str, prompts_sha256: str) -> None:
        """Refuse a rule's margins from other prompts than the run's rows already have."""
        for r in self.margin_rows:
            if r["run"] == run and r["rule"] == rule and r["prompts_sha256"] != prompts_sha256:
                raise UngrokError(
                    f"{self.margins_path}: run {run!r} has {rule} margins from other prompts "
                    f"(sha256 {r['prompts_sha256'][:12]}…); write to another --out"
                )

    def add_scores(
        self, run: str, step: int, revision: str | None, battery_sha256: str, groups: Sequence[GroupScore]
    ) -> None:
        if (run, step, battery_sha256) in self._done:
            return  # rescored only for its item rows
        self.rows += group_rows(run, step, revision, battery_sha256, groups)
        self._done.add((run, step, battery_sha256))

    def add_items(self, run: str, step: int, revision: str | None, scores: BatteryScores) -> None:
        import pyarrow as pa

        key = (run, step, scores.battery.sha256)
        if self.items_path is None or key in self._items_done:
            return
        rows = scores.item_rows()
        for r in rows:
            r.update(run=run, step=step, revision=revision, battery_sha256=scores.battery.sha256)
        self._item_tables.append(pa.Table.from_pylist(rows, schema=arrow_schema(ITEM_COLUMNS)))
        self._items_done.add(key)

    def add_margins(self, run: str, step: int, revision: str | None, scores: Sequence[MarginScore]) -> None:
        """A row per rule not yet in the store at (run, step); rows already there are kept."""
        for m in scores:
            if (run, step, m.rule) in self._margin_done:
                continue
            self.margin_rows.append({"run": run, "step": step, "revision": revision, **asdict(m)})
            self._margin_done[(run, step, m.rule)] = m.prompts_sha256

    def save(self) -> None:
        """Both tables, each atomically (margins first: a checkpoint counts done by its battery rows)."""
        if self.margin_rows:
            _write(self.margins_path, _sorted_table(self.margin_rows, MARGIN_COLUMNS, _margin_key))
        if self.items_path is not None and self._item_tables:
            import pyarrow as pa

            self._item_tables = [pa.concat_tables(self._item_tables).combine_chunks()]
            _write(self.items_path, self._item_tables[0])
        _write(self.path, _sorted_table(self.rows, TRAJ_COLUMNS, _traj_key))


@dataclass(frozen=True)
class CheckpointSource:
    """One checkpoint to score; `load()` is called only if something is missing from the store."""

    run: str
    step: int
    revision: str | None
    load: Callable[[], tuple[LogitsModel, TextTokenizer]]


@dataclass
class ScoreSummary:
    scored: int = 0  # checkpoints loaded and scored
    already: int = 0  # checkpoints whose rows were all present
    items_skipped: int = 0  # battery items skipped per checkpoint (tokenize to nothing), last seen


def score_checkpoints(
    store: TrajectoryStore,
    sources: Sequence[CheckpointSource],
    battery: Battery,
    prompt_sets: Sequence[MarginPrompts] = (),
    bos: bool = False,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    on_checkpoint: Callable[[CheckpointSource, bool], None] | None = None,
) -> ScoreSummary:
    """Score every checkpoint not yet in the store; save after each one.

    Plans are built once per tokenizer object, so a run's checkpoints sharing one
    tokenizer are tokenized once. `on_checkpoint(source, scored)` drives a progress bar.
    """
    for run in dict.fromkeys(s.run for s in sources):
        store.check_compatible(run, battery, prompt_sets)
    summary = ScoreSummary()
    plans: dict[int, tuple[TextTokenizer, BatteryPlan, MarginPlan]] = {}
    for src in sources:
        need_battery = not store.has_scores(src.run, src.step, battery.sha256)
        need_margins = store.missing_margins(src.run, src.step, prompt_sets)
        if not need_battery and not need_margins:
            summary.already += 1
            if on_checkpoint:
                on_checkpoint(src, False)
            continue
        model, tokenizer = src.load()
        cached = plans.get(id(tokenizer))
        if cached is None or cached[0] is not tokenizer:
            prepend = _bos(tokenizer) if bos else ()
            cached = (
                tokenizer,
                BatteryPlan(battery, tokenizer, prepend, batch_tokens),
                MarginPlan(prompt_sets, tokenizer, prepend, batch_tokens),
            )
            plans[id(tokenizer)] = cached
        _, bplan, mplan = cached
        if need_battery:
            scores = bplan.score(model)
            summary.items_skipped = scores.n_skipped
            store.add_scores(src.run, src.step, src.revision, battery.sha256, scores.groups())
            store.add_items(src.run, src.step, src.revision, scores)
        if need_margins:  # add_margins keeps the rules already there
            store.add_margins(src.run, src.step, src.revision, mplan.score(model))
        store.save()
        summary.scored += 1
        if on_checkpoint:
            on_checkpoint(src, True)
    return summary


def _bos(tokenizer: TextTokenizer) -> tuple[int, ...]:
    bos = getattr(tokenizer, "bos_id", None)
    if bos is None:
        raise UngrokError("--bos asked for, but the tokenizer has no beginning-of-sequence token")
    return (int(bos),)
