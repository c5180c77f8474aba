"""User-facing errors: the CLI prints one line naming the problem and exits 2."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class UngrokError(Exception):
    """Bad input or a refused operation; the message is shown to the user as it is."""

    exit_code = 2


class TasksFailed(UngrokError):
    """The work ran to the end and what succeeded is written, but some of its tasks failed
    (not bad input): the one line names them and the exit status is 1."""

    exit_code = 1


def first_error(err: ValidationError, *, top: str = "", raw: bool = False) -> tuple[str, str]:
    """Where and what of pydantic's first validation error: its location as a dotted path (`top`
    when the error is about the document itself) and its message without pydantic's
    "Value error, " prefix (raw: as pydantic wrote it)."""
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"]) or top
    msg = first["msg"] if raw else first["msg"].removeprefix("Value error, ")
    return loc, msg


def first_error_line(err: ValidationError, where: str, *, top: str = "top level", raw: bool = False) -> str:
    """pydantic's first validation error as one line, `WHERE: LOCATION: MESSAGE` (see first_error)."""
    loc, msg = first_error(err, top=top, raw=raw)
    return f"{where}: {loc}: {msg}"


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none: how a
    library error is quoted inside one of our own lines."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def failure_line(e: BaseException) -> str:
    """One line for a task that raised: our own message as it is, anything else with its type."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    return first if isinstance(e, UngrokError) else f"{type(e).__name__}: {first}".rstrip(": ")
