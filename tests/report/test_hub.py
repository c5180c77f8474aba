"""The hub (public-checkpoint suite) section: a bare suite folder's report and RUN_DIR/hub/.

Expected values are worked out by hand from synthetic.make_hub_dir (see its comment)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from report.synthetic import (
    FOCAL,
    HUB_GATED,
    HUB_MODELS,
    HUB_NOTE,
    HUB_SCALE_NOTE,
    HUB_STEPS,
    OTHER,
    make_hub_dir,
    make_run_dir,
    need_chromium,
)
from report.tables import section, table_with
from ungrok.errors import UngrokError
from ungrok.report import HubData, load_hub, load_report, load_run, report_run
from ungrok.report.browser import render_check
from ungrok.report.html import optional_sections
from ungrok.report.hub import HubScale, scale_sentence
from ungrok.report.hub_figures import hub_figure, size_colors
from ungrok.report.sections.hub import section_hub

S, M, L = HUB_MODELS  # model ids, smallest first


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory):
    """Read-only."""
    return make_hub_dir(tmp_path_factory.mktemp("hub") / "suite")


@pytest.fixture(scope="module")
def hub(hub_dir):
    return load_hub(hub_dir)


@pytest.fixture(scope="module")
def hub_html(hub):
    """The hub section's HTML (draws the figures once)."""
    return section_hub(hub)


@pytest.fixture(scope="module")
def hub_report(hub_dir, tmp_path_factory):
    return report_run(hub_dir, out=tmp_path_factory.mktemp("hubreport") / "report.html")


def _series(model, fam="focal"):
    if model == L:
        steps = [s for s in HUB_STEPS if s != 4]
        return steps, [1.0 if s >= 2 else 0.0 for s in steps]
    late = 0.25 if model == S else 0.7
    return HUB_STEPS, [0.0 if s < 8 else 1.0 if s < 1000 else late for s in HUB_STEPS]


def test_loads_suite_in_size_order(hub):
    assert list(hub.models) == [S, M, L]
    assert hub.notes == []
    assert [(m.count("scored"), m.count("skipped"), m.count("failed")) for m in hub.models.values()] == [
        (16, 0, 0), (16, 0, 0), (15, 1, 0)]
    for model in HUB_MODELS:
        steps, values = _series(model)
        assert hub.conflict[(model, FOCAL)].steps == tuple(steps)
        assert list(hub.conflict[(model, FOCAL)].values) == values
    assert (S, FOCAL) in hub.margins and (S, OTHER) not in hub.margins
    assert len(hub.records) == 6
    assert hub.scale.rho == 0.87 and hub.scale.ci == (0.5, 1.0) and hub.scale.note == HUB_SCALE_NOTE


def test_figure_is_raw_accuracy_on_a_symlog_axis_from_step_0(hub):
    fig = hub_figure(hub, FOCAL)
    acc, cm = [ax for ax in fig.axes if ax.get_visible()]
    for model in HUB_MODELS:
        (line,) = fig.findobj(lambda a, m=model: a.get_gid() == f"conflict/{m}")
        steps, values = _series(model)
        assert list(line.get_xdata()) == steps and list(line.get_ydata()) == values  # not smoothed
        (agree,) = fig.findobj(lambda a, m=model: a.get_gid() == f"agree/{m}")
        assert agree.get_linestyle() == "--" and line.get_linestyle() == "-"
        (cm_line,) = fig.findobj(lambda a, m=model: a.get_gid() == f"cm/{m}")
        assert np.allclose(cm_line.get_ydata(), [4 * v - 2 for v in values])
    for ax in (acc, cm):
        assert ax.get_xscale() == "symlog" and ax.get_xlim()[0] == 0  # step 0 at the left edge
    # colours follow size: three distinct colours, the smallest darkest (viridis runs dark -> light)
    colors = size_colors(hub)
    assert list(colors) == [S, M, L] and len(set(colors.values())) == 3
    lum = [np.dot([int(c[i:i + 2], 16) for i in (1, 3, 5)], [0.299, 0.587, 0.114]) for c in colors.values()]
    assert lum == sorted(lum)
    # det_an_choice has no margins: one panel only
    assert len([ax for ax in hub_figure(hub, OTHER).axes if ax.get_visible()]) == 1
    assert hub_figure(hub, "no_such_family") is None


def test_models_table_letters_finals_and_counts(hub_html):
    rows = {r["model"].text: r for r in table_with(hub_html, "revisions scored / skipped / failed")}
    assert list(rows) == [S, M, L]
    # hand-smoothed finals (final window of 3 over 8 kept checkpoints): .25, .7, 1
    expected = {S: ("D", "0.25", "r"), M: ("P", "0.70", "R"), L: ("R", "1.00", "R")}
    for model, (focal, final, other) in expected.items():
        cell = rows[model][FOCAL]
        assert [b[0] for b in cell.badges] == [focal] and cell.text.strip() == final
        assert [b[0] for b in rows[model][OTHER].badges] == [other]
    assert "gate-fail" in rows[S][OTHER].badges[0][1]  # agree control sagged to 0.5
    assert rows[S][OTHER].badges[0][2].startswith(f"{S} {OTHER}: RECOVERED, agree gate failed")
    assert rows[L]["revisions scored / skipped / failed"].text == "15 / 1 / 0"
    assert rows[M]["parameters"].text == "5,200,000 (5.2M)" and rows[M]["size rank"].text == "2"
    assert rows[L]["scoring time (s)"].text == "30.0"  # 15 scored revisions x 2.0 s


def test_scale_sentence_shows_the_planted_statistic(hub, hub_html):
    text = scale_sentence(hub)
    assert "ρ(model size, final accuracy) = +0.87 over 3 models" in text
    assert "95% bootstrap CI [+0.50, +1.00] (1,000 resamples, seed 0)" in text
    html = hub_html
    assert f"<li>{text}</li>" in html
    assert HUB_SCALE_NOTE in html
    finals = {r["model"].text: r["final heldout conflict accuracy"].text
              for r in table_with(html, "final heldout conflict accuracy")}
    assert finals == {S: "0.25", M: "0.70", L: "1.00"}


@pytest.mark.parametrize(("change", "says"), [
    ({"models": "two"}, "only 2 models have a final accuracy; a rank correlation needs at least 3, so no ρ"),
    ({"rho": None}, "Spearman ρ is undefined over these 3 models"),
    ({"ci": None}, "= +0.87 over 3 models; its bootstrap CI is undefined."),
])
def test_scale_sentence_is_honest_when_undefined(hub, change, says):
    sc = hub.scale.model_dump()
    if change.get("models") == "two":
        sc["models"][0]["final_accuracy"] = None
    else:
        sc.update(change)
    other = HubData(folder="x", models=hub.models, records=hub.records, scale=HubScale.model_validate(sc))
    assert says in scale_sentence(other)
    assert "no 'scale' entry" in scale_sentence(HubData(folder="x", records=[]))
    assert "hub_fates.json is missing" in scale_sentence(HubData(folder="x"))


def test_skipped_list_and_notes_verbatim(hub_html):
    html = hub_html
    rows = [(r["model"].text, r["revision"].text, r["status"].text, r["why"].text) for r in table_with(html, "why")]
    assert rows == [(L, "step4", "skipped", "revision not found on the hub"),
                    (HUB_GATED["model"], "(whole model)", "skipped", HUB_GATED["why"])]
    assert "target &#39; she&#39; splits into 2 tokens: scored as multi-token" in html  # escaped, verbatim
    assert HUB_NOTE.startswith("target ' she'")


def test_bare_hub_folder_gives_a_hub_only_report(hub_dir, hub_report):
    html = hub_report.read_text()
    assert isinstance(load_report(hub_dir), HubData)
    assert "<title>ungrok report: hub suite suite</title>" in html
    assert [s.split('"')[0] for s in html.split('<section id="')[1:]] == ["hub", "notes", "constants"]
    assert "Every input was present and readable." in section(html, "notes")
    assert html.count("<img ") == 2 and "<script" not in html.lower()
    assert "computed from the files of the suite folder" in html


def test_cli_reports_a_bare_hub_folder(hub_dir, tmp_path):
    from ungrok.commands.report import register

    app = typer.Typer()
    register(app)
    app.callback()(lambda: None)
    folder = tmp_path / "suite"
    shutil.copytree(hub_dir, folder)
    (folder / "hub_fates.json").unlink()
    res = CliRunner().invoke(app, ["report", str(folder)])
    assert res.exit_code == 0, res.output
    assert "note: hub_fates.json is missing" in res.output
    html = (folder / "report.html").read_text()
    assert "No verdicts (hub_fates.json is missing)" in html
    assert "No depth-by-scale statistic: hub_fates.json is missing" in html


def test_experiment_with_hub_subfolder_is_read(tmp_path):
    run_dir = make_run_dir(tmp_path)
    assert load_run(run_dir).hub is None
    make_hub_dir(run_dir / "hub")
    data = load_run(run_dir)
    assert list(data.hub.models) == [S, M, L] and len(data.hub.records) == 6
    assert data.notes == []


def test_missing_and_broken_parts_are_notes(hub_dir, tmp_path):
    folder = tmp_path / "suite"
    shutil.copytree(hub_dir, folder)
    (folder / "traj.margins.parquet").unlink()
    (folder / "traj.parquet").write_bytes(b"not parquet")
    doc = json.loads((folder / "hub_fates.json").read_text())
    doc["records"][0]["fate"] = "ALIVE"
    doc["records"].append(dict(doc["records"][1], run="org/unknown"))
    (folder / "hub_fates.json").write_text(json.dumps(doc))
    hub = load_hub(folder)
    assert any(n.startswith("traj.parquet: not a readable parquet file") for n in hub.notes)
    assert any("record 0 skipped: unknown fate 'ALIVE'" in n for n in hub.notes)
    assert any("model 'org/unknown' is not in suite.json" in n for n in hub.notes)
    assert len(hub.records) == 5 and not hub.conflict and not hub.margins
    html = section_hub(hub)
    assert "No held-out trajectories (traj.parquet) for any model." in html and "<img" not in html


def test_suite_json_errors(hub_dir, tmp_path):
    folder = tmp_path / "suite"
    shutil.copytree(hub_dir, folder)
    suite = json.loads((folder / "suite.json").read_text())
    del suite["models"][S]["revisions"][0]["revision"]
    (folder / "suite.json").write_text(json.dumps(suite))
    with pytest.raises(UngrokError, match=r"suite.json: models\.org/tiny-s\.revisions\.0\.revision: Field required"):
        load_hub(folder)
    # inside an experiment the same file becomes a section note, never a crash
    run_dir = make_run_dir(tmp_path / "exp")
    shutil.copytree(folder, run_dir / "hub")
    data = load_run(run_dir)
    assert data.hub.error is not None and any(n.startswith("hub/suite.json unusable") for n in data.notes)
    assert optional_sections(data) == [("hub", "Public checkpoints", section_hub(data.hub))]
    assert "The hub suite folder could not be read" in section_hub(data.hub)
    (folder / "suite.json").unlink()
    with pytest.raises(UngrokError, match="run directory not found|experiment.json: not found"):
        load_report(folder)  # neither kind of folder: the run-directory error, as before


def test_records_may_name_the_model_field(hub_dir, tmp_path):
    folder = tmp_path / "suite"
    shutil.copytree(hub_dir, folder)
    doc = json.loads((folder / "hub_fates.json").read_text())
    for r in doc["records"]:
        r["model"] = r.pop("run")
    (folder / "hub_fates.json").write_text(json.dumps(doc))
    hub = load_hub(folder)
    assert hub.notes == [] and len(hub.records) == 6


def test_hub_only_report_renders_in_chromium(hub_report):
    need_chromium()
    check = render_check(hub_report)
    assert check["sections"] == ["hub", "notes", "constants"]
    assert len(check["images"]) == 2
    for im in check["images"]:
        assert im["complete"] and im["width"] > 0 and im["shown_width"] > 0, im["alt"]


def test_unknown_sizes_and_unclassified_models(hub_dir, tmp_path):
    # as `ungrok hub` writes them: a model whose size could not be read has n_params and size_rank null,
    # and hub_fates.json lists the models it could not classify
    folder = tmp_path / "suite"
    shutil.copytree(hub_dir, folder)
    suite = json.loads((folder / "suite.json").read_text())
    suite["models"][S].update(n_params=None, size_rank=None)
    (folder / "suite.json").write_text(json.dumps(suite))
    doc = json.loads((folder / "hub_fates.json").read_text())
    doc["unclassified"] = [{"model": "org/tiny-x", "why": "only 2 checkpoint(s) at step >= 100"}]
    doc["classifier_sha256"] = "0" * 64
    (folder / "hub_fates.json").write_text(json.dumps(doc))
    hub = load_hub(folder)
    assert list(hub.models) == [M, L, S]  # unknown size last
    assert any("classified with constants sha256 000000000000" in n for n in hub.notes)
    rows = {r["model"].text: r for r in table_with(_tables_only(hub), "revisions scored / skipped / failed")}
    assert rows[S]["parameters"].text == "–" and rows[S]["size rank"].text == "–"
    assert "Not classified by `ungrok hub classify`: org/tiny-x: only 2 checkpoint(s) at step &gt;= 100" in (
        _tables_only(hub))


def _tables_only(hub):
    """The hub section without drawing figures (they are not what these tests check)."""
    return section_hub(replace(hub, conflict={}, margins={}))
