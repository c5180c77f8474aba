"""Corpus interventions: kill a rule's support at a rate, rescue it at a dose, and the gates
that decide whether an edited corpus (and a cell trained on it) may be used.

Names are imported on first use, so `from ungrok.edit import intervention_gate` does not
pay for numba or the support engine.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "kill_corpus": "ungrok.edit.kill",
    "CueList": "ungrok.edit.kill",
    "build_ladder": "ungrok.edit.ladder",
    "build_rescue": "ungrok.edit.rescue",
    "scan_cues": "ungrok.edit.scan",
    "load_cue_file": "ungrok.edit.scan",
    "check_edited": "ungrok.edit.checks",
    "load_forbidden": "ungrok.edit.checks",
    "intervention_gate": "ungrok.edit.validity",
    "GateDecision": "ungrok.edit.validity",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ungrok.edit' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
