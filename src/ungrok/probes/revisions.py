"""Training steps from hub revision names, kept free of torch so naming a grid costs no import."""

from __future__ import annotations

import re

from ungrok.errors import UngrokError

_STEP = re.compile(r"(?:^|-)step(\d+)(?:-|$)")


def parse_step(revision: str) -> int | None:
    """The training step a revision names, else None.

    A `stepN` part of a dash-separated name: Pythia's "step1000", OLMo's
    "step99000-tokens415B", OLMo-2's "stage1-step140000-tokens294B"."""
    m = _STEP.search(revision)
    return int(m.group(1)) if m else None


def revision_step(revision: str, index: int) -> int:
    """The training step a revision names, else its index in the list."""
    step = parse_step(revision)
    return index if step is None else step


def revision_steps(revisions: list[str]) -> list[int]:
    """Steps of the given revisions; two revisions on one step would be ambiguous rows."""
    steps = [revision_step(r, i) for i, r in enumerate(revisions)]
    seen: dict[int, str] = {}
    for r, s in zip(revisions, steps, strict=True):
        if s in seen:
            raise UngrokError(f"revisions {seen[s]!r} and {r!r} both map to step {s}")
        seen[s] = r
    return steps
