"""Reading a user's YAML file, with one-line errors for a missing or malformed file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ungrok.errors import UngrokError


def load_yaml(path: str | Path, what: str = "file") -> Any:
    """Parse a YAML file; an empty file is an empty mapping."""
    p = Path(path)
    if not p.is_file():
        raise UngrokError(f"{p}: {what} not found")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise UngrokError(f"{p}: not UTF-8 text (byte {e.start}); a {what} is YAML text") from None
    except yaml.YAMLError as e:
        raise UngrokError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
