"""Calling `ungrok` in-process from tests: exit code and output, and the one-line error contract."""

from __future__ import annotations

from ungrok.cli import main


def run(args, capsys):  # noqa: ANN001, ANN201
    """(exit code, stdout, stderr) of `ungrok ARGS`."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code or 0, captured.out, captured.err


def one_line_error(code: int, err: str) -> str:
    """The single stderr line of a bad-input exit (code 2, no traceback)."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
