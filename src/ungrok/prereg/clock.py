"""UTC timestamps for registrations and reads, with an injectable clock.

Every time the pre-registration compares ("registered before the data were read?") is
written and read here, so tests can drive the order of events with a fake clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from ungrok.errors import UngrokError

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def stamp(clock: Clock = utc_now) -> str:
    """The clock's time as ISO-8601 UTC with microseconds, e.g. 2026-06-10T12:00:00.000000Z."""
    dt = clock()
    if dt.tzinfo is None:
        raise UngrokError("the clock returned a time without a time zone; timestamps must be UTC")
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_stamp(text: str) -> datetime:
    """Inverse of `stamp`; a malformed timestamp is a one-line error."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise UngrokError(f"not a UTC timestamp: {text!r}") from None
    if dt.tzinfo is None:
        raise UngrokError(f"timestamp {text!r} has no time zone")
    return dt
