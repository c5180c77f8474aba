"""The report in a real browser: headless Chromium decodes every figure and renders every section.

Needs the Debian `chromium` package (.ci/ensure-chromium installs it). Under CI (CI=true,
which .ci/run sets) a missing browser fails the test; locally it skips with the reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ungrok.report.browser import browser_required, find_chromium, render_check, screenshot
from ungrok.report.html import SECTIONS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def chromium():
    exe = find_chromium()
    if exe is None:
        if browser_required():
            pytest.fail("CI=true but chromium is not installed; .ci/ensure-chromium should have installed it")
        pytest.skip("chromium is not installed; run .ci/ensure-chromium to enable the real-browser test")
    return exe


def test_ci_is_what_makes_a_missing_browser_an_error():
    assert browser_required({"CI": "true"}) and browser_required({"CI": "TRUE"}) and browser_required({"CI": "1"})
    assert not browser_required({}) and not browser_required({"CI": ""}) and not browser_required({"CI": "false"})
    # .ci/run, what CI runs, sets it before `make test`, whatever the CI service sets
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert lines.index("export CI=true") < lines.index("make test")


@pytest.mark.parametrize("ci", ["true", ""])
def test_without_chromium_the_browser_test_fails_in_ci_and_skips_elsewhere(ci):
    env = {**os.environ, "CI": ci, "UNGROK_CHROMIUM": "/nonexistent/chromium", "OMP_NUM_THREADS": "1"}
    test = "tests/report/test_browser.py::test_phase_diagram_renders_after_the_focal_rule"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-rfEs",
                           test], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    if ci:  # an error at setup: the run fails, nothing is skipped
        assert proc.returncode == 1 and "Failed: CI=true but chromium is not installed" in text, text
        assert "SKIPPED" not in text, text
    else:
        assert proc.returncode == 0 and "SKIPPED" in text, text
        assert "chromium is not installed; run .ci/ensure-chromium" in text, text


def test_every_figure_renders(chromium, shared_data, shared_report):
    n_img = len(re.findall(r"<img ", shared_report.read_text()))
    check = render_check(shared_report)
    assert check["title"] == f"ungrok report: {shared_data.name}"
    assert check["sections"] == [sid for sid, _, _ in SECTIONS]
    assert len(check["images"]) == n_img == 4
    for im in check["images"]:
        assert im["complete"], im["alt"]
        assert im["width"] > 0 and im["height"] > 0, im["alt"]  # decoded
        if not im["folded"]:  # a closed <details> is not laid out; opened, below
            assert im["shown_width"] > 0 and im["shown_height"] > 0, im["alt"]  # laid out
    assert check["page_height"] > 2000


def test_focal_rule_leads_above_the_fold_and_other_rules_are_folded(chromium, shared_html, tmp_path):
    (tmp_path / "report.html").write_text(shared_html)
    check = render_check(tmp_path / "report.html", width=1280, height=900)
    assert check["sections"][:2] == ["focal", "focal_trajectories"]
    focal = check["place"]["focal"]
    assert 0 < focal["top"] < focal["bottom"] <= check["viewport_height"]  # the whole headline, unscrolled
    assert check["place"]["focal_trajectories"]["top"] < check["viewport_height"]  # and the figure starts
    assert check["details"] == [{"section": "others", "open": False}]
    assert [im["alt"] for im in check["images"] if im["folded"]] == ["trajectories of det_an_choice"]
    # opened, the folded figures lay out like every other
    (tmp_path / "open.html").write_text(
        shared_html.replace('<details class="others">', '<details class="others" open>')
    )
    opened = render_check(tmp_path / "open.html")
    assert opened["details"] == [{"section": "others", "open": True}]
    for im in opened["images"]:
        assert not im["folded"] and im["shown_width"] > 0 and im["shown_height"] > 0, im["alt"]


def test_check_catches_a_broken_figure(chromium, shared_html, tmp_path):
    # The same check on a report whose first image is corrupt must see it: the test can fail.
    html = shared_html
    html = html.replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAAA", 1)
    (tmp_path / "broken.html").write_text(html)
    widths = [im["width"] for im in render_check(tmp_path / "broken.html")["images"]]
    assert widths[0] == 0 and all(w > 0 for w in widths[1:])


def test_screenshot_is_not_blank(chromium, shared_report, tmp_path):
    png = screenshot(shared_report, tmp_path / "shots" / "top.png", width=1000, height=900)
    im = Image.open(png).convert("RGB")
    assert im.size == (1000, 900)
    px = np.asarray(im).reshape(-1, 3)
    assert len(np.unique(px, axis=0)) > 50
    assert (px < 100).all(axis=1).mean() > 0.005  # dark text on the page


def test_phase_diagram_renders_after_the_focal_rule(chromium, tmp_path):
    from report.synthetic import SWEEPS, add_sweeps, make_run_dir
    from ungrok.report import build_report, load_run

    report = build_report(load_run(add_sweeps(make_run_dir(tmp_path))), tmp_path / "report.html")
    check = render_check(report)
    ids = [sid for sid, _, _ in SECTIONS]
    at = ids.index("monitor") + 1  # the focal rule's headline, trajectories and warnings, then its map
    assert check["sections"] == [*ids[:at], "phase", *ids[at:]]
    phase = [im for im in check["images"] if im["alt"].startswith("phase diagram")]
    assert [im["alt"] for im in phase] == [f"phase diagram of sweep {s}" for s in SWEEPS]
    for im in phase:
        assert im["complete"] and im["width"] > 0 and im["height"] > 0, im["alt"]  # decoded
        assert im["shown_width"] > 0 and im["shown_height"] > 0, im["alt"]  # laid out
