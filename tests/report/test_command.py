"""`ungrok report RUN_DIR [--out FILE] [--force]` through a typer app built with register()."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from ungrok.commands.report import register
from ungrok.errors import UngrokError


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep `report` a sub-command, as in the real CLI
        pass

    return app


def _tiny_run(root):
    """A run directory with only experiment.json: the command's plumbing, not the figures."""
    run_dir = root / "run"
    run_dir.mkdir()
    (run_dir / "experiment.json").write_text(json.dumps({"name": "tiny", "cells": {"a": {"kind": "built"}},
                                                         "seeds": [1]}))
    return run_dir


def test_writes_default_and_refuses_overwrite(tmp_path):
    run_dir = _tiny_run(tmp_path)
    runner = CliRunner()
    res = runner.invoke(_app(), ["report", str(run_dir)])
    assert res.exit_code == 0, res.output
    out = run_dir / "report.html"
    assert out.read_text().startswith("<!DOCTYPE html>") and "ungrok report: tiny" in out.read_text()
    assert "wrote" in res.output
    before = out.stat().st_mtime_ns
    res = runner.invoke(_app(), ["report", str(run_dir)])
    assert res.exit_code != 0 and isinstance(res.exception, UngrokError)
    assert "exists; use --force" in str(res.exception)
    assert out.stat().st_mtime_ns == before
    res = runner.invoke(_app(), ["report", str(run_dir), "--force"])
    assert res.exit_code == 0, res.output


def test_out_option_and_notes_printed(tmp_path):
    run_dir = _tiny_run(tmp_path)
    (run_dir / "scoreboard.json").write_text("{")
    target = tmp_path / "elsewhere" / "r.html"
    res = CliRunner().invoke(_app(), ["report", str(run_dir), "--out", str(target)])
    assert res.exit_code == 0, res.output
    assert target.is_file() and not (run_dir / "report.html").exists()
    assert "note: scoreboard.json is not valid JSON" in res.output


def test_bad_run_dir_is_one_user_error(tmp_path):
    res = CliRunner().invoke(_app(), ["report", str(tmp_path / "missing")])
    assert isinstance(res.exception, UngrokError)
    assert "run directory not found" in str(res.exception)
