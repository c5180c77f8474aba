"""Loading a run directory: required experiment.json, everything else optional or noted."""

from __future__ import annotations

import json

import pytest

from report.synthetic import CELLS, FOCAL, OTHER, RISE_FALL, SEEDS
from ungrok.errors import UngrokError
from ungrok.report import load_run


def test_loads_every_part(data):
    assert list(data.cells) == list(CELLS)  # file order kept
    assert data.cells["high_k50"].rate == 0.5 and data.cells["high_k50"].parent == "high"
    assert data.cells["low_r1"].dose == 1.0 and data.cells["low_r1"].rule == FOCAL
    assert data.seeds == SEEDS
    assert len(data.records) == len(CELLS) * len(SEEDS) * 2
    assert set(data.support) == set(CELLS)
    assert data.scoreboard is not None and len(data.scoreboard["outcomes"]) == 5
    assert data.notes == []
    # held-out conflict only (train rows of the fixture say 1 - accuracy and must be ignored)
    curve = data.conflict[("high_k50", 2, FOCAL)]
    assert curve.steps == tuple(range(0, 1600, 100))
    assert list(curve.values) == RISE_FALL
    assert set(data.margins) == {(c, s, FOCAL) for c in CELLS for s in SEEDS}
    assert data.monitor[("high_k50", 2)][0]["step"] == 900
    assert data.monitor[("high_k50", 1)] == []  # a line without warnings is not a warning
    assert (("high", 1, OTHER) in data.conflict) and (("high", 1, OTHER) not in data.margins)


def test_only_listed_seeds_are_read(run_dir):
    # A quarantined seed's folder beside the listed ones must stay unread: make it unreadable
    # garbage and check it is neither loaded nor even noted.
    q = run_dir / "cells" / "high" / "seed99"
    q.mkdir()
    (q / "traj.parquet").write_bytes(b"not parquet")
    data = load_run(run_dir)
    assert not any(k[1] == 99 for k in data.conflict)
    assert not any("seed99" in n for n in data.notes)


def test_missing_experiment_is_a_user_error(tmp_path):
    with pytest.raises(UngrokError, match="experiment.json: not found"):
        load_run(tmp_path)
    with pytest.raises(UngrokError, match="run directory not found"):
        load_run(tmp_path / "nope")
    (tmp_path / "experiment.json").write_text(json.dumps({"name": "x", "cells": {"a": {}}, "seeds": [1]}))
    with pytest.raises(UngrokError, match=r"cells\.a\.kind"):
        load_run(tmp_path)
    (tmp_path / "experiment.json").write_text("{")
    with pytest.raises(UngrokError, match="not valid JSON"):
        load_run(tmp_path)


def test_missing_optional_parts_become_notes(run_dir):
    for p in run_dir.glob("cells/*/seed*/traj.margins.parquet"):
        p.unlink()
    (run_dir / "cells" / "low" / "seed2" / "traj.parquet").write_bytes(b"garbage")
    (run_dir / "cells" / "high" / "seed1" / "traj.parquet").unlink()
    (run_dir / "cells" / "high" / "support.json").write_text("{")
    (run_dir / "scoreboard.json").unlink()
    data = load_run(run_dir)
    assert data.margins == {}
    assert data.scoreboard is None
    assert "high" not in data.support and "low" in data.support
    assert ("low", 2, FOCAL) not in data.conflict and ("low", 1, FOCAL) in data.conflict
    text = "\n".join(data.notes)
    assert "cells/low/seed2/traj.parquet: not a readable parquet file" in text
    assert "traj.parquet is missing for 1 run(s): cells/high/seed1" in text
    assert "cells/high/support.json is not valid JSON" in text


def test_bad_records_are_skipped_with_a_note(run_dir):
    doc = json.loads((run_dir / "fates.json").read_text())
    doc["records"][0]["fate"] = "GONE"
    doc["records"][1]["cell"] = "elsewhere"
    del doc["records"][2]["agree_gate"]
    (run_dir / "fates.json").write_text(json.dumps(doc))
    data = load_run(run_dir)
    assert len(data.records) == len(doc["records"]) - 3
    text = "\n".join(data.notes)
    assert "record 0 skipped: unknown fate 'GONE'" in text
    assert "record 1 skipped: cell 'elsewhere' is not in experiment.json" in text
    assert "record 2 skipped: lacks agree_gate" in text


def test_classifier_mismatch_is_noted(run_dir):
    doc = json.loads((run_dir / "fates.json").read_text())
    doc["classifier_sha256"] = "0" * 64
    (run_dir / "fates.json").write_text(json.dumps(doc))
    assert any("differ" in n for n in load_run(run_dir).notes)


def test_edit_cells_without_a_ladder_position_are_noted(run_dir):
    doc = json.loads((run_dir / "experiment.json").read_text())
    del doc["cells"]["high_k50"]["rate"]
    doc["cells"]["low_r1"]["parent"] = "nowhere"
    (run_dir / "experiment.json").write_text(json.dumps(doc))
    data = load_run(run_dir)
    assert "kill cell 'high_k50' lacks a parent or a rate; it is on no ladder" in data.notes
    assert "cell 'low_r1' names parent 'nowhere', which is not a cell" in data.notes
    from ungrok.report.facts import ladders

    assert [lad.points for lad in ladders(data)] == [((0.0, "high"), (1.0, "high_k100"))]
