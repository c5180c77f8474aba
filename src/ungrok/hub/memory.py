"""Memory around one task: per-task peak RSS, RSS after freeing, GPU peak, and giving memory back.

Peak RSS per task comes from Linux's VmHWM after resetting it (writing "5" to
/proc/self/clear_refs, Linux >= 4.0), so a worker that scores many revisions reports
each task's own peak rather than its lifetime maximum. Where that reset is not
possible the lifetime peak (getrusage) is reported instead, and it can only grow.

Freeing: drop the references; `gc.collect()` only when something loaded is still alive
after that (a reference cycle: a transformers model has none, and a full collection
over torch's ~400k tracked objects costs ~0.2 s, half of a tiny model's whole task);
glibc `malloc_trim(0)` so freed heap pages go back to the OS instead of staying in the
process's arenas (the usual reason RSS climbs across checkpoints although nothing is
referenced any more); and `torch.cuda.empty_cache()` on a GPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import re
import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_LIBC: ctypes.CDLL | None | bool = False  # False: not looked up yet


def _status_mib(field: str) -> float | None:
    try:
        m = re.search(rf"^{field}:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) / 1024 if m else None


def reset_peak_rss() -> bool:
    """Start a new high-water mark for this process; False where the OS does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """Peak resident memory since the last reset (or since the process started)."""
    hwm = _status_mib("VmHWM")
    if hwm is not None:
        return hwm
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024  # macOS reports bytes


def rss_mib() -> float | None:
    """Resident memory now (None where /proc is not available)."""
    return _status_mib("VmRSS")


def _malloc_trim() -> None:
    global _LIBC
    if _LIBC is False:
        name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
        try:
            _LIBC = ctypes.CDLL(name) if name else None
        except OSError:
            _LIBC = None
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


def release_memory(cuda: bool = False, collect: bool = True) -> None:
    """Collect cycles (if asked), hand freed heap pages back to the OS, and empty the CUDA cache."""
    if collect:
        gc.collect()
    _malloc_trim()
    if cuda:
        import torch

        torch.cuda.empty_cache()
