"""experiment: one YAML file for a grid of corpora x edits x seeds, run resumably by `ungrok run`.

    from ungrok.experiment import load_experiment, run_experiment
    run_experiment("examples/demo.yaml", "runs/demo", workers=2)

Names are imported on first use, so reading this package does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CellSpec": "cells",
    "Experiment": "spec",
    "ExperimentSpec": "spec",
    "KillSpec": "cells",
    "RescueSpec": "cells",
    "SweepSpec": "cells",
    "expand_sweeps": "sweep",
    "deep_merge": "cells",
    "load_experiment": "spec",
    "RunJob": "tasks",
    "run_cell_seed": "tasks",
    "RunSummary": "run",
    "make_executor": "run",
    "parse_sets": "run",
    "run_experiment": "run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ungrok.experiment' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ungrok.experiment.{_EXPORTS[name]}"), name)
