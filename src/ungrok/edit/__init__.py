"""Corpus interventions: kill a rule's support at a rate, rescue it at a dose, and the gates
that decide whether an edited corpus (and a cell trained on it) may be used.

Names are imported on first use, so `from ungrok.edit import intervention_gate` does not
pay for numba or the support engine.
"""

from __future__ import annotations

from ungrok.lazy import lazy_getattr

_EXPORTS = {
    "kill_corpus": "kill",
    "CueList": "kill",
    "build_ladder": "ladder",
    "build_rescue": "rescue",
    "scan_cues": "scan",
    "load_cue_file": "scan",
    "check_edited": "checks",
    "load_forbidden": "checks",
    "intervention_gate": "validity",
    "GateDecision": "validity",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
