"""report.html: phase grid letters and colours match the records; self-contained; notes for missing parts."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import pytest
from PIL import Image

from report.synthetic import CELLS, FOCAL, OTHER
from report.tables import section
from ungrok.errors import UngrokError
from ungrok.report import CellInfo, ReportData, build_report, load_run, render_html
from ungrok.report.common import FATE_COLORS
from ungrok.report.sections.grid import section_grid

# Hand-worked from synthetic.py: letter, fate class, gate failed?
EXPECTED_GRID = {
    FOCAL: {
        "high": [("R", "recovered", False), ("R", "recovered", False)],
        "high_k50": [("R", "recovered", False), ("D", "displaced", False)],
        "high_k100": [("N", "never", False), ("N", "never", False)],
        "low": [("D", "displaced", False), ("d", "displaced", True)],
        "low_r1": [("R", "recovered", False), ("N", "never", False)],
    },
    OTHER: {c: [("R", "recovered", False)] * 2 for c in CELLS},
}


class GridParser(HTMLParser):
    """Collects table.grid: header cells, and per row its rule and per-cell fate spans."""

    def __init__(self):
        super().__init__()
        self.in_grid = self.in_th = self.in_span = False
        self.header: list[str] = []
        self.rows: list[list] = []
        self.cell: list | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("class") == "grid":
            self.in_grid = True
        if not self.in_grid:
            return
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []
            self.rows[-1].append(self.cell)
            self.in_th = tag == "th"
        elif tag == "span" and "fate" in (a.get("class") or "").split():
            self.in_span = True
            self.cell.append(["", a["class"].split(), a.get("title", "")])

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_grid = False
        if tag == "span":
            self.in_span = False

    def handle_data(self, text):
        if self.in_grid and self.cell is not None:
            if self.in_span:
                self.cell[-1][0] += text
            elif not self.cell or isinstance(self.cell[-1], str):
                self.cell.append(text)


def parse_grid(html: str):
    p = GridParser()
    p.feed(html)
    header = [c[0] for c in p.rows[0][1:]]
    grid = {}
    for row in p.rows[1:]:
        rule = row[0][0].split()[0]
        grid[rule] = dict(zip(header, [[s for s in cell if isinstance(s, list)] for cell in row[1:]], strict=True))
    return header, grid


def test_phase_grid_letters_and_colours_match_records(shared_html):
    header, grid = parse_grid(shared_html)
    assert header == list(CELLS)
    assert set(grid) == set(EXPECTED_GRID)
    for rule, cells in EXPECTED_GRID.items():
        for cell, seeds in cells.items():
            got = grid[rule][cell]
            assert [s[0] for s in got] == [letter for letter, _, _ in seeds], (rule, cell)
            for (_letter, fate, failed), (_, classes, title) in zip(seeds, got, strict=True):
                assert f"fate-{fate}" in classes, (rule, cell, classes)
                assert ("gate-fail" in classes) == failed
                assert ("agree gate failed" in title) == failed
    # and each fate class gets its own colour in the stylesheet
    for fate, colour in FATE_COLORS.items():
        assert f".fate-{fate.lower()} {{ --c: {colour}; }}" in shared_html
    assert len(set(FATE_COLORS.values())) == len(FATE_COLORS)


def test_missing_seed_shows_a_dot(run_dir):
    import json

    doc = json.loads((run_dir / "fates.json").read_text())
    doc["records"] = [r for r in doc["records"] if not (r["cell"] == "high" and r["seed"] == 2)]
    (run_dir / "fates.json").write_text(json.dumps(doc))
    _, grid = parse_grid(section_grid(load_run(run_dir)))
    assert [s[0] for s in grid[FOCAL]["high"]] == ["R", "·"]
    assert "missing" in grid[FOCAL]["high"][1][1]


def test_self_contained_and_escaped(shared_data, shared_html):
    html = shared_html
    assert "<script" not in html.lower()  # the scoreboard reason holds "<script>": it must be escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", html, re.I)
    assert "<link" not in html.lower() and "@import" not in html
    srcs = re.findall(r'<img src="([^"]+)"', html)
    # the focal rule's accuracy + CM figure, the other rule's trajectories (folded), 2 ladders
    assert len(srcs) == 4
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    assert render_html(shared_data) == html  # deterministic


def test_scoreboard_and_support_tables(shared_html):
    html = shared_html
    assert "ab" * 32 in html  # registry hash
    assert '<span class="status status-pass">1 PASS</span>' in html
    assert "falsifiers: 1 of 2 applicable triggered" in html
    assert "<td>triggered</td>" in html and "<td>silent</td>" in html
    support = section(html, "support")
    assert support.count("<h3>") == len(CELLS)
    assert "at risk" in support and "likely lost" in support
    # the forecast's caveat: the paper's registered frequency-theory tests failed
    assert "registered tests of this frequency theory failed (F1" in support and "F2:" in support


def test_missing_optional_inputs_give_section_notes(run_dir):
    for p in run_dir.glob("cells/*/seed*/traj.margins.parquet"):
        p.unlink()
    for p in run_dir.glob("cells/*/support.json"):
        p.unlink()
    for p in run_dir.glob("cells/*/seed*/monitor.jsonl"):
        p.unlink()
    (run_dir / "scoreboard.json").unlink()
    html = render_html(load_run(run_dir))
    assert "No margin tables (traj.margins.parquet) were found" in section(html, "others")
    assert "No support.json in any cell" in section(html, "support")
    assert "No live-monitor logs" in section(html, "monitor")
    assert "No scoreboard.json in this run directory" in section(html, "scoreboard")
    assert html.count("<img ") == 4  # focal and other trajectories, ladders still drawn (accuracy only)
    assert "No rule besides" not in html  # the notes say the tables are missing, not that rules are
    assert "No ladders" not in html


def test_missing_fates_and_trajectories(run_dir):
    (run_dir / "fates.json").unlink()
    for p in run_dir.glob("cells/*/seed*/traj.parquet"):
        p.unlink()
    data = load_run(run_dir)
    html = render_html(data)
    assert "no phase grid" in section(html, "grid")
    assert "No trajectory tables" in section(html, "others")
    assert "there is no focal rule to lead with" in section(html, "focal")
    assert "no dose-response plots" in section(html, "ladders")
    assert "Without fates.json the onset and zero-crossing markers are omitted" in section(html, "others")
    notes = section(html, "notes")
    assert "fates.json is missing" in notes and "traj.parquet is missing for 10 run(s)" in notes
    assert html.count("<img ") == 1  # the CM strip (folded: no rule has a verdict to lead with), no markers


def test_experiment_without_ladders(tmp_path):
    import json

    (tmp_path / "experiment.json").write_text(json.dumps({"name": "one", "cells": {"a": {"kind": "built"}},
                                                          "seeds": [0]}))
    html = render_html(load_run(tmp_path))
    assert "No ladders" in section(html, "ladders")
    assert "cells/a/seed0" in section(html, "notes")


def test_build_report_refuses_to_overwrite(tmp_path):
    data = ReportData(name="tiny", cells={"a": CellInfo("a", "built")}, seeds=[1])
    out = tmp_path / "r" / "report.html"
    assert build_report(data, out) == out
    first = out.read_text()
    out.write_text("keep me")
    with pytest.raises(UngrokError, match="exists; use --force"):
        build_report(data, out)
    assert out.read_text() == "keep me"
    build_report(data, out, force=True)
    assert out.read_text() == first
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary left behind
    with pytest.raises(UngrokError, match="is a directory"):
        build_report(data, tmp_path, force=True)
