"""`ungrok prereg ...` through the real CLI entry point: commands, outputs, and one-line errors (exit 2)."""

from __future__ import annotations

import json

import pytest
from prereg_helpers import rec

from cli_helpers import run
from ungrok.fate.config import DEFAULT_CONFIG

EXPERIMENT = """\
cells: [ts, web]
seeds: [42, 43, 44]
quarantined_seeds: [45]
predictions:
  - name: P1
    expr: pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell ts
  - name: F1
    falsifier: true
    expr: pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell web
"""




def one_line_error(err):
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def exp(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(EXPERIMENT)
    return p


def test_freeze_verify_amend_score_unlock(exp, tmp_path, capsys):
    reg = tmp_path / "run" / "registry.json"
    code, out, err = run(["prereg", "freeze", exp, "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    assert "frozen:" in out and "2 predictions" in out and json.loads(reg.read_text())["sha256"] in out

    code, out, err = run(["prereg", "verify", reg], capsys)
    assert code == 0 and "verified: nothing changed" in out, err

    (tmp_path / "amend.yaml").write_text(
        "predictions:\n  - name: P2\n    expr: pronoun_gender_ref is DISPLACED in all seeds of cell web\n"
    )
    code, out, err = run(
        ["prereg", "amend", reg, "--file", tmp_path / "amend.yaml", "--reason", "web too"], capsys
    )
    assert code == 0 and "amendment 1 recorded" in out and "1 new prediction" in out, err

    ev = tmp_path / "evidence.json"
    recs = [rec("ts", s) for s in (42, 43, 44)]
    recs += [rec("web", 42), rec("web", 43, fate="DISPLACED", cf=0.2), rec("web", 44, fate="DISPLACED", cf=0.2)]
    ev.write_text(json.dumps({"classifier_sha256": DEFAULT_CONFIG.sha256(), "records": recs}))
    board = tmp_path / "scoreboard.json"
    code, out, err = run(["prereg", "score", reg, "--evidence", ev, "--json", board], capsys)
    assert code == 0, err
    # P1 ✓ (3/3), P2 × (2 of 3 displaced, needs all), F1 silent (1/3)
    assert "1 ✓ / 1 × / 0 ◦; falsifiers: 0 of 1 applicable triggered" in out
    assert "falsifier silent" in out
    data = json.loads(board.read_text())
    assert data["registry_head_sha256"] == json.loads(reg.read_text())["amendments"][0]["sha256"]

    code, _, err = run(["prereg", "score", reg, "--evidence", ev, "--json", board], capsys)
    assert code == 2 and "already exists" in one_line_error(err)

    code, out, err = run(["prereg", "unlock", reg, "--reason", "primary analysis scored"], capsys)
    assert code == 0 and "unlocked seeds [45]" in out, err
    code, out, err = run(["prereg", "verify", reg], capsys)
    assert code == 0, err


@pytest.mark.parametrize(
    ("experiment", "needle"),
    [
        (EXPERIMENT.replace("pronoun_gender_ref is RECOVERED", "pronoun_gender_rf is RECOVERED", 1),
         "unknown family 'pronoun_gender_rf'"),
        (EXPERIMENT.replace("of cell ts", "of cell tss"), "unknown cell 'tss'"),
        (EXPERIMENT.replace("RECOVERED+valid in >= 2/3 seeds of cell ts", "RECOVERED+ in >= 2/3 seeds of cell ts"),
         "expected 'valid'"),
        (EXPERIMENT.replace("seeds: [42, 43, 44]", "seeds: [42, 43, 45]"), "both governed and quarantined"),
        (EXPERIMENT.replace("cells: [ts, web]", "cells: [ts, ts]"), "unique"),
        ("cells: [ts\n", "not valid YAML"),
    ],
)
def test_bad_experiments_are_one_line_exit_2(tmp_path, capsys, experiment, needle):
    p = tmp_path / "exp.yaml"
    p.write_text(experiment)
    code, _, err = run(["prereg", "freeze", p, "--out", tmp_path / "run"], capsys)
    assert code == 2
    assert needle in one_line_error(err)
    assert not (tmp_path / "run" / "registry.json").exists()


def test_tampering_and_refusals_are_one_line_exit_2(exp, tmp_path, capsys):
    reg = tmp_path / "run" / "registry.json"
    assert run(["prereg", "freeze", exp, "--out", reg], capsys)[0] == 0
    code, _, err = run(["prereg", "freeze", exp, "--out", reg], capsys)
    assert code == 2 and "never overwritten" in one_line_error(err)
    code, _, err = run(["prereg", "amend", reg, "--file", tmp_path / "none.yaml", "--reason", "x"], capsys)
    assert code == 2 and "amendment file not found" in one_line_error(err)
    exp.write_text(EXPERIMENT + "# a later edit\n")
    code, _, err = run(["prereg", "verify", reg], capsys)
    assert code == 2 and "experiment file ../exp.yaml changed since the freeze" in one_line_error(err)
    reg.write_text(reg.read_text().replace(">= 2/3", ">= 1/3", 1))
    code, _, err = run(["prereg", "verify", reg], capsys)
    assert code == 2 and "the frozen registry changed" in one_line_error(err)
    code, _, err = run(["prereg", "score", reg, "--evidence", tmp_path / "ev.json"], capsys)
    assert code == 2 and "the frozen registry changed" in one_line_error(err)


def test_freeze_warns_when_a_registered_mean_can_only_be_unscoreable(tmp_path, capsys):
    p = tmp_path / "exp.yaml"
    p.write_text(
        "cells: [web]\nseeds: [0]\npredictions:\n"
        "  - {name: G4, expr: mean cm_final of pronoun_gender_ref in cell web > 0.16, gates: {cm_guard: true}}\n"
    )
    code, out, err = run(["prereg", "freeze", p, "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    assert "warning: G4: a cell mean over CM-instrument-valid seeds needs 2" in out
    assert "it can only be UNSCOREABLE" in out
