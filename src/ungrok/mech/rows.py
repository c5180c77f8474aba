"""Rows in the mechanism store's long format (COMMON.md "Mechanism store"), one per value."""

from __future__ import annotations

import math
from typing import Any


def mech_row(
    run: str,
    step: int,
    rule: str,
    instrument: str,
    component: str,
    metric: str,
    value: float | None,
    sha: str,
) -> dict[str, Any]:
    """One value; an undefined one (None) is stored as NaN so every row keeps a float."""
    v = math.nan if value is None else float(value)
    return {
        "run": run,
        "step": int(step),
        "rule": rule,
        "instrument": instrument,
        "component": component,
        "metric": metric,
        "value": v,
        "prompts_sha256": sha,
    }
