"""Progress bars for long work, quiet when output is not a terminal (CI, pipes)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

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


def optional_bar(enabled: bool, description: str, total: float | None) -> Any:
    """A context manager yielding advance(n=1): a progress bar when enabled (and on a terminal),
    else a no-op."""
    if not enabled:
        return contextlib.nullcontext(lambda _n=1: None)

    @contextlib.contextmanager
    def cm() -> Iterator[Callable[..., None]]:
        with bar(description, total) as p:
            yield lambda n=1: p.advance(p.task_ids[0], n)

    return cm()
