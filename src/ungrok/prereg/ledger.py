"""The read ledger: when each run artifact was first read, and when predictions were registered.

`ledger.json` sits in the run folder, beside `registry.json`. Reads are keyed
`CELL/SEED/NAME` (e.g. `kill_1/42/trajectories`): the output of one training run, which
is what predictions govern; the file's sha256 at the first read is kept beside it (a freeze
binds those of the pilot reads), and so is when the runner first started training each
(cell, seed). A first-read time is never changed once written; updates
are made under a file lock and written atomically, so parallel workers cannot lose one
another's entries. Quarantined seeds (a replication set) cannot be read at all until an
unlock amendment is registered.

Limits: the ledger is as trustworthy as the file system it lives on; the registry's
hash chain and the registrations recorded here cross-check each other, but someone who
rewrites both by hand is not stopped — publish or commit the registry's sha256.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ungrok.atomic import write_json
from ungrok.errors import UngrokError
from ungrok.prereg.clock import Clock, parse_stamp, stamp, utc_now

if TYPE_CHECKING:
    from ungrok.prereg.registry import Registry

LEDGER_NAME = "ledger.json"
REGISTRY_NAME = "registry.json"


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    registry: str  # the registry's file name in this folder
    what: str  # "freeze", "amendment 1", ...
    at: str
    sha256: str


class Ledger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["ungrok-ledger/1"] = "ungrok-ledger/1"
    registrations: list[Registration] = []
    reads: dict[str, str] = {}  # artifact key -> first read (UTC)
    digests: dict[str, str] = {}  # artifact key -> sha256 of the file at its first read
    started: dict[str, str] = {}  # CELL/SEED -> when the runner first started training it (UTC)


def ledger_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / LEDGER_NAME


def read_ledger(run_dir: str | Path) -> Ledger:
    """The run folder's ledger (empty if none was written yet)."""
    p = ledger_path(run_dir)
    if not p.exists():
        return Ledger()
    try:
        return Ledger.model_validate(json.loads(p.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError):
        raise UngrokError(f"{p}: not a readable read ledger") from None


@contextlib.contextmanager
def locked(run_dir: str | Path) -> Iterator[None]:
    """Exclusive lock on the run folder's ledger (and registry updates); not re-entrant."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".ledger.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _update(run_dir: str | Path, change: Callable[[Ledger], bool], lock: bool = True) -> Ledger:
    """Apply `change` (under the lock unless the caller holds it); write only if it changed."""
    with locked(run_dir) if lock else contextlib.nullcontext():
        led = read_ledger(run_dir)
        if change(led):
            write_json(ledger_path(run_dir), led.model_dump(mode="json"))
        return led


# --------------------------------------------------------------------------- keys
def artifact_key(cell: str, seed: int, name: str) -> str:
    """`CELL/SEED/NAME`: one artifact of one training run."""
    return f"{cell}/{int(seed)}/{name}"


def parse_artifact_key(key: str) -> tuple[str, int, str]:
    parts = key.split("/", 2)
    if len(parts) != 3 or not parts[0] or not parts[2] or not parts[1].lstrip("-").isdigit():
        raise UngrokError(f"artifact key {key!r} is not CELL/SEED/NAME (e.g. kill_1/42/trajectories)")
    return parts[0], int(parts[1]), parts[2]


# --------------------------------------------------------------------------- quarantine and reads
def _registry_for(run_dir: str | Path, registry: Registry | None) -> Registry | None:
    if registry is not None:
        return registry
    p = Path(run_dir) / REGISTRY_NAME
    if not p.exists():
        return None
    from ungrok.prereg.registry import load_registry

    return load_registry(p)


def check_readable(run_dir: str | Path, cell: str, seed: int, registry: Registry | None = None) -> None:
    """Refuse (UngrokError) to read a quarantined seed's artifacts before it is unlocked.

    The registry defaults to RUN_DIR/registry.json; with none, nothing is quarantined.
    """
    reg = _registry_for(run_dir, registry)
    if reg is not None and int(seed) in reg.locked_seeds():
        raise UngrokError(
            f"cell {cell} seed {seed} is a quarantined replication seed: its artifacts may not be read "
            "until `ungrok prereg unlock` records an unlock amendment"
        )


def record_read(
    run_dir: str | Path,
    artifact: str,
    *,
    clock: Clock = utc_now,
    registry: Registry | None = None,
    sha256: str | None = None,
) -> str:
    """Record that an artifact is about to be read; return its first-read time.

    Call this before reading a run's trajectories, verdicts or margins. Quarantined
    seeds are refused. The first time is kept: later reads never move it. `sha256`
    (the file's hash) is kept with the first read, so a freeze can bind exactly what a
    pilot read saw.
    """
    cell, seed, _ = parse_artifact_key(artifact)
    check_readable(run_dir, cell, seed, registry)
    known = read_ledger(run_dir).reads.get(artifact)
    if known is not None:
        return known
    now = stamp(clock)

    def add(led: Ledger) -> bool:
        if artifact in led.reads:
            return False
        led.reads[artifact] = now
        if sha256 is not None:
            led.digests[artifact] = sha256
        return True

    return _update(run_dir, add).reads[artifact]


def run_key(cell: str, seed: int) -> str:
    """`CELL/SEED`: one training run."""
    return f"{cell}/{int(seed)}"


def record_start(run_dir: str | Path, cell: str, seed: int, *, clock: Clock = utc_now) -> str:
    """Note when training of (cell, seed) first started (kept: a resume never moves it), so
    `verify` can show that confirmatory training began after the freeze."""
    key, now = run_key(cell, seed), stamp(clock)

    def add(led: Ledger) -> bool:
        if key in led.started:
            return False
        led.started[key] = now
        return True

    return _update(run_dir, add).started[key]


def record_registration(
    run_dir: str | Path, registry_name: str, what: str, sha256: str, at: str, *, lock: bool = True
) -> None:
    """Note a freeze or amendment (lock=False: the caller already holds the ledger lock)."""

    def add(led: Ledger) -> bool:
        led.registrations.append(Registration(registry=registry_name, what=what, at=at, sha256=sha256))
        return True

    _update(run_dir, add, lock)


def registrations_for(led: Ledger, registry_name: str) -> list[Registration]:
    return [r for r in led.registrations if r.registry == registry_name]


# --------------------------------------------------------------------------- order of events
def reads_not_after(
    led: Ledger, cells: Iterable[str], seeds: Iterable[int], moment: str
) -> list[tuple[str, str]]:
    """Reads of the given runs at or before `moment`: (artifact key, first read), earliest first."""
    runs = {(c, int(s)) for c in cells for s in seeds}
    t = parse_stamp(moment)
    hits = []
    for key, first in led.reads.items():
        cell, seed, _ = parse_artifact_key(key)
        if (cell, seed) in runs and parse_stamp(first) <= t:
            hits.append((key, first))
    return sorted(hits, key=lambda kv: parse_stamp(kv[1]))


def refuse_if_read(led: Ledger, name: str, cells: Iterable[str], seeds: Iterable[int], moment: str) -> None:
    """A prediction registered at `moment` must precede every read of the data it governs."""
    hits = reads_not_after(led, cells, seeds, moment)
    if hits:
        key, first = hits[0]
        raise UngrokError(
            f"prediction {name} governs {key}, which was first read at {first}, before this "
            f"registration at {moment}; predictions must be registered before their data are read"
        )
