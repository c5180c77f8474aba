"""Reading a user's JSON file into a pydantic model, with one-line errors naming the file and field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ungrok.errors import UngrokError, first_error_line

M = TypeVar("M", bound=BaseModel)


def read_json(path: str | Path, what: str, *, frozen: bool = False) -> Any:
    """Parse a JSON file; a missing file or bad JSON is one UngrokError line. `frozen`: ungrok
    wrote the file and nobody should have touched it, so bad JSON means it was modified."""
    p = Path(path)
    if not p.is_file():
        raise UngrokError(f"{p}: {what} not found")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        if frozen:
            raise UngrokError(f"{p}: the {what} is not valid JSON any more ({e}); it was modified") from None
        raise UngrokError(f"{p}: the {what} is not valid JSON ({e})") from None


def load_json_model(path: str | Path, model: type[M], what: str) -> M:
    """Parse and validate a JSON file; a missing file, bad JSON or a bad field is one UngrokError line."""
    p = Path(path)
    data = read_json(p, what)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise UngrokError(first_error_line(e, f"{p}: {what}")) from None


def iter_jsonl(text: str, label: str) -> Iterator[tuple[str, Any]]:
    """(`label:line`, value) for every non-blank line of JSONL text; a line that does not parse
    raises one UngrokError naming it."""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{label}:{n}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as e:
            raise UngrokError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
