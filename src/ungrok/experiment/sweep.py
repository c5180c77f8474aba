"""Sweeps: a base cell and a grid of knob values, expanded into ordinary cells.

A grid over corpus knobs or kill rates is the common experiment, and writing its cells out
by hand is where typos and missing combinations come from. A sweep says it once:

    sweeps:
      kill:
        base: {kill: {parent: high, rule: pronoun_gender_ref_v2}}
        grid: {kill.rate: [0.25, 0.5, 1.0]}

The expansion runs on the document before anything else is checked, so every generated
cell goes through the same checks as a written one, predictions can name it (or a glob of
it), and the pre-registration freezes the same cell list. The points are the cartesian
product of the value lists, in grid order (the last knob varies fastest), appended after
the written cells, sweep by sweep.

Naming rule (every name passes the cell-name check, and none needs quoting in a prediction):
  one knob      SWEEP_VALUE                       kill_0.25
  more knobs    SWEEP_KNOB-VALUE_KNOB-VALUE...    web_frame_rate-0.005_frame_ratio-0.3
KNOB is the last part of the dotted path (the whole path when two knobs of the sweep share
their last part); VALUE is the number as written, without a trailing ".0" (1.0 -> 1) or
an exponent's "+", true/false for booleans, and a string with every character outside
letters, digits and `_.+-` replaced by "_".
"""

from __future__ import annotations

import itertools
import math
import re
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ungrok.errors import UngrokError, first_error
from ungrok.experiment.cells import CELL_NAME, CellSpec, SweepSpec, deep_merge, validation_line

Point = dict[str, Any]  # knob path -> value
SweepPoints = dict[str, dict[str, Point]]  # sweep -> cell -> its point
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


# --------------------------------------------------------------------------- names
def value_text(v: Any) -> str:
    """A knob value as it appears in a cell name (see the module docstring)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        text = repr(v).replace("e+", "e")
        return text.removesuffix(".0")
    if isinstance(v, int):
        return str(v)
    return _UNSAFE.sub("_", str(v))


def knob_labels(knobs: list[str]) -> dict[str, str]:
    """Each knob's label in a name: its last part, or the whole path where two would share it."""
    last = [k.rsplit(".", 1)[-1] for k in knobs]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(knobs, last, strict=True)}


def cell_name(sweep: str, point: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    if len(point) == 1:
        return f"{sweep}_{value_text(next(iter(point.values())))}"
    return "_".join([sweep, *(f"{labels[k]}-{value_text(v)}" for k, v in point.items())])


def sweep_points(sweeps: Mapping[str, SweepSpec]) -> SweepPoints:
    """sweep -> {generated cell: {knob: value}}, in expansion order (a pure function of the grids)."""
    out: SweepPoints = {}
    for name, sw in sweeps.items():
        knobs = list(sw.grid)
        labels = knob_labels(knobs)
        out[name] = {}
        for values in itertools.product(*(sw.grid[k] for k in knobs)):
            point = dict(zip(knobs, values, strict=True))
            out[name].setdefault(cell_name(name, point, labels), point)
    return out


# --------------------------------------------------------------------------- knobs
def _section(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field holds (through Optional), or None for a single setting."""
    options = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    for t in options:
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def knob_problem(knob: str) -> str | None:
    """Why a dotted path is not one setting of a cell (None when it is one)."""
    parts = knob.split(".")
    if not all(parts):
        return "a knob path has no empty parts"
    if parts[:2] == ["train", "seed"]:
        return "give seeds at the top level (seeds:), not as a knob"
    model: type[BaseModel] = CellSpec
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            where = ".".join(parts[:depth]) or "a cell"
            return f"unknown knob path: {where} has no setting {part!r}"
        if model is CellSpec and part == "train":
            from ungrok.train.config import TrainConfig  # a cell's train is a TrainConfig mapping

            sub: type[BaseModel] | None = TrainConfig
        else:
            sub = _section(field.annotation)
        last = depth == len(parts) - 1
        if sub is None:
            if last:
                return None
            return f"unknown knob path: {'.'.join(parts[: depth + 1])} is a single setting"
        if last:
            return f"{knob} is a section; name one of its settings ({', '.join(sub.model_fields)})"
        model = sub
    return None  # pragma: no cover - the loop returns at the last part


def _values_problem(values: list[Any]) -> str | None:
    if not values:
        return "empty value list; give at least one value"
    bad = [v for v in values if not isinstance(v, (bool, int, float, str))]
    if bad:
        return f"value {bad[0]!r} is not a number, a string or true/false"
    if len({(type(v), v) for v in values}) != len(values):
        return "a value is listed twice"
    return None


def _nested(knob: str, value: Any) -> dict[str, Any]:
    for part in reversed(knob.split(".")):
        value = {part: value}
    return value


# --------------------------------------------------------------------------- expansion
def parse_sweeps(doc: Any, where: str) -> dict[str, SweepSpec]:
    """The `sweeps:` section validated on its own: names, knob paths and value lists."""
    if not isinstance(doc, Mapping):
        raise UngrokError(f"{where}: sweeps: expected a mapping of sweep name -> {{base, grid}}")
    out = {}
    for name, raw in doc.items():
        at = f"{where}: sweeps.{name}"
        if not isinstance(name, str) or not CELL_NAME.match(name):
            raise UngrokError(f"{at}: a sweep name starts its cells' names; use letters, digits, '_', '.', '+' "
                              "or '-'")
        try:
            sw = SweepSpec.model_validate(raw if raw is not None else {})
        except ValidationError as e:
            raise UngrokError(validation_line(e, at)) from None
        if not sw.grid:
            raise UngrokError(f"{at}.grid: name at least one knob (a dotted path such as kill.rate)")
        for knob, values in sw.grid.items():
            why = knob_problem(knob) or _values_problem(values)
            if why is not None:
                raise UngrokError(f"{at}.grid.{knob}: {why}")
        out[name] = sw
    return out


def _check_cell(sweep: str, cell: str, doc: dict[str, Any], point: Point, where: str) -> None:
    """A generated cell must pass the cell schema; a rejected value is named by its knob."""
    at = f"{where}: sweeps.{sweep}"
    try:
        CellSpec.model_validate(doc)
    except ValidationError as e:
        loc, msg = first_error(e)
        if loc in point:
            raise UngrokError(f"{at}.grid.{loc}: value {point[loc]!r}: {msg}") from None
        coords = ", ".join(f"{k}={v}" for k, v in point.items())
        raise UngrokError(validation_line(e, f"{at}: cell {cell} ({coords})")) from None
    for knob, v in point.items():
        if knob.startswith("train."):
            from ungrok.train.config import parse_config

            parse_config(_nested(knob.removeprefix("train."), v), f"{at}.grid.{knob}: value {v!r}")


def expand_sweeps(sweeps: Mapping[str, SweepSpec], declared: Mapping[str, Any], where: str
                  ) -> tuple[dict[str, dict[str, Any]], SweepPoints]:
    """(generated cells as cell documents, their points); a name that is already taken is an error."""
    cells: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    points = sweep_points(sweeps)
    for name, sw in sweeps.items():
        made = points[name]
        if len(made) < math.prod(len(v) for v in sw.grid.values()):
            raise UngrokError(f"{where}: sweeps.{name}: two points get the same cell name; make the values "
                              "differ in letters, digits, '_', '.', '+' or '-'")
        for cell, point in made.items():
            if cell in declared:
                raise UngrokError(f"{where}: sweeps.{name}: its cell {cell!r} is already a cell of cells:; "
                                  "rename the sweep or the cell")
            if cell in owner:
                raise UngrokError(f"{where}: sweeps.{owner[cell]} and sweeps.{name} both make cell {cell!r}; "
                                  "rename one of the sweeps")
            doc = sw.base
            for knob, v in point.items():
                doc = deep_merge(doc, _nested(knob, v))
            _check_cell(name, cell, doc, point, where)
            cells[cell] = doc
            owner[cell] = name
    return cells, points


def with_sweep_cells(doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The experiment document with each sweep's cells added after the written ones."""
    out = dict(doc)
    declared = out.get("cells") or {}
    if out.get("sweeps") is None or not isinstance(declared, Mapping):
        return out  # nothing to add, or cells the schema check will name
    generated, _ = expand_sweeps(parse_sweeps(out["sweeps"], where), declared, where)
    out["cells"] = {**declared, **generated}
    return out
