"""User-facing errors: the CLI prints one line naming the problem and exits 2."""

from __future__ import annotations


class UngrokError(Exception):
    """Bad input or a refused operation; the message is shown to the user as it is."""

    exit_code = 2


class TasksFailed(UngrokError):
    """The work ran to the end and what succeeded is written, but some of its tasks failed
    (not bad input): the one line names them and the exit status is 1."""

    exit_code = 1
