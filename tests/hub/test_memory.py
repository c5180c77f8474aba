"""Per-task peak RSS: a reset high-water mark forgets memory that was freed before it."""

from __future__ import annotations

import numpy as np
import pytest

from ungrok.hub.memory import peak_rss_mib, release_memory, reset_peak_rss, rss_mib


def test_peak_rss_is_per_task_after_a_reset():
    if not reset_peak_rss() or rss_mib() is None:
        pytest.skip("this OS cannot reset the peak RSS")
    base = rss_mib()
    big = np.ones(40_000_000)  # 305 MiB, every page touched
    assert peak_rss_mib() >= base + 250
    del big
    release_memory()
    assert rss_mib() < base + 100  # handed back to the OS
    reset_peak_rss()
    assert peak_rss_mib() < base + 100  # the next task's peak does not include the freed array
