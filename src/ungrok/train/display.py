"""What a run shows while it trains: a rich bar on a terminal, a plain line per checkpoint otherwise."""

from __future__ import annotations

import contextlib


class Display:
    """A rich bar on a terminal; otherwise a plain line at each checkpoint."""

    def __init__(self, enabled: bool, steps: int, start: int):
        from ungrok.progress import bar, console

        self.console = console
        self.enabled = enabled
        self.plain = enabled and not console.is_terminal
        self._ctx = bar("train", steps) if enabled else contextlib.nullcontext()
        self.start, self.steps, self.note = start, steps, ""

    def __enter__(self) -> Display:
        self.p = self._ctx.__enter__()
        if self.p is not None:
            self.p.update(self.p.task_ids[0], completed=self.start)
        return self

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)

    def update(self, step: int, loss: float, tok_s: float, checkpoint: bool) -> None:
        if not self.enabled:
            return
        text = f"step {step + 1}/{self.steps}  loss {loss:.4f}  {tok_s:,.0f} tok/s"
        if self.note:
            text += f"  [yellow]{self.note}[/yellow]"
        if self.p is not None:
            self.p.update(self.p.task_ids[0], completed=step + 1, description=text)
        if self.plain and checkpoint:
            self.console.print(text, highlight=False)
