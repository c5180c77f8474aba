"""The order of a pre-registered run, as `ungrok prereg verify` prints it, and its check.

pilot (record, reads) -> freeze -> confirmatory training -> confirmatory reads. The pilot
may be read freely, before or after the freeze, but only what preceded the freeze is
bound into the registry. Confirmatory runs (governed and quarantined seeds) must not
exist before the freeze: a confirmatory read, a training start recorded in the ledger,
or a file in a confirmatory seed folder dated before the freeze breaks the order, and
`verify` fails. File dates are as trustworthy as the file system (see ledger.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ungrok.errors import UngrokError
from ungrok.prereg.clock import parse_stamp, stamp
from ungrok.prereg.ledger import Ledger, parse_artifact_key, read_ledger, registrations_for

if TYPE_CHECKING:
    from ungrok.prereg.registry import Registry


def _span(times: Iterable[str]) -> str:
    ts = sorted(times, key=parse_stamp)
    return f"{len(ts)} (first {ts[0]}, last {ts[-1]})" if ts else "0"


def _pilot_lines(path: Path, reg: Registry, led: Ledger, frozen: datetime) -> list[str]:
    p = reg.pilot
    if p is None:
        return ["order: no pilot declared"]
    lines = []
    if p.record is not None:
        r = p.record
        made = f", made {r.created_utc}" if r.created_utc else ""
        lines.append(f"order: pilot record {r.path}: {r.entries} verdict(s) of seed(s) {r.seeds}{made}, "
                     f"sha256 {r.sha256[:12]}… bound at the freeze")
        if r.created_utc and parse_stamp(r.created_utc) > frozen:
            raise UngrokError(f"{path}: the pilot record is dated {r.created_utc}, after the freeze")
    bound = {b.artifact: b for b in p.reads}
    if p.reads:
        lines.append(f"order: pilot reads before the freeze: {_span(b.first_read for b in p.reads)}")
    else:
        lines.append("order: no pilot reads at freeze")
    if any(parse_stamp(b.first_read) > frozen for b in p.reads):
        raise UngrokError(
            f"{path}: the registry binds a pilot read dated after its own freeze; it was modified"
        )
    pilot = set(p.seeds)
    later = []
    ours = bool(registrations_for(led, path.name))  # the ledger beside it is this registry's
    for key, first in led.reads.items():
        if parse_artifact_key(key)[1] not in pilot:
            continue
        if parse_stamp(first) > frozen:
            later.append(first)
        elif ours and key not in bound:
            raise UngrokError(f"{path}: the run ledger records pilot read {key} at {first}, before the freeze, "
                              "but the registry does not bind it")
    for key, b in bound.items():
        if ours and (led.reads.get(key) != b.first_read or led.digests.get(key) != b.sha256):
            raise UngrokError(f"{path}: the registry binds pilot read {key} ({b.first_read}), which the run "
                              "ledger no longer records as it was")
    if later:
        lines.append(f"order: pilot reads after the freeze (exploratory, not bound): {_span(later)}")
    return lines


def _file_start(run: Path, cells: Iterable[str], seeds: Iterable[int]) -> tuple[str, str] | None:
    """(time, file) of the earliest file in a confirmatory seed folder."""
    best: tuple[float, str] | None = None
    for cell in cells:
        for seed in seeds:
            folder = run / "cells" / cell / f"seed{seed}"
            for root, _, files in os.walk(folder):
                for f in files:
                    t = os.stat(os.path.join(root, f)).st_mtime
                    if best is None or t < best[0]:
                        best = (t, os.path.relpath(os.path.join(root, f), run))
    if best is None:
        return None
    return stamp(lambda: datetime.fromtimestamp(best[0], timezone.utc)), best[1]


def _training_line(path: Path, reg: Registry, led: Ledger, confirm: set[int], frozen: datetime) -> str:
    starts = [(t, f"training of {k}") for k, t in led.started.items() if int(k.rsplit("/", 1)[1]) in confirm]
    fs = _file_start(path.parent, reg.cells, sorted(confirm))
    if fs is not None:
        starts.append((fs[0], fs[1]))
    if not starts:
        return "order: confirmatory training: not started"
    t, what = min(starts, key=lambda s: parse_stamp(s[0]))
    if parse_stamp(t) <= frozen:
        raise UngrokError(f"{path}: the order is broken: confirmatory {what} dates from {t}, before the freeze at "
                          f"{reg.created_utc}; the registry was frozen after confirmatory data existed")
    return f"order: confirmatory training started {t} ({what})"


def _reads_line(path: Path, reg: Registry, led: Ledger, confirm: set[int], frozen: datetime) -> str:
    reads = sorted(((k, t) for k, t in led.reads.items() if parse_artifact_key(k)[1] in confirm),
                   key=lambda kv: parse_stamp(kv[1]))
    if not reads:
        return "order: confirmatory reads: none yet"
    key, first = reads[0]
    if parse_stamp(first) <= frozen:
        raise UngrokError(f"{path}: the order is broken: confirmatory artifact {key} was first read at {first}, "
                          f"before the freeze at {reg.created_utc}")
    return f"order: confirmatory reads: {_span(t for _, t in reads)}"


def order_lines(path: str | Path, reg: Registry) -> list[str]:
    """The timeline of a registry's run folder, one line per step; UngrokError (one line)
    when the order pilot -> freeze -> confirmatory training -> confirmatory reads is broken."""
    p = Path(path)
    led = read_ledger(p.parent)
    frozen = parse_stamp(reg.created_utc)
    confirm = reg.seeds.confirmatory
    lines = _pilot_lines(p, reg, led, frozen)
    lines.append(f"order: freeze {reg.created_utc}, sha256 {reg.sha256}")
    lines.append(_training_line(p, reg, led, confirm, frozen))
    lines.append(_reads_line(p, reg, led, confirm, frozen))
    return lines
