"""Shared fixtures: the paper's reference data (skipped cleanly when absent) and rule dirs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFERENCE = SHARED / "reference"


def reference_battery(version: str) -> list[dict]:
    path = REFERENCE / "batteries" / version / "battery.jsonl"
    if not path.is_file():
        pytest.skip(f"reference battery {path} not available")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reference_tokenizer_path(name: str) -> Path:
    path = REFERENCE / "tokenizers" / name
    if not path.is_file():
        pytest.skip(f"reference tokenizer {path} not available")
    return path


@pytest.fixture
def write_rule(tmp_path: Path):
    """Write a YAML file (dedented) into a fresh user rules dir and return its path."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()

    def _write(name: str, text: str) -> Path:
        path = rules_dir / name
        path.write_text(textwrap.dedent(text))
        return path

    return _write
