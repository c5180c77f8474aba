"""The one integrity check `prereg verify`, `prereg score`, `prereg amend` and `ungrok run` share.

Three things bind each other by hash (docs/preregistration.md, "Integrity chain"):
- the registry: its own sha256, its amendment chain, and at each registration the run
  ledger's head hash (`ledger_head`);
- the run ledger (ledger.py): a hash chain whose `register` entries hold each
  registration's sha256 and whose `read`/`result` entries hold the sha256 of every file a
  verdict reads, taken when it was first read;
- the result files themselves (trajectories, margins, fates.json, gates.json).

Anything that breaks the registry or the ledger (an entry edited, removed, reordered or
inserted, the ledger missing or truncated, a registration the other side does not hold, a
confirmatory run or a governed read before the registration that governs it) is a one-line
UngrokError for every caller. A result file that changed since its first read is reported
as `Changed`: `verify` fails on it, `score` makes the predictions reading it UNSCOREABLE.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ungrok.errors import UngrokError
from ungrok.hashing import sha256_file
from ungrok.prereg import predictions as preds
from ungrok.prereg.ledger import LEDGER_NAME, Entry, Ledger, ledger_path, parse_artifact_key, read_ledger
from ungrok.prereg.registry import Registry, load_registry
from ungrok.prereg.timeline import order_lines

RESULT_FILES = ("fates.json", "gates.json")  # run-level results a verdict reads


@dataclass(frozen=True)
class Changed:
    """A result file whose bytes are not what the ledger saw at its first read."""

    what: str  # artifact key (CELL/SEED/NAME) or result file name
    path: str  # relative to the run folder
    first_read: str
    was: str
    now: str | None  # None: the file is gone
    run: tuple[str, int] | None  # the (cell, seed) it belongs to; None: the whole run (fates, gates)

    def line(self) -> str:
        if self.now is None:
            return f"{self.path} ({self.what}) is missing since its first read at {self.first_read}"
        return (f"{self.path} ({self.what}) changed since its first read at {self.first_read} "
                f"(sha256 {self.was[:12]}… -> {self.now[:12]}…)")

    def governs(self, cells: Iterable[str], seeds: Iterable[int]) -> bool:
        """Does a prediction over these cells and seeds read this file?"""
        return self.run is None or (self.run[0] in set(cells) and self.run[1] in set(seeds))


@dataclass(frozen=True)
class Integrity:
    registry: Registry
    ledger: Ledger
    lines: list[str]
    changed: list[Changed]


def _registrations(path: Path, reg: Registry, led: Ledger) -> list[Entry]:
    """The ledger's registration entries of this registry, checked against the registry's chain
    (sha256 and the ledger head each registration binds); one per chain element."""
    recorded = [e for e in led.entries if e.kind == "register" and e.key == path.name]
    if not recorded:
        raise UngrokError(f"{path}: the run ledger records no freeze of this registry; the ledger was replaced "
                          "or truncated, or the registry was not frozen here")
    chain = [("freeze", reg.sha256, reg.ledger_head)]
    chain += [(f"amendment {a.index}", a.sha256, a.ledger_head) for a in reg.amendments]
    for i, e in enumerate(recorded):
        if i >= len(chain):
            raise UngrokError(f"{path}: the run ledger records {e.what} (sha256 {str(e.sha256)[:12]}…, at {e.at}) "
                              "that the registry no longer holds: an amendment was removed")
        label, sha, head = chain[i]
        if e.what != label or e.sha256 != sha:
            raise UngrokError(f"{path}: {label} does not match the run ledger's record of it ({e.at})")
        if e.prev != head:
            raise UngrokError(f"{path}: {label} binds run ledger head {head[:12]}…, but the ledger's entry before "
                              f"it hashes to {e.prev[:12]}…; the ledger or the registry was rewritten")
    if len(chain) > len(recorded):
        raise UngrokError(f"{path}: {chain[len(recorded)][0]} is not in the run ledger; it was not written by ungrok")
    return recorded


def _seed_of(e: Entry) -> int | None:
    if e.kind == "read":
        return parse_artifact_key(e.key)[1]
    if e.kind == "start":
        return int(e.key.rsplit("/", 1)[1])
    return None


def _check_order(path: Path, reg: Registry, led: Ledger, recorded: list[Entry]) -> None:
    """Order by position in the chain (clocks can lie, the chain cannot be reordered): no
    confirmatory run before the freeze, no governed read before a prediction's registration."""
    confirm = reg.seeds.confirmatory
    for e in led.entries[: recorded[0].n]:
        if _seed_of(e) in confirm:
            what = "training of" if e.kind == "start" else "read of"
            raise UngrokError(f"{path}: the order is broken: the run ledger records the {what} confirmatory "
                              f"{e.key} (at {e.at}) before the freeze; the registry was frozen after "
                              "confirmatory data existed")
    for pred, _, where in reg.registered():
        n = recorded[0 if where == "freeze" else int(where.split()[1])].n
        seeds = set(reg.seeds.read_by(pred))
        cells = set(preds.governed_cells(pred))
        for e in led.entries[:n]:
            if e.kind == "read":
                cell, seed, _ = parse_artifact_key(e.key)
                if cell in cells and seed in seeds:
                    raise UngrokError(f"{path}: prediction {pred.name} ({where}) governs {e.key}, which the run "
                                      "ledger records as read before its registration: it was registered after "
                                      "its data were read")


def _anchor(path: Path, name: str, key: str) -> str | None:
    """The ledger head a derived file recorded (None: the file or the key is absent)."""
    f = path.parent / name
    if not f.is_file():
        return None
    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # its bytes are checked against the ledger below
    v = doc.get(key) if isinstance(doc, dict) else None
    return v if isinstance(v, str) else None


def _check_results_recorded(path: Path, led: Ledger) -> None:
    """fates.json and gates.json are recorded before they are written: one the ledger does not
    hold means the ledger lost its tail, or the file was not written by `ungrok run`. The run's
    scoreboard.json names the ledger head it was scored at: a ledger rewritten before it (a
    read's digest recomputed to fit an edited file, say) no longer holds that entry."""
    for name in RESULT_FILES:
        if (path.parent / name).is_file() and name not in led.results:
            raise UngrokError(f"{path}: {name} holds results, but the run ledger does not record it (the ledger "
                              "was truncated, or the file was not written by `ungrok run`)")
    hashes = {e.hash for e in led.entries}
    head = _anchor(path, "scoreboard.json", "ledger_head_sha256")
    if head is not None and head not in hashes:
        raise UngrokError(f"{path}: scoreboard.json was scored at run ledger entry {head[:12]}…, which the ledger "
                          "no longer holds; the ledger was rewritten after it")


def changed_results(run_dir: str | Path, led: Ledger) -> list[Changed]:
    """Every file the ledger recorded a sha256 for whose bytes differ now (or which is gone)."""
    run = Path(run_dir)
    items = [(k, led.paths[k], led.digests[k], led.reads[k], parse_artifact_key(k)[:2])
             for k in led.paths if k in led.digests]
    at = {e.key: e.at for e in led.entries if e.kind == "result"}
    items += [(name, name, sha, at.get(name, "?"), None) for name, sha in led.results.items()]
    out = []
    for what, rel, was, first, owner in items:
        f = run / rel
        now = sha256_file(f) if f.is_file() else None
        if now != was:
            out.append(Changed(what=what, path=rel, first_read=first, was=was, now=now, run=owner))  # type: ignore[arg-type]
    return out


def check_run(path: str | Path) -> Integrity:
    """Load a registry and check it, its run ledger and every result read against each other.

    A broken registry or ledger raises a one-line UngrokError; changed result files are
    returned (Integrity.changed) for the caller to fail on (`verify`) or to score as
    UNSCOREABLE (`score`)."""
    p = Path(path)
    reg = load_registry(p, check_files=True)
    if not ledger_path(p.parent).is_file():
        raise UngrokError(f"{p}: the run ledger {LEDGER_NAME} beside it is missing; it records the freeze, every "
                          "amendment and every read, so nothing can be verified without it")
    led = read_ledger(p.parent)  # its hash chain and views are checked here
    recorded = _registrations(p, reg, led)
    _check_order(p, reg, led, recorded)
    _check_results_recorded(p, led)
    changed = changed_results(p.parent, led)
    lines = [
        f"registry sha256 {reg.sha256} (frozen {reg.created_utc})",
        f"amendment chain: {len(reg.amendments)} amendment(s), head {reg.head_sha256}",
        f"classifier constants sha256 {reg.classifier_sha256}",
        f"experiment file {reg.experiment.path}: unchanged",
    ]
    lines += [f"battery {n} ({fh.path}): unchanged" for n, fh in reg.batteries.items()]
    if reg.pilot is not None and reg.pilot.record is not None:
        lines.append(f"pilot record {reg.pilot.record.path}: unchanged")
    lines += order_lines(p, reg)
    n_files = len([k for k in led.paths if k in led.digests]) + len(led.results)
    lines.append(f"results: {n_files - len(changed)} of {n_files} file(s) read unchanged since their first read")
    lines.append(f"ledger: hash chain of {len(led.entries)} entries intact, head {led.head}")
    lines.append(f"ledger: {len(recorded)} registration(s) match the chain")
    return Integrity(registry=reg, ledger=led, lines=lines, changed=changed)


def verify(path: str | Path) -> list[str]:
    """`prereg verify`: check_run, and a changed result file is a failure too (one line)."""
    integ = check_run(path)
    if integ.changed:
        c = integ.changed[0]
        more = f" (and {len(integ.changed) - 1} more)" if len(integ.changed) > 1 else ""
        raise UngrokError(f"{path}: result {c.line()}{more}; the predictions reading it are UNSCOREABLE")
    return integ.lines
