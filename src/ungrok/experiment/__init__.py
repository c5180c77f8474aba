"""experiment: one YAML file for a grid of corpora x edits x seeds, run resumably by `ungrok run`.

    from ungrok.experiment import load_experiment, run_experiment
    run_experiment("examples/demo.yaml", "runs/demo", workers=2)

Names are imported on first use, so reading this package does not load torch.
"""

from __future__ import annotations

from ungrok.lazy import lazy_getattr

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
__getattr__ = lazy_getattr(__name__, _EXPORTS)
