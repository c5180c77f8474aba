"""The mechanism section: the store read back, the planted dominant heads, patching and
direction rows in their tables, the figures' data, and the n-gram baseline's letters.

Expected values come from synthetic.add_mech (see its comment), worked out by hand."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from report.synthetic import (
    DECOMP_ERROR,
    DIRECTION,
    FOCAL,
    MECH_PEAK,
    MECH_TOP,
    OTHER,
    STEPS,
    add_mech,
    make_hub_dir,
    make_run_dir,
    need_chromium,
)
from report.tables import section, table_with
from ungrok.report import load_run, render_html
from ungrok.report.browser import render_check
from ungrok.report.html import SECTIONS
from ungrok.report.mech import (
    MechRun,
    best_patch,
    direction_effects,
    peak_and_final,
    raw_cm,
    top_head,
)
from ungrok.report.mech_figures import decodability_figure, decomposition_figure, head_share_figure
from ungrok.report.sections.mech import section_mech, section_ngram


@pytest.fixture(scope="module")
def mech_dir(tmp_path_factory):
    """Read-only: the synthetic run with a mechanism store, an n-gram baseline and a hub/ folder."""
    run_dir = add_mech(make_run_dir(tmp_path_factory.mktemp("mech")))
    make_hub_dir(run_dir / "hub")
    return run_dir


@pytest.fixture(scope="module")
def mdata(mech_dir):
    return load_run(mech_dir)


@pytest.fixture(scope="module")
def full_html(shared_data, mdata):
    """The shared synthetic report with this run's hub and mechanism sections added (drawn once)."""
    return render_html(replace(shared_data, hub=mdata.hub, mech=mdata.mech))


@pytest.fixture(scope="module")
def mech_html(mdata):
    """The mechanism section's HTML (draws its figures once)."""
    return section_mech(mdata)


def _by_gid(fig, gid):
    found = fig.findobj(lambda a: a.get_gid() == gid)
    assert len(found) == 1, f"{gid}: {len(found)} artists"
    return found[0]


def test_store_is_read_for_listed_seeds_only(mdata, mech_dir):
    mech = mdata.mech
    assert set(mech.runs) == set(MECH_TOP)
    assert "cells/low/seed2" in mech.without_mech and "cells/high/seed1" not in mech.without_mech
    assert set(mech.ngram) == {("high", 1, 2), ("high", 1, 5), ("high", 2, 2), ("high", 2, 5), ("low", 1, 5)}
    run = mech.runs[("low", 1)]
    assert run.steps(FOCAL, "heads") == STEPS and run.steps(FOCAL, "direction") == [600, 1500]
    assert list(run.by_component(FOCAL, "decode", "accuracy")) == ["block1", "block2"]
    assert mdata.notes == []


def _without(data, key, *instruments):
    """The data with some instruments' rows of one run taken out."""
    run = data.mech.runs[key]
    kept = MechRun({k: v for k, v in run.series.items() if k[1] not in instruments})
    return replace(data, mech=replace(data.mech, runs={**data.mech.runs, key: kept}))


def test_peak_and_final_checkpoints(mdata):
    # low/seed1: the pair `ungrok mech` used, read back from its patch rows, then its direction rows
    assert peak_and_final(mdata, "low", 1, FOCAL) == (600, 1500, "mech")
    assert peak_and_final(_without(mdata, ("low", 1), "patch"), "low", 1, FOCAL) == (600, 1500, "direction")
    # no pair rows: the argmax of the raw CM, the later step on a tie (CM_UP is 2 from step 400 to the
    # end; CM_UPDOWN is 2 at steps 200..600)
    for key, peak in MECH_PEAK.items():
        bare = _without(mdata, key, "patch", "direction")
        assert peak_and_final(bare, *key, FOCAL) == (peak, 1500, "CM")
    # and without margins, the model's own decomposed gap (growing linearly here)
    bare = _without(mdata, ("low", 1), "patch", "direction")
    nomargins = replace(bare, margins={k: v for k, v in mdata.margins.items() if k[:2] != ("low", 1)})
    cm, source = raw_cm(nomargins, "low", 1, FOCAL)
    assert source == "gap" and cm[700] == pytest.approx(0.01 + 0.37 * 7)
    assert peak_and_final(nomargins, "low", 1, FOCAL) == (1500, 1500, "gap")


@pytest.mark.parametrize("key", list(MECH_TOP))
def test_top_head_is_the_planted_one(mdata, key):
    run = mdata.mech.runs[key]
    for step in (MECH_PEAK[key], 1500):
        head, share, dcm, cos = MECH_TOP[key][step]
        h = top_head(run, FOCAL, step, None)
        assert (h.head, h.share, h.ablation_dcm, h.ov_cos) == (head, share, dcm, cos)
        assert h.attribution == pytest.approx(2.0 * share)


def test_dominant_head_table(mech_html):
    rows = {(r["cell"].text, r["seed"].text): r for r in table_with(mech_html, "peak top head")}
    assert set(rows) == {("high", "1"), ("high", "2"), ("low", "1")}
    for (cell, seed), r in rows.items():
        key = (cell, int(seed))
        assert (int(r["peak step"].text), int(r["final step"].text)) == (MECH_PEAK[key], 1500)
        for where, step in (("peak", MECH_PEAK[key]), ("final", 1500)):
            head, share, dcm, cos = MECH_TOP[key][step]
            assert r[f"{where} top head"].text == head
            assert r[f"{where} share"].text == f"{share:.2f}"
            assert r[f"{where} ΔCM ablated"].text == f"{dcm:+.2f}"
            assert r[f"{where} OV cos"].text == f"{cos:+.2f}"
    assert rows[("low", "1")]["final CM"].text == "-1.00"  # CM_UPDOWN's raw values
    assert rows[("low", "1")]["peak CM"].text == "+2.00"
    assert rows[("low", "1")]["peak is"].text == "the pair `ungrok mech` patched"
    assert rows[("high", "1")]["peak is"].text == "argmax of the raw CM"


def test_patching_and_direction(mdata, mech_html):
    run = mdata.mech.runs[("low", 1)]
    p2f = best_patch(run, FOCAL, "recovery_peak_to_final")
    f2p = best_patch(run, FOCAL, "recovery_final_to_peak")
    assert (p2f.step, p2f.component, p2f.recovery, p2f.all_recovery) == (1500, "mlp:L1", 0.63, 1.0)
    assert (f2p.step, f2p.component, f2p.recovery, f2p.all_recovery) == (600, "mlp:L1", 1.12, 0.95)
    assert best_patch(mdata.mech.runs[("high", 2)], FOCAL, "recovery_peak_to_final") is None
    (row,) = table_with(mech_html, "best single component, peak → final")
    assert (row["cell"].text, row["seed"].text) == ("low", "1")
    assert row["best single component, peak → final"].text == "mlp:L1 +0.63"
    assert row["best single component, final → peak"].text == "mlp:L1 +1.12"
    assert (row["into final (step)"].text, row["into peak (step)"].text) == ("1500", "600")
    # direction: the block with the largest |dCM| at each checkpoint
    effects = direction_effects(run, FOCAL)
    assert [(d.step, d.block, d.dcm, d.other_abs_delta, d.dbpb) for d in effects] == [
        (600, "block2", *DIRECTION[600]["block2"]), (1500, "block2", *DIRECTION[1500]["block2"])]
    rows = table_with(mech_html, "block (largest |ΔCM|)")
    assert [(r["checkpoint"].text, r["CM there"].text, r["ΔCM"].text, r["other families' mean |Δ|"].text,
             r["Δbpb"].text) for r in rows] == [("peak 600", "+2.00", "-9.40", "0.76", "+0.070"),
                                               ("final 1500", "-1.00", "-1.50", "0.20", "+0.010")]


def test_figures_plot_the_store(mdata):
    fig = decomposition_figure(mdata, FOCAL)
    i = 7  # step 700
    ctx = _by_gid(fig, "decomp/high/1/ctx")
    assert list(ctx.get_xdata()) == STEPS
    assert ctx.get_ydata()[i] == pytest.approx((0.1 + 0.3 - 0.05 + 0.02) * i)
    assert _by_gid(fig, "decomp/high/1/gap").get_ydata()[i] == pytest.approx(0.01 + 0.37 * i)
    assert _by_gid(fig, "decomp/high/2/embed").get_linestyle() == "--"  # seeds as line styles
    assert _by_gid(fig, "decomp/high/1/embed").get_linestyle() == "-"
    assert _by_gid(fig, "decomp/high/1/attn:L1").get_linewidth() < _by_gid(fig, "decomp/high/1/ctx").get_linewidth()
    assert not fig.findobj(lambda a: a.get_gid() in ("decomp/high/1/error", "decomp/high/1/attn:L0H0"))
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["high", "low"]  # experiment order
    shares = head_share_figure(mdata, FOCAL)
    for (cell, seed), top in MECH_TOP.items():
        assert _by_gid(shares, f"top/{cell}/{seed}").get_text() == top[1500][0]  # labelled top head
    line = _by_gid(shares, "share/low/1/L1H0")
    assert line.get_ydata()[STEPS.index(600)] == pytest.approx(0.85)
    assert line.get_ydata()[STEPS.index(500)] == pytest.approx(0.2)
    dec = decodability_figure(mdata, FOCAL)
    assert np.allclose(_by_gid(dec, "decode/low/1/block2").get_ydata(), [0.5 + 0.45 * i / 15 for i in range(16)])


def test_section_is_descriptive_and_lists_gaps(mech_html):
    assert "<strong>Descriptive only.</strong>" in mech_html
    assert "No verdict, agree gate or pre-registered prediction depends on them" in mech_html
    assert "No traj.mech.parquet for 7 run(s)" in mech_html
    assert f"Largest reconstruction error |gap − sum of parts|: {DECOMP_ERROR:.2g} nats" in mech_html
    assert mech_html.count("<img ") == 3


def test_ngram_table(mdata):
    html = section_ngram(mdata)
    rows = {(r["cell"].text, r["rule"].text): r for r in table_with(html, "5-gram letter = neural")}
    assert set(rows) == {("high", FOCAL), ("high", OTHER), ("low", FOCAL), ("low", OTHER)}
    r = rows[("high", FOCAL)]
    assert [b[0] for b in r["neural"].badges] == ["R", "R"]
    # 2-gram: conflict .5 / agree .5 -> NEVER with the gate failed; 5-gram: 1 / .33 -> RECOVERED, gate failed
    assert [b[0] for b in r["2-gram"].badges] == ["n", "n"] and [b[0] for b in r["5-gram"].badges] == ["r", "r"]
    assert all("gate-fail" in b[1] for b in r["5-gram"].badges)
    assert r["2-gram letter = neural"].text == "0/2" and r["5-gram letter = neural"].text == "0/2"
    assert r["2-gram final conflict / agree"].text == "0.50 / 0.50"
    assert r["5-gram final conflict / agree"].text == "1.00 / 0.33"
    assert rows[("high", OTHER)]["5-gram letter = neural"].text == "2/2"
    # low/seed1 has a single 5-gram evaluation: no verdict, its raw values marked *; seed 2 has none
    low = rows[("low", FOCAL)]
    assert [b[0] for b in low["5-gram"].badges] == ["·", "·"]
    assert "needs at least 3" in low["5-gram"].badges[0][2]
    assert low["5-gram final conflict / agree"].text == "0.25 / 0.75* · –"
    assert low["2-gram final conflict / agree"].text == "–"
    assert "2 n-gram series could not be classified" in html


def test_run_without_mech_or_hub_has_neither_section(shared_data, shared_html):
    assert shared_data.mech is None and shared_data.hub is None
    ids = [s.split('"')[0] for s in shared_html.split('<section id="')[1:]]
    assert ids == [sid for sid, _, _ in SECTIONS]


def test_hub_and_mech_sections_are_the_only_change_to_an_experiment_report(shared_html, full_html, mech_html):
    ids = [s.split('"')[0] for s in full_html.split('<section id="')[1:]]
    base = [sid for sid, _, _ in SECTIONS]
    assert ids == base[: base.index("notes")] + ["hub", "mechanism"] + base[base.index("notes"):]
    assert section(full_html, "mechanism") == "<h2>Mechanism (descriptive)</h2>" + str(mech_html)
    # removing both sections and their links gives the report without them back, byte for byte
    html = full_html
    for sid, title in (("hub", "Public checkpoints"), ("mechanism", "Mechanism (descriptive)")):
        html = html.replace(f'<section id="{sid}">{section(html, sid)}</section>', "")
        html = html.replace(f'<a href="#{sid}">{title}</a>', "")
    assert html == shared_html


def test_partial_and_broken_files_are_notes(mech_dir, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(mech_dir, run_dir)
    shutil.rmtree(run_dir / "hub")
    (run_dir / "cells/high/seed2/traj.mech.parquet").write_bytes(b"garbage")
    rows = pq.read_table(run_dir / "cells/low/seed1/traj.mech.parquet").to_pylist()
    rows.append(dict(rows[0], instrument="telepathy"))
    rows.append(dict(rows[0], step=None))
    rows.append(dict(rows[0], step=50, value=float("nan")))  # how the instruments write "undefined"
    pq.write_table(pa.Table.from_pylist(rows), run_dir / "cells/low/seed1/traj.mech.parquet")
    pq.write_table(pa.Table.from_pylist([{"run": "x", "step": 1}]), run_dir / "cells/high/seed1/traj.ngram.parquet")
    data = load_run(run_dir)
    notes = "\n".join(data.notes)
    assert "cells/high/seed2/traj.mech.parquet: not a readable parquet file" in notes
    assert "cells/low/seed1/traj.mech.parquet: unknown instrument(s) telepathy left out" in notes
    assert "cells/low/seed1/traj.mech.parquet: 1 row(s) without a step or a name left out" in notes
    assert 50 not in data.mech.runs[("low", 1)].steps(FOCAL, rows[0]["instrument"])  # NaN: skipped, not noted
    assert "cells/high/seed1/traj.ngram.parquet: lacks column(s) family" in notes
    assert set(data.mech.runs) == {("high", 1), ("low", 1)}
    # only n-gram files, no store at all: the section still says so instead of failing
    for p in run_dir.glob("cells/*/seed*/traj.mech.parquet"):
        p.unlink()
    data = load_run(run_dir)
    html = section_mech(data)
    assert "No readable traj.mech.parquet in any seed folder" in html and "<img" not in html
    assert "5-gram letter = neural" in html


def test_full_report_renders_in_chromium(full_html, tmp_path):
    need_chromium()
    out = tmp_path / "report.html"
    out.write_text(full_html)
    base = [sid for sid, _, _ in SECTIONS]
    check = render_check(out)
    assert check["sections"] == base[: base.index("notes")] + ["hub", "mechanism"] + base[base.index("notes"):]
    assert len(check["images"]) == full_html.count("<img ") == 4 + 2 + 3
    for im in check["images"]:
        assert im["complete"] and im["width"] > 0 and im["height"] > 0, im["alt"]
        if not im["folded"]:  # a closed <details> decodes its figures but does not lay them out
            assert im["shown_width"] > 0 and im["shown_height"] > 0, im["alt"]
    assert "<script" not in full_html.lower()
