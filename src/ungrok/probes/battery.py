"""Probe batteries: build from rule specs, load and save the reference JSONL schema, hash.

A battery is a list of forced-choice items in the paper's line schema (docs/method.md §3.1;
`../shared/reference/README.md`). Its identity is the sha256 of its canonical bytes:
one `json.dumps(item)` per line (keys in the reference order, default separators,
ASCII escapes), each line ending in "\\n". That is byte-for-byte how the paper's
rvp3.1 / rvp4.1 / rvp5 files are written, so their canonical hash IS their published
file hash (rvp3.1: 17f539b6…). The legacy v1 file orders its keys differently; its
canonical hash differs from its file hash, and both are reported.

Legacy lines (the v1 in-loop battery) carry neither `family` nor `condition`; they
load as they are, and group under family = `probe`, condition = "legacy".
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ungrok.atomic import write_bytes
from ungrok.errors import UngrokError
from ungrok.hashing import sha256_bytes
from ungrok.jsonfile import iter_jsonl
from ungrok.rules.expand import ITEM_FIELDS

CONDITIONS = ("conflict", "agree")
SPLITS = ("train", "heldout")
LEGACY_CONDITION = "legacy"
# Fields a legacy (v1) line has: the reference schema without family and condition.
LEGACY_FIELDS = tuple(f for f in ITEM_FIELDS if f not in ("family", "condition"))
_TEXT_FIELDS = tuple(f for f in ITEM_FIELDS if f != "chance")

Item = dict[str, Any]


def canonical_line(item: Item) -> str:
    """One item as its canonical JSON line (without the newline)."""
    return json.dumps({k: item[k] for k in ITEM_FIELDS if k in item})


def canonical_bytes(items: Iterable[Item]) -> bytes:
    return "".join(canonical_line(it) + "\n" for it in items).encode("utf-8")


@dataclass(frozen=True)
class Battery:
    """Validated items in file order; `sha256` is the battery's identity."""

    items: tuple[Item, ...]
    source: str | None = None
    file_sha256: str | None = None  # hash of the bytes it was loaded from, if any
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", sha256_bytes(canonical_bytes(self.items)))

    def __len__(self) -> int:
        return len(self.items)

    def group_key(self, i: int) -> tuple[str, str, str]:
        """(family, condition, split) of item i; legacy items group by probe."""
        it = self.items[i]
        return (it.get("family", it["probe"]), it.get("condition", LEGACY_CONDITION), it["split"])

    @property
    def families(self) -> list[str]:
        """Families in order of first appearance."""
        return list(dict.fromkeys(self.group_key(i)[0] for i in range(len(self))))

    def counts(self) -> dict[tuple[str, str, str], int]:
        """Items per (family, condition, split), sorted by key."""
        c = Counter(self.group_key(i) for i in range(len(self)))
        return dict(sorted(c.items()))


def _check_item(obj: Any, where: str) -> Item:
    """Validate one parsed line; any problem is one error naming file:line and the field."""
    if not isinstance(obj, dict):
        raise UngrokError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = [k for k in obj if k not in ITEM_FIELDS]
    if unknown:
        raise UngrokError(f"{where}: unknown field {unknown[0]!r}")
    legacy = "family" not in obj and "condition" not in obj
    for f in LEGACY_FIELDS if legacy else ITEM_FIELDS:
        if f not in obj:
            raise UngrokError(f"{where}: missing field {f!r}")
    for f in _TEXT_FIELDS:
        if f in obj and not isinstance(obj[f], str):
            raise UngrokError(f"{where}: field {f!r} must be a string, not {type(obj[f]).__name__}")
    chance = obj["chance"]
    if isinstance(chance, bool) or not isinstance(chance, (int, float)) or not 0 <= chance <= 1:
        raise UngrokError(f"{where}: field 'chance' must be a number between 0 and 1, not {chance!r}")
    if obj["split"] not in SPLITS:
        raise UngrokError(f"{where}: field 'split' must be 'train' or 'heldout', not {obj['split']!r}")
    if not legacy:
        if obj["condition"] not in CONDITIONS:
            raise UngrokError(
                f"{where}: field 'condition' must be 'conflict' or 'agree', not {obj['condition']!r}"
            )
        if obj["probe"] != f"{obj['family']}.{obj['condition']}":
            raise UngrokError(f"{where}: field 'probe' must be 'family.condition', not {obj['probe']!r}")
    if not obj["item_id"]:
        raise UngrokError(f"{where}: field 'item_id' is empty")
    if obj["correct"] == obj["distractor"]:
        # Both continuations score the same, so the item would count as a coin flip, not a measure.
        raise UngrokError(f"{where}: fields 'correct' and 'distractor' are equal ({obj['correct']!r})")
    return {k: (float(obj[k]) if k == "chance" else obj[k]) for k in ITEM_FIELDS if k in obj}


def parse_battery(data: bytes, label: str) -> Battery:
    """Parse JSONL bytes (blank lines ignored); the first problem raises naming label:line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UngrokError(f"{label}: not UTF-8 text (byte {e.start})") from None
    items: list[Item] = []
    seen: dict[str, int] = {}
    for where, obj in iter_jsonl(text, label):
        item = _check_item(obj, where)
        first = seen.setdefault(item["item_id"], where)
        if first != where:
            raise UngrokError(f"{where}: field 'item_id' {item['item_id']!r} repeats line {first.rsplit(':', 1)[1]}")
        items.append(item)
    if not items:
        raise UngrokError(f"{label}: battery has no items")
    return Battery(tuple(items), source=label, file_sha256=sha256_bytes(data))


def load_battery(path: str | Path) -> Battery:
    """Read a battery JSONL file (the paper's frozen files load as they are)."""
    p = Path(path)
    if not p.is_file():
        raise UngrokError(f"{p}: battery file not found")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UngrokError(f"{p}: cannot read battery ({e.strerror})") from None
    return parse_battery(data, str(p))


def battery_families(path: str | Path) -> list[str]:
    """Families of a rule battery file, in order of first appearance.

    For callers that pick rules by battery (`support --battery`, the registry's vocabulary):
    a legacy (v1) file names no family, so it is refused rather than grouped by probe.
    """
    bat = load_battery(path)
    if any("family" not in it for it in bat.items):
        raise UngrokError(f"{bat.source}: legacy items without a 'family' field (the v1 schema); "
                          "give a rule battery (rvp schema)")
    return bat.families


def save_battery(battery: Battery, path: str | Path, force: bool = False) -> None:
    """Write the canonical bytes atomically; an existing file is replaced only with force."""
    p = Path(path)
    if p.exists() and not force:
        raise UngrokError(f"{p}: already exists; use --force to replace it")
    write_bytes(p, canonical_bytes(battery.items))


def build_battery(rules: Sequence[str] | None = None, rules_dir: str | Path | None = None) -> Battery:
    """Items of the named rules in the given order (all rules, sorted by name, if None).

    Deterministic: each rule expands in template order with ids numbered per
    (probe, split). Item sets equal the paper's files; order and ids do not (the paper
    shuffled each family), which is why a battery is identified by its own hash.
    """
    from ungrok.rules.expand import expand_probes
    from ungrok.rules.registry import get_rule, lists_for, load_rules

    names = list(dict.fromkeys(rules)) if rules else sorted(load_rules(rules_dir))
    items: list[Item] = []
    for name in names:
        spec = get_rule(name, rules_dir)
        expanded = expand_probes(spec, lists_for(spec, rules_dir))
        if not expanded:
            raise UngrokError(f"rule {name!r} declares no probes")
        items.extend(expanded)
    for k, it in enumerate(items):
        _check_item(it, f"rule {it['family']!r} item {k}")  # a user rule could emit a bad item
    return Battery(tuple(items))

