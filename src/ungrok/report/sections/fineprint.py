"""The fine print at the foot of every report (a run's or a bare hub suite's): the notes on the
inputs and the classifier constants the figures used. Both take anything with `notes` and
`classifier` (ReportData, HubData), so the two pages share them."""

from __future__ import annotations

from typing import Protocol

from markupsafe import Markup

from ungrok.fate.config import ClassifierConfig
from ungrok.report.common import code, items, join, markup, table


class Inputs(Protocol):
    notes: list[str]
    classifier: ClassifierConfig


def section_notes(data: Inputs) -> Markup:
    """Anything missing or unreadable, one item each."""
    if not data.notes:
        return Markup("<p>Every input was present and readable.</p>")
    return items(data.notes)


def section_constants(data: Inputs) -> Markup:
    """The classifier's constants, with the sha256 they hash to."""
    cfg = data.classifier
    rows = [[code(k), v] for k, v in cfg.model_dump(mode="json").items()]
    return join([markup('<p class="meta">Constants of the trajectory classifier and margin instruments used for the '
                        "figures (sha256 <code>{}</code>).</p>", cfg.sha256()),
                 table(["constant", "value"], rows)])
