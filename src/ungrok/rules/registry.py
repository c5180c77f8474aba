"""Find, load and validate rule files: the built-ins plus an optional user rules dir.

Every problem in a rule file surfaces as one `UngrokError` line naming the file and
the first problem, so a user editing YAML sees exactly what to fix.
"""

from __future__ import annotations

import copy
import functools
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ungrok.errors import UngrokError
from ungrok.rules.expand import Lists, expand_probes, margin_prompts
from ungrok.rules.spec import RuleSpec, check_rescue_frames, resolve_list

LISTS_FILE = "_lists.yaml"
_EVENT_KINDS = {"window", "ngram", "lookahead"}
_TYPE_LABEL = re.compile(r"^(str|int|float|bool|list\[.*\]|dict\[.*\])$")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (line {line})", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, label: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        where = f" at line {e.problem_mark.line + 1}" if e.problem_mark else ""
        problem = (e.problem or str(e)).splitlines()[0]
        raise UngrokError(f"{label}: malformed YAML{where}: {problem}") from None
    except yaml.YAMLError as e:
        raise UngrokError(f"{label}: malformed YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise UngrokError(f"{label}: expected a mapping at the top level, got {kind}")
    return data


def _loc(parts: tuple[int | str, ...]) -> str:
    """Dotted location, without the union-member labels pydantic inserts (event kind, types)."""
    out: list[str] = []
    for i, p in enumerate(parts):
        if i > 0 and parts[i - 1] == "event" and p in _EVENT_KINDS:
            continue
        if isinstance(p, str) and _TYPE_LABEL.match(p):
            continue
        out.append(str(p))
    return ".".join(out)


def _validation_message(err: ValidationError) -> str:
    e = err.errors()[0]
    loc = tuple(e["loc"])
    if e["type"] in ("extra_forbidden", "missing") and loc:
        what = "unknown field" if e["type"] == "extra_forbidden" else "missing field"
        parent = _loc(loc[:-1])
        return f"{what} {str(loc[-1])!r}" + (f" at {parent}" if parent else "")
    msg = str(e["msg"]).removeprefix("Value error, ").splitlines()[0]
    where = _loc(loc)
    return f"{msg} at {where}" if where else msg


def _check_lists(data: Lists, label: str) -> Lists:
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, list):
            raise UngrokError(f"{label}: list {key!r} must map a name to a list")
        for item in value:
            ok = isinstance(item, str) or (
                isinstance(item, dict) and all(isinstance(v, str) for v in item.values())
            )
            if not ok:
                raise UngrokError(f"{label}: list {key!r} has an item that is not text: {item!r}")
    return data


def _resolve(ref: Any, lists: Lists, where: str) -> list[Any]:
    try:
        items = resolve_list(ref, lists)
    except (KeyError, ValueError) as e:
        raise ValueError(f"{e.args[0]} at {where}") from None
    if not items:
        raise ValueError(f"list {ref!r} is empty at {where}")
    return items


def _check_references(spec: RuleSpec, lists: Lists) -> None:
    """Resolve every list reference and expand every instrument once, so errors show at load."""
    for i, cue in enumerate(spec.cues):
        words = _resolve(cue.words, lists, f"cues.{i}.words")
        if not all(isinstance(w, str) and w for w in words):
            raise ValueError(f"cue words must be non-empty text at cues.{i}.words")
    for i, t in enumerate(spec.probes):
        for slot, ref in t.slots.items():
            _resolve(ref, lists, f"probes.{i}.slots.{slot}")
    expand_probes(spec, lists)
    if spec.rescue is not None:
        _resolve(spec.rescue.rule_class.names, lists, "rescue.rule_class.names")
        if spec.rescue.control_class is not None:
            _resolve(spec.rescue.control_class.names, lists, "rescue.control_class.names")
        check_rescue_frames(_resolve(spec.rescue.frames, lists, "rescue.frames"))
    if spec.margin is not None:
        m = spec.margin
        if m.neutral_frames or m.neutral_subjects != []:  # no neutral prompts at all is fine
            _resolve(m.neutral_subjects, lists, "margin.neutral_subjects")
            if not m.neutral_frames:
                raise ValueError("margin has neutral subjects but no neutral_frames")
        cm, _ = margin_prompts(spec, lists)
        if not cm:
            raise ValueError(f"margin split {spec.margin.split!r} has no conflict probes")


def _parse_rule(text: str, label: str, shared_lists: Lists) -> RuleSpec:
    data = _parse_yaml(text, label)
    try:
        spec = RuleSpec.model_validate(data)
    except ValidationError as e:
        raise UngrokError(f"{label}: {_validation_message(e)}") from None
    _check_lists(spec.lists, label)
    try:
        _check_references(spec, {**shared_lists, **spec.lists})
    except (KeyError, ValueError, UngrokError) as e:
        msg = str(e) if isinstance(e, UngrokError) else e.args[0]
        raise UngrokError(f"{label}: {msg}") from None
    return spec


def load_rule_file(path: str | Path, shared_lists: Lists) -> RuleSpec:
    """Load and fully validate one rule YAML file against the given shared lists."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UngrokError(f"{path}: cannot read rule file ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise UngrokError(f"{path}: not UTF-8 text (byte {e.start}); a rule file is YAML text") from None
    return _parse_rule(text, str(path), shared_lists)


@functools.cache
def _builtins() -> tuple[Lists, tuple[RuleSpec, ...]]:
    """Parsed once per process: the built-in shared lists and rules (immutable inputs)."""
    root = files("ungrok.rules").joinpath("builtin")  # a Traversable, so it works from a wheel too
    lists_label = f"builtin/{LISTS_FILE}"
    shared = _parse_yaml(root.joinpath(LISTS_FILE).read_text("utf-8"), lists_label)
    _check_lists(shared, lists_label)
    specs = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml") and not entry.name.startswith("_"):
            specs.append(_parse_rule(entry.read_text("utf-8"), f"builtin/{entry.name}", shared))
    return shared, tuple(specs)


def _user_dir(rules_dir: str | Path) -> Path:
    d = Path(rules_dir)
    if not d.is_dir():
        raise UngrokError(f"{d}: rules directory not found")
    return d


def load_shared_lists(rules_dir: str | Path | None = None) -> Lists:
    """Built-in shared lists, overridden by a user dir's `_lists.yaml` if it has one."""
    lists = copy.deepcopy(_builtins()[0])  # callers may mutate; the cache must not change
    if rules_dir is not None:
        extra = _user_dir(rules_dir) / LISTS_FILE
        if extra.is_file():
            try:
                text = extra.read_text(encoding="utf-8")
            except OSError as e:
                raise UngrokError(f"{extra}: cannot read ({e.strerror})") from None
            except UnicodeDecodeError as e:
                raise UngrokError(f"{extra}: not UTF-8 text (byte {e.start})") from None
            lists.update(_check_lists(_parse_yaml(text, str(extra)), str(extra)))
    return lists


def load_rules(rules_dir: str | Path | None = None) -> dict[str, RuleSpec]:
    """All rules by name: built-ins plus every *.yaml in `rules_dir` (user rules win)."""
    rules = {s.name: s for s in _builtins()[1]}
    if rules_dir is None:
        return rules
    lists = load_shared_lists(rules_dir)
    origin: dict[str, Path] = {}
    for path in sorted(_user_dir(rules_dir).glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        spec = load_rule_file(path, lists)
        if spec.name in origin:
            raise UngrokError(f"{path}: rule {spec.name!r} is also defined in {origin[spec.name]}")
        origin[spec.name] = path
        rules[spec.name] = spec
    return rules


def get_rule(name: str, rules_dir: str | Path | None = None) -> RuleSpec:
    """One rule by name; an unknown name is an error listing the known ones."""
    rules = load_rules(rules_dir)
    if name not in rules:
        raise UngrokError(f"unknown rule {name!r}; known rules: {', '.join(sorted(rules))}")
    return rules[name]


def lists_for(spec: RuleSpec, rules_dir: str | Path | None = None) -> Lists:
    """The lists a rule sees: shared lists, overridden by the rule's own `lists`."""
    return {**load_shared_lists(rules_dir), **spec.lists}
