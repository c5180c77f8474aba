"""The read ledger: a hash chain of everything that happened to a run folder's data.

`ledger.json` sits in the run folder, beside `registry.json`. Every event is one entry of
`entries`, in the order it happened, each holding the previous entry's hash (`prev`) and
its own (`hash`, the sha256 of its canonical JSON without `hash`):

- `read`: the first read of a run artifact, keyed `CELL/SEED/NAME` (e.g.
  `kill_1/42/trajectories`), with the file's sha256 and path at that read;
- `result`: a run-level result file a verdict reads (`fates.json`, `gates.json`), with the
  sha256 of its content, recorded before the file is written;
- `start`: when the runner first started training a (cell, seed);
- `register`: a freeze or amendment of the registry, with its sha256. The registry in turn
  records the ledger's head hash at each registration (`ledger_head`), so the two bind
  each other, and removing, editing or reordering an entry breaks the chain.

`registrations`, `reads`, `digests`, `results` and `started` are views of the chain, kept
for people and older readers; a view that disagrees with the chain makes the ledger
unreadable. A first read is never changed once written; updates are made under a file lock
and written atomically, so parallel workers cannot lose one another's entries. Quarantined
seeds (a replication set) cannot be read at all until an unlock amendment is registered.

Limits: the ledger is as trustworthy as the file system it lives on. Someone who rewrites
the registry, the ledger and every result consistently is not stopped by any file in the
folder: publish or commit the registry's sha256 (and the scoreboard's).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock
from pydantic import BaseModel, ConfigDict, ValidationError

from ungrok.atomic import write_json
from ungrok.errors import UngrokError, first_error
from ungrok.hashing import sha256_json
from ungrok.prereg.clock import Clock, parse_stamp, stamp, utc_now

LEDGER_NAME = "ledger.json"
REGISTRY_NAME = "registry.json"
LEDGER_FORMAT = "ungrok-ledger/2"
GENESIS = "0" * 64  # the `prev` of the first entry
EntryKind = Literal["read", "result", "start", "register"]


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    registry: str  # the registry's file name in this folder
    what: str  # "freeze", "amendment 1", ...
    at: str
    sha256: str


class Entry(BaseModel):
    """One event of the chain; `hash` covers every other field, `prev` included."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n: int
    kind: EntryKind
    key: str  # artifact key, CELL/SEED, result file name, or registry file name
    at: str
    sha256: str | None = None  # the file's (or registration's) sha256
    path: str | None = None  # the file read, relative to the run folder
    what: str | None = None  # registrations: "freeze", "amendment 1", ...
    prev: str
    hash: str


def entry_hash(fields: dict[str, Any]) -> str:
    """sha256 of an entry's canonical JSON without its own hash (independently recomputable)."""
    body = {k: v for k, v in fields.items() if k != "hash"}
    return sha256_json(body)


class Ledger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["ungrok-ledger/2"] = LEDGER_FORMAT
    registrations: list[Registration] = []
    reads: dict[str, str] = {}  # artifact key -> first read (UTC)
    digests: dict[str, str] = {}  # artifact key -> sha256 of the file at its first read
    paths: dict[str, str] = {}  # artifact key -> the file read, relative to the run folder
    results: dict[str, str] = {}  # run-level result file -> sha256 when first recorded
    started: dict[str, str] = {}  # CELL/SEED -> when the runner first started training it (UTC)
    entries: list[Entry] = []

    @property
    def head(self) -> str:
        """The hash of the last entry (GENESIS for an empty ledger): what a registration binds."""
        return self.entries[-1].hash if self.entries else GENESIS

    def append(self, kind: EntryKind, key: str, at: str, **fields: str | None) -> Entry:
        """Add one event at the end of the chain and to the views."""
        body: dict[str, Any] = {"n": len(self.entries), "kind": kind, "key": key, "at": at,
                                "sha256": None, "path": None, "what": None, **fields, "prev": self.head}
        e = Entry(**body, hash=entry_hash(body))
        self.entries.append(e)
        _apply(self, e)
        return e


def _apply(led: Ledger, e: Entry) -> None:
    if e.kind == "read":
        led.reads[e.key] = e.at
        if e.sha256 is not None:
            led.digests[e.key] = e.sha256
        if e.path is not None:
            led.paths[e.key] = e.path
    elif e.kind == "result":
        led.results[e.key] = str(e.sha256)
    elif e.kind == "start":
        led.started[e.key] = e.at
    else:
        led.registrations.append(Registration(registry=e.key, what=str(e.what), at=e.at, sha256=str(e.sha256)))


def check_chain(led: Ledger, where: Path) -> None:
    """Recompute the chain and the views from it; the first entry or view that differs is a
    one-line UngrokError (a ledger edited, truncated in the middle or reordered)."""
    prev = GENESIS
    fresh = Ledger()
    for i, e in enumerate(led.entries):
        label = f"entry {i} ({e.kind} {e.key}{' ' + e.what if e.what else ''} at {e.at})"
        if e.n != i or e.prev != prev:
            raise UngrokError(f"{where}: {label} does not follow the entry before it (hash chain broken: an "
                              "entry was removed, reordered or inserted)")
        if entry_hash(e.model_dump()) != e.hash:
            raise UngrokError(f"{where}: {label} changed after it was recorded")
        prev = e.hash
        fresh.entries.append(e)
        _apply(fresh, e)
    for view in ("registrations", "reads", "digests", "paths", "results", "started"):
        have, want = getattr(led, view), getattr(fresh, view)
        if have != want:
            keys = [k for k in (set(have) | set(want)) if have.get(k) != want.get(k)] if isinstance(have, dict) else []
            at = f" at {sorted(keys)[0]}" if keys else ""
            raise UngrokError(f"{where}: its {view} table disagrees with its hash chain{at}; the ledger was edited")


def ledger_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / LEDGER_NAME


def read_ledger(run_dir: str | Path) -> Ledger:
    """The run folder's ledger (empty if none was written yet), its chain checked."""
    p = ledger_path(run_dir)
    if not p.exists():
        return Ledger()
    try:
        led = Ledger.model_validate(json.loads(p.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UngrokError(f"{p}: not valid JSON any more (truncated or edited)") from None
    except ValidationError as e:
        where, msg = first_error(e, top="top level", raw=True)
        raise UngrokError(f"{p}: not a readable read ledger ({LEDGER_FORMAT}) at {where}: {msg}") from None
    check_chain(led, p)
    return led


LOCK_NAME = ".ledger.lock"


@contextlib.contextmanager
def locked(run_dir: str | Path) -> Iterator[None]:
    """Exclusive lock on the run folder's ledger (and registry updates); not re-entrant.

    `filelock` rather than bare fcntl so it also works where fcntl does not (Windows); the
    lock file RUN/.ledger.lock stays in place, and a second `locked` of the same folder
    waits, even in the same process (a fresh lock object each time).
    """
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    with FileLock(d / LOCK_NAME):
        yield


def _update(run_dir: str | Path, change: Callable[[Ledger], bool], lock: bool = True) -> Ledger:
    """Apply `change` (under the lock unless the caller holds it); write only if it changed."""
    with locked(run_dir) if lock else contextlib.nullcontext():
        led = read_ledger(run_dir)
        if change(led):
            write_json(ledger_path(run_dir), led.model_dump(mode="json"))
        return led


def _append_once(run_dir: str | Path, view: Callable[[Ledger], dict[str, str]], kind: EntryKind, key: str,
                 at: str, **fields: str | None) -> str:
    """Append the event unless `view` (the ledger's table for this kind) already holds `key`: the
    first event is kept, so a resume or a second read never moves it. Returns what the table holds."""

    def add(led: Ledger) -> bool:
        if key in view(led):
            return False
        led.append(kind, key, at, **fields)
        return True

    return view(_update(run_dir, add))[key]


# --------------------------------------------------------------------------- keys
def artifact_key(cell: str, seed: int, name: str) -> str:
    """`CELL/SEED/NAME`: one artifact of one training run."""
    return f"{cell}/{int(seed)}/{name}"


def parse_artifact_key(key: str) -> tuple[str, int, str]:
    parts = key.split("/", 2)
    if len(parts) != 3 or not parts[0] or not parts[2] or not parts[1].lstrip("-").isdigit():
        raise UngrokError(f"artifact key {key!r} is not CELL/SEED/NAME (e.g. kill_1/42/trajectories)")
    return parts[0], int(parts[1]), parts[2]


def _relative(run_dir: str | Path, path: str | Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(run_dir).resolve())).as_posix()


# --------------------------------------------------------------------------- reads
def record_first_read(
    run_dir: str | Path,
    artifact: str,
    *,
    clock: Clock = utc_now,
    sha256: str | None = None,
    path: str | Path | None = None,
) -> str:
    """Append the first read of an artifact (kept: later reads never move it); return its time.

    No quarantine check here: `ungrok.prereg.reads.record_read` checks the registry first and
    is what every reader calls."""
    known = read_ledger(run_dir).reads.get(artifact)
    if known is not None:
        return known
    rel = None if path is None else _relative(run_dir, path)
    return _append_once(run_dir, lambda led: led.reads, "read", artifact, stamp(clock), sha256=sha256, path=rel)


def record_result(run_dir: str | Path, name: str, sha256: str, *, clock: Clock = utc_now) -> str:
    """Record the sha256 of a run-level result file (fates.json, gates.json) a verdict reads,
    before it is written; the first one is kept. Returns the recorded sha256."""
    return _append_once(run_dir, lambda led: led.results, "result", name, stamp(clock), sha256=sha256, path=name)


def run_key(cell: str, seed: int) -> str:
    """`CELL/SEED`: one training run."""
    return f"{cell}/{int(seed)}"


def record_start(run_dir: str | Path, cell: str, seed: int, *, clock: Clock = utc_now) -> str:
    """Note when training of (cell, seed) first started (kept: a resume never moves it), so
    `verify` can show that confirmatory training began after the freeze."""
    return _append_once(run_dir, lambda led: led.started, "start", run_key(cell, seed), stamp(clock))


def record_registration(
    run_dir: str | Path, registry_name: str, what: str, sha256: str, at: str, *, lock: bool = True
) -> None:
    """Note a freeze or amendment (lock=False: the caller already holds the ledger lock)."""

    def add(led: Ledger) -> bool:
        led.append("register", registry_name, at, sha256=sha256, what=what)
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
    hits = [(key, first) for key, first in led.reads.items()
            if parse_artifact_key(key)[:2] in runs and parse_stamp(first) <= t]
    return sorted(hits, key=lambda kv: parse_stamp(kv[1]))

