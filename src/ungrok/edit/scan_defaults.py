"""The empirical cue scan's default thresholds (docs/method.md §6.4), in one place.

`ungrok.edit.scan` owns the scan and uses these; they live in this import-free module so
the CLI's option defaults and the experiment schema can name them without paying for
numba (the scan's import), and so the three can never drift apart.
"""

from __future__ import annotations

MIN_EVENTS = 200  # decided events (rule + prior) a cue needs
MIN_RATIO = 3.0  # smoothed (rule+1)/(prior+1) ratio a cue needs
