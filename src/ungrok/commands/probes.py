"""CLI verbs for probes (see cli.py for the shared error handling)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
