"""The report package's shape: sections independent of each other (no import cycle anywhere:
tests/test_imports.py), and every text escaped by the templates (a rule or cell named with
`<script>` or `&` shows as text, never as markup)."""

from __future__ import annotations

import json

from import_graph import import_graph as whole_graph
from report.synthetic import make_run_dir
from ungrok.report import load_run, render_html
from ungrok.report.html import PAGE

PACKAGE = "ungrok.report"


def import_graph() -> dict[str, set[str]]:
    """The report package's part of the import graph (tests/import_graph.py; tests/test_imports.py
    checks the whole package for cycles, the report's modules included)."""
    return {
        m: {d for d in deps if d.startswith(PACKAGE)} for m, deps in whole_graph().items() if m.startswith(PACKAGE)
    }


def test_sections_import_no_section_and_not_the_page():
    """A section builds on common.py and the data below it, so sections stay independent."""
    graph = import_graph()
    for m, deps in graph.items():
        if m.startswith(f"{PACKAGE}.sections."):
            assert f"{PACKAGE}.html" not in deps, m
            assert not {d for d in deps if d.startswith(f"{PACKAGE}.sections.")}, m
        elif m not in (f"{PACKAGE}.html", PACKAGE):
            assert not {d for d in deps if d.startswith(f"{PACKAGE}.sections")}, m


EVIL_RULE = "<script>alert(1)</script>&rule"
EVIL_CELL = "a&b<i>"


def test_rule_and_cell_names_are_escaped(tmp_path):
    """Names come from the run's files; the templates escape them wherever they land (grid,
    support, ladders, focal rule, notes), so no cell has to be escaped by hand."""
    run_dir = make_run_dir(tmp_path)
    exp = json.loads((run_dir / "experiment.json").read_text())
    exp["cells"][EVIL_CELL] = {"kind": "built"}
    (run_dir / "experiment.json").write_text(json.dumps(exp))
    fates = json.loads((run_dir / "fates.json").read_text())
    rec = dict(fates["records"][0], family=EVIL_RULE, cell=EVIL_CELL)
    fates["records"].append(rec)
    (run_dir / "fates.json").write_text(json.dumps(fates))
    html = render_html(load_run(run_dir))
    assert "<script" not in html.lower() and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;rule" in html
    assert "a&amp;b&lt;i&gt;" in html
    assert html.count('<section id="') == len([s for s in PAGE if s[0] not in ("phase", "pilot", "hub", "mechanism")])
