"""The mechanism store: RUN/traj.mech.parquet beside RUN/traj.parquet, one row per value.

Columns (long format, the same for every instrument):
    run, step, rule, instrument, component, metric, value, prompts_sha256
An instrument's result at one checkpoint is a *unit*: the rows of one (run, step, rule,
instrument). The table is rewritten atomically after every unit added, so an
interrupted `ungrok mech` loses at most the unit in flight, and a rerun skips every
unit already present with the same prompts_sha256. A unit present with *other* prompts
(the rule's margin prompts changed) is refused rather than mixed, unless the caller
asks to recompute it (`--force`), which replaces that unit's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ungrok.errors import UngrokError
from ungrok.mech.instruments import REGISTRY, RUN

MECH_FILE = "traj.mech.parquet"
MECH_COLUMNS = (
    ("run", "string"),
    ("step", "int64"),
    ("rule", "string"),
    ("instrument", "string"),
    ("component", "string"),
    ("metric", "string"),
    ("value", "float64"),
    ("prompts_sha256", "string"),
)
ALL_INSTRUMENTS = tuple(REGISTRY)  # what `ungrok mech` runs, in run order
INSTRUMENTS = tuple(n for n, i in REGISTRY.items() if i.where != RUN)  # what this table holds (not ngram's)

Unit = tuple[str, int, str, str]  # (run, step, rule, instrument)


def _row_key(r: Mapping[str, Any]) -> tuple:
    return (r["run"], r["step"], r["rule"], r["instrument"], r["component"], r["metric"])


def _unit(r: Mapping[str, Any]) -> Unit:
    return (r["run"], int(r["step"]), r["rule"], r["instrument"])


def read_mech(path: str | Path) -> Any:
    """The table as an Arrow table with exactly MECH_COLUMNS (None if the file does not exist)."""
    from ungrok.probes.trajectories import read_table

    return read_table(Path(path), MECH_COLUMNS, "mechanism table", writer="ungrok mech")


def check_rows(rows: Sequence[Mapping[str, Any]], where: str = "mechanism rows") -> None:
    """Every row carries exactly the store's columns, with a string component/metric and a number."""
    names = {c for c, _ in MECH_COLUMNS}
    for r in rows:
        keys = set(r)
        if keys != names:
            extra, missing = sorted(keys - names), sorted(names - keys)
            raise UngrokError(
                f"{where}: a row has " + (f"unknown column(s) {extra}" if extra else f"no column(s) {missing}")
            )
        if not isinstance(r["component"], str) or not isinstance(r["metric"], str):
            raise UngrokError(f"{where}: component and metric must be strings ({_row_key(r)})")


class MechStore:
    """The rows of one RUN/traj.mech.parquet, held in memory and saved whole after each unit."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.name.endswith(".parquet"):
            raise UngrokError(f"{self.path}: the mechanism table must be a .parquet file")
        table = read_mech(self.path)
        self.rows: list[dict[str, Any]] = [] if table is None else table.to_pylist()
        self._units: dict[Unit, str] = {}
        for r in self.rows:
            self._units[_unit(r)] = r["prompts_sha256"]

    # ----------------------------------------------------------------- queries
    def units(self) -> dict[Unit, str]:
        """Every unit present, with the prompts hash its rows were computed on."""
        return dict(self._units)

    def has(self, run: str, step: int, rule: str, instrument: str, prompts_sha256: str) -> bool:
        """Present with these prompts (resume skips it). Present with other prompts is an error."""
        have = self._units.get((run, int(step), rule, instrument))
        if have is None:
            return False
        if have != prompts_sha256:
            raise UngrokError(
                f"{self.path}: run {run!r} step {step} has {rule} {instrument} rows from other prompts "
                f"(sha256 {have[:12]}…, now {prompts_sha256[:12]}…); rerun with --force to recompute them"
            )
        return True

    def steps(self, run: str, rule: str, instrument: str) -> list[int]:
        return sorted(s for (r, s, ru, i) in self._units if r == run and ru == rule and i == instrument)

    def select(self, run: str | None = None, rule: str | None = None,
               instrument: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.rows
                if (run is None or r["run"] == run) and (rule is None or r["rule"] == rule)
                and (instrument is None or r["instrument"] == instrument)]

    # ----------------------------------------------------------------- updates
    def put(self, rows: Iterable[Mapping[str, Any]], save: bool = True) -> None:
        """Add rows, replacing every unit they cover (a unit is always written whole).

        Callers decide whether replacing is allowed (resume skips present units; --force
        recomputes them); this only guarantees no unit mixes two computations."""
        new = [dict(r) for r in rows]
        check_rows(new, str(self.path))
        shas: dict[Unit, str] = {}  # the units covered, each with its one prompts hash
        for r in new:
            r["step"] = int(r["step"])
            r["value"] = float(r["value"])
            if shas.setdefault(_unit(r), r["prompts_sha256"]) != r["prompts_sha256"]:
                raise UngrokError(f"{self.path}: unit {_unit(r)} mixes two prompts_sha256 values")
        seen: set[tuple] = set()
        for k in map(_row_key, new):
            if k in seen:
                raise UngrokError(f"{self.path}: two values for {k}")
            seen.add(k)
        self.rows = [r for r in self.rows if _unit(r) not in shas] + new
        self._units.update(shas)
        if save:
            self.save()

    def drop(self, units: Iterable[Unit], save: bool = True) -> int:
        """Remove whole units (e.g. the patch rows of an earlier peak/final pair); returns rows removed."""
        gone = set(units)
        before = len(self.rows)
        self.rows = [r for r in self.rows if _unit(r) not in gone]
        for u in gone:
            self._units.pop(u, None)
        if save and before != len(self.rows):
            self.save()
        return before - len(self.rows)

    def save(self) -> None:
        """The whole table, sorted, atomically (temp file + rename)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from ungrok.atomic import atomic_path
        from ungrok.probes.trajectories import arrow_schema

        table = pa.Table.from_pylist(sorted(self.rows, key=_row_key), schema=arrow_schema(MECH_COLUMNS))
        with atomic_path(self.path) as tmp:
            pq.write_table(table, tmp)
