"""Progress bars for long work, quiet when output is not a terminal (CI, pipes)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def output_console() -> Console:
    """Stdout for tables and results: the terminal's width, or wide lines when piped (CI logs, files)."""
    c = Console()
    return c if c.is_terminal else Console(width=160)


@contextlib.contextmanager
def bar(description: str, total: float | None) -> Iterator[Progress]:
    """A rich progress bar with one task named "main"; advance with p.advance(p.task_ids[0], n)."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as p:
        p.add_task(description, total=total)
        yield p
