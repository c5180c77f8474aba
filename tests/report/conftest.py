"""Fixtures: the SYNTHETIC run directory (made-up numbers; see synthetic.py), its data and its report.

Rendering the full report draws every figure (about 2 s on one core), so read-only tests
share one session-wide rendering; tests that edit the run directory get their own copy.
"""

from __future__ import annotations

import pytest

from report.synthetic import make_run_dir
from ungrok.report import build_report, load_run


@pytest.fixture
def run_dir(tmp_path):
    return make_run_dir(tmp_path)


@pytest.fixture
def data(run_dir):
    return load_run(run_dir)


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory):
    """Read-only: do not modify."""
    return load_run(make_run_dir(tmp_path_factory.mktemp("shared")))


@pytest.fixture(scope="session")
def shared_report(shared_data, tmp_path_factory):
    """The full synthetic report, written once; read-only."""
    return build_report(shared_data, tmp_path_factory.mktemp("report") / "report.html")


@pytest.fixture(scope="session")
def shared_html(shared_report):
    return shared_report.read_text(encoding="utf-8")
