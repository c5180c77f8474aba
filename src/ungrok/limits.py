"""Bounds on numeric arguments, checked before any work, so a bad value is one line, not a
wrong result with exit 0 or a traceback deep inside numpy."""

from __future__ import annotations

import shutil
from pathlib import Path

from ungrok.errors import UngrokError

# Seeds reach numpy (any non-negative int) and torch (a signed 64-bit int), sometimes plus a
# small offset (phase B trains with seed + 1): the common range, with room for the offsets.
MAX_SEED = 2**62
# The most items one rule may expand to: far above any real battery, far below a hang.
MAX_EXPANDED_ITEMS = 1_000_000


def check_seed(seed: int | None, flag: str = "--seed") -> int | None:
    """A seed every generator accepts: 0 <= seed <= 2**63 - 1."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UngrokError(f"{flag} {seed}: a seed must be an integer from 0 to 2**62 ({MAX_SEED})")
    return seed


def check_at_least(value: int | None, low: int, flag: str) -> int | None:
    """An integer count (workers, tokens per task) of at least `low`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UngrokError(f"{flag} {value}: must be an integer >= {low}")
    return value


def check_disk_room(dest: str | Path, nbytes: int, what: str) -> None:
    """Refuse an output that cannot fit on the disk that would hold it (before writing any of it)."""
    anc = Path(dest).absolute()
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        return  # the output guard names this case
    free = shutil.disk_usage(anc).free
    if nbytes > free:
        raise UngrokError(
            f"{what} needs {nbytes:,} bytes but {anc} has {free:,} free; ask for less"
        )
