"""Figures: valid PNGs, and the plotted data equal hand-smoothed values from the fixture."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from report.synthetic import FOCAL, OTHER
from ungrok.report import figures
from ungrok.report.facts import ladders

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _by_gid(fig, gid):
    found = fig.findobj(lambda a: a.get_gid() == gid)
    assert len(found) == 1, f"{gid}: {len(found)} artists"
    return found[0]


def _check_png(png: bytes) -> Image.Image:
    assert png[:8] == PNG_MAGIC
    im = Image.open(io.BytesIO(png))
    im.load()
    assert im.width >= 400 and im.height >= 250
    colours = np.asarray(im.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(colours, axis=0)) > 20  # drawn, not blank
    return im


def test_pngs_are_valid(shared_html):
    # the report embeds figures.to_png of the focal, trajectory and dose-response figures as it is
    srcs = re.findall(r'<img src="data:image/png;base64,([^"]+)"', shared_html)
    assert len(srcs) == 4  # the focal rule's accuracy + CM, the other rule's trajectories, 2 ladders
    for src in srcs:
        _check_png(base64.b64decode(src))


def test_png_bytes_are_deterministic(shared_data):
    lad = ladders(shared_data)[1]
    def png() -> bytes:
        return figures.to_png(figures.dose_response_figure(shared_data, lad, FOCAL))

    assert png() == png()


def test_nothing_to_draw_gives_none(shared_data):
    assert figures.cm_strip_figure(shared_data, OTHER) is None  # det_an_choice has no margins
    assert figures.trajectory_figure(shared_data, "no_such_rule") is None


def test_trajectory_lines_are_the_classifier_view(shared_data):
    fig = figures.trajectory_figure(shared_data, FOCAL)
    # high_k50 seed 2 = RISE_FALL: kept steps 100..1500 are [1]*7 + [0]*8, smoothed by hand (k = 3, truncated)
    line = _by_gid(fig, "conflict/high_k50/2")
    assert list(line.get_xdata()) == list(range(100, 1600, 100))
    expected = [1.0] * 6 + [2 / 3, 1 / 3] + [0.0] * 7
    assert np.allclose(line.get_ydata(), expected)
    # seed range at step 100: seed 1 (RISE: kept 0, .5, 1 -> first smoothed .25) to seed 2 (1.0)
    band = _by_gid(fig, "band/high_k50")
    verts = band.get_paths()[0].vertices
    at100 = verts[np.isclose(verts[:, 0], 100)][:, 1]
    assert np.isclose(at100.min(), 0.25) and np.isclose(at100.max(), 1.0)
    # agree control of low: seed 1 all ones, seed 2 AGREE_FAIL (1 until 700, .5 from 800) -> mean at 1500 = .75
    agree = _by_gid(fig, "agree/low")
    assert np.isclose(agree.get_ydata()[-1], 0.75) and np.isclose(agree.get_ydata()[0], 1.0)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert "high_k50   R D" in titles and "low   D d" in titles


def test_cm_strip_marks_onset_and_zero_crossing(shared_data):
    fig = figures.cm_strip_figure(shared_data, FOCAL)
    # high_k50 seed 2: onset 700 (smoothed conflict 2/3 there, 1/3 at 800); CM_UPDOWN smoothed is
    # mean(1, 0, -1) = 0 at step 800, the last step >= 0.
    onset = _by_gid(fig, "onset/high_k50/2")
    assert list(onset.get_xdata()) == [700, 700]
    zero = _by_gid(fig, "zero/high_k50/2")
    assert list(zero.get_xdata()) == [800] and np.isclose(zero.get_ydata()[0], 0.0)
    # CM is smoothed over every checkpoint, step 0 included: first value mean(0, 1) = .5
    assert np.isclose(_by_gid(fig, "cm/high_k50/2").get_ydata()[0], 0.5)
    # NEVER runs have neither an onset nor a crossing
    assert not fig.findobj(lambda a: a.get_gid() in ("onset/high_k100/1", "zero/high_k100/1"))


def test_dose_response_points_and_means(shared_data):
    lad = next(lad for lad in ladders(shared_data) if lad.kind == "kill")
    fig = figures.dose_response_figure(shared_data, lad, FOCAL)
    acc_mean = _by_gid(fig, "conflict_final/mean")
    assert list(acc_mean.get_xdata()) == [0.0, 0.5, 1.0]
    assert np.allclose(acc_mean.get_ydata(), [1.0, 0.5, 0.0])
    cm_mean = _by_gid(fig, "cm_final/mean")
    assert np.allclose(cm_mean.get_ydata(), [2.0, 0.5, -2.0])
    seed2 = _by_gid(fig, "conflict_final/2/pass").get_offsets()
    assert np.allclose(seed2, [[0.0, 1.0], [0.5, 0.0], [1.0, 0.0]])
    rescue = next(lad for lad in ladders(shared_data) if lad.kind == "rescue")
    fig = figures.dose_response_figure(shared_data, rescue, FOCAL)
    hollow = _by_gid(fig, "conflict_final/2/fail")  # low seed 2 failed its agree gate
    assert np.allclose(hollow.get_offsets(), [[0.0, 0.0]])
    assert hollow.get_facecolors().size == 0 or np.allclose(hollow.get_facecolors()[:, 3], 0)


@pytest.mark.parametrize("fn", ["trajectory_figure", "cm_strip_figure"])
def test_panels_follow_experiment_cell_order(shared_data, fn):
    fig = getattr(figures, fn)(shared_data, FOCAL)
    titles = [ax.get_title().split()[0] for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert titles == list(shared_data.cells)
