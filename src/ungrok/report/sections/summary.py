"""The summary section: what the runs show, one counted sentence each (facts.summary_sentences)."""

from __future__ import annotations

from markupsafe import Markup

from ungrok.report.common import items
from ungrok.report.data import ReportData
from ungrok.report.facts import summary_sentences


def section_summary(data: ReportData) -> Markup:
    return items(summary_sentences(data), cls="summary")
