"""Amending a frozen registry: a dated, hash-chained entry appended after the integrity
check (new predictions and/or documented changes, or the unlock of the quarantined seeds);
earlier content is never edited (registry.py holds the layout and the chain)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ungrok.atomic import write_text
from ungrok.errors import UngrokError, first_error_line
from ungrok.hashing import sha256_json
from ungrok.prereg import predictions as preds
from ungrok.prereg.clock import Clock, parse_stamp, stamp, utc_now
from ungrok.prereg.integrity import check_run
from ungrok.prereg.ledger import Ledger, locked, record_registration
from ungrok.prereg.registry import Amendment, Registry, read_raw_registry, refuse_post_hoc, registry_text
from ungrok.yamlfile import load_yaml


class AmendFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    predictions: list[Any] = []
    changes: str | None = None


def _append(path: str | Path, build: Callable[[Registry, Ledger, str], dict[str, Any]], clock: Clock) -> Amendment:
    p = Path(path)
    with locked(p.parent):
        integ = check_run(p)  # a registry or ledger that `verify` refuses is never amended
        reg, led = integ.registry, integ.ledger  # the lock keeps both as checked until the write
        now = stamp(clock)
        last = reg.amendments[-1].created_utc if reg.amendments else reg.created_utc
        if parse_stamp(now) <= parse_stamp(last):
            raise UngrokError(f"{p}: the clock reads {now}, not after the registry's last entry ({last})")
        body = build(reg, led, now)
        raw = read_raw_registry(p)
        entry = {"index": len(reg.amendments) + 1, "created_utc": now, "prev_sha256": reg.head_sha256,
                 "ledger_head": led.head, **body}
        entry["sha256"] = sha256_json(entry)
        raw["amendments"] = [*raw["amendments"], entry]
        write_text(p, registry_text(raw))
        record_registration(p.parent, p.name, f"amendment {entry['index']}", entry["sha256"], now, lock=False)
    return Amendment.model_validate(entry)


def amend(
    path: str | Path,
    amendment: str | Path | Mapping[str, Any],
    reason: str,
    *,
    clock: Clock = utc_now,
) -> Amendment:
    """Append a dated amendment (new predictions and/or documented changes); earlier content
    is never edited. New predictions are refused if their data were already read."""
    if not reason or not reason.strip():
        raise UngrokError("an amendment needs a --reason")
    data = load_yaml(amendment, "amendment file") if not isinstance(amendment, Mapping) else amendment
    try:
        am = AmendFile.model_validate(data)
    except ValidationError as e:
        raise UngrokError(first_error_line(e, "amendment file", raw=True)) from None
    if not am.predictions and not (am.changes and am.changes.strip()):
        raise UngrokError("amendment file: nothing to amend (give predictions and/or changes)")

    def build(reg: Registry, led: Ledger, now: str) -> dict[str, Any]:
        compiled = preds.compile_predictions(am.predictions, reg.vocabulary(), taken=reg.names())
        refuse_post_hoc(led, compiled, reg.seeds, now)
        return {"kind": "amend", "reason": reason.strip(), "predictions": preds.dump(compiled),
                "changes": am.changes, "unlocked_seeds": []}

    return _append(path, build, clock)


def unlock(path: str | Path, reason: str, *, clock: Clock = utc_now) -> Amendment:
    """Record an unlock amendment: the quarantined seeds become readable from now on."""
    if not reason or not reason.strip():
        raise UngrokError("unlocking the quarantine needs a --reason")

    def build(reg: Registry, _led: Ledger, now: str) -> dict[str, Any]:
        locked = sorted(reg.locked_seeds())
        if not locked:
            raise UngrokError(f"{path}: no quarantined seeds are locked")
        return {"kind": "unlock", "reason": reason.strip(), "predictions": [], "changes": None,
                "unlocked_seeds": locked}

    return _append(path, build, clock)
