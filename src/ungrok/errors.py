"""User-facing errors: the CLI prints one line naming the problem and exits 2."""

from __future__ import annotations


class UngrokError(Exception):
    """Bad input or a refused operation; the message is shown to the user as it is."""

    exit_code = 2
