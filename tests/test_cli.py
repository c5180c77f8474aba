"""The CLI's contract: bad input is one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ungrok.cli import main


def run(args, capsys):
    code = 0
    try:
        main(args)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error:")
    return lines[0]


def test_corpus_build_and_stats_roundtrip(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("she ran home.\n\nhe sat down.\n")
    code, out, _ = run(
        ["corpus", "build", str(tmp_path / "a.txt"), "--out", str(tmp_path / "c"), "--vocab-size", "300"],
        capsys,
    )
    assert code in (0, None)
    assert "built" in out and "2 documents" in out
    code, out, _ = run(["corpus", "stats", str(tmp_path / "c")], capsys)
    assert code in (0, None) and "every sha256 matches" in out


@pytest.mark.parametrize(
    ("setup", "args", "needle"),
    [
        (
            lambda t: (t / "e.txt").write_text(""),
            ["corpus", "build", "{t}/e.txt", "--out", "{t}/o"],
            "no documents",
        ),
        (lambda t: None, ["corpus", "build", "{t}/none.txt", "--out", "{t}/o"], "input not found"),
        (
            lambda t: (t / "d.jsonl").write_text('{"x": 1}\n'),
            ["corpus", "build", "{t}/d.jsonl", "--out", "{t}/o"],
            "no 'text' field",
        ),
        (lambda t: None, ["corpus", "stats", "{t}"], "not a corpus folder"),
        (
            lambda t: (t / "a.txt").write_text("hi"),
            ["corpus", "build", "{t}/a.txt", "--out", "{t}/o", "--txt-mode", "lines"],
            "--txt-mode",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, setup, args, needle):
    setup(tmp_path)
    code, _, err = run([a.format(t=tmp_path) for a in args], capsys)
    assert code == 2
    assert needle in _one_line_error(err)


def test_tampered_corpus_fails_stats(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("she ran home.\n\nhe sat down.\n")
    run(
        ["corpus", "build", str(tmp_path / "a.txt"), "--out", str(tmp_path / "c"), "--vocab-size", "300"],
        capsys,
    )
    shard = tmp_path / "c" / "shard_00000.bin"
    shard.write_bytes(bytes(reversed(shard.read_bytes())))
    code, _, err = run(["corpus", "stats", str(tmp_path / "c")], capsys)
    assert code == 2 and "does not match manifest" in _one_line_error(err)


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "ungrok.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "corpus" in r.stdout and "rules" in r.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["bogusverb"], "No such command 'bogusverb'"),
        (["prereg", "pilot-recrd", "x"], "Did you mean 'pilot-record'?"),
        (["run", "--bogus-option", "x"], "No such option: --bogus-option"),
        (["run"], "Missing argument"),
    ],
)
def test_mistyped_command_or_option_is_one_line_exit_2(args, needle):
    """Through the installed console script, as a user types it: no traceback, one line, exit 2."""
    exe = [sys.executable, "-c", "from ungrok.cli import main; main()"]
    out = subprocess.run([*exe, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1 and needle in lines[0] and lines[0].startswith("error:")
