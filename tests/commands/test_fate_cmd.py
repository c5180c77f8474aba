"""`ungrok classify` on hand-made trajectories whose fates and margin timing are computed by hand."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ungrok.cli import main

STEPS = list(range(0, 1600, 100))  # 16 checkpoints; 15 kept (step >= 100) -> final window 3


def _run(args, capsys):
    code = 0
    try:
        main(args)
    except SystemExit as e:
        code = e.code or 0
    c = capsys.readouterr()
    return code, c.out, c.err


def _rows(run, family, conflict, agree):
    rows = []
    for s, c, a in zip(STEPS, conflict, agree, strict=True):
        rows.append(dict(run=run, step=s, family=family, condition="conflict", split="heldout", accuracy=c))
        rows.append(dict(run=run, step=s, family=family, condition="agree", split="heldout", accuracy=a))
        # train-split rows are ignored by the classifier; make them contradict the heldout ones
        rows.append(dict(run=run, step=s, family=family, condition="conflict", split="train", accuracy=1 - c))
    return rows


@pytest.fixture
def traj(tmp_path):
    ones = [1.0] * 16
    rise_fall = [0.0] + [1.0] * 7 + [0.0] * 8  # solved 100..700, lost from 800
    rows = (
        _rows("s42", "pronoun_gender_ref", rise_fall, ones)
        + _rows("s42", "det_an_choice", [0.0] + [1.0] * 15, ones)
        + _rows("s42", "plural_agreement", [0.0] + [1.0] * 15, [1.0] * 8 + [0.5] * 8)  # agree sags
    )
    path = tmp_path / "traj.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    cm = [0.0] + [1.0] * 7 + [-1.0] * 8
    pm = [0.1 * i for i in range(16)]
    margins = [
        dict(run="s42", step=s, rule="pronoun_gender_ref", cm=c, pm=p)
        for s, c, p in zip(STEPS, cm, pm, strict=True)
    ]
    pq.write_table(pa.Table.from_pylist(margins), tmp_path / "traj.margins.parquet")
    return path


def test_classify_prints_and_writes_hand_computed_fates(traj, tmp_path, capsys):
    out_json = tmp_path / "fates.json"
    code, out, err = _run(["classify", str(traj), "--json", str(out_json)], capsys)
    assert code == 0, err
    assert "DISPLACED (transient)" in out and "RECOVERED" in out
    data = json.loads(out_json.read_text())
    recs = {r["family"]: r for r in data["records"]}
    pron = recs["pronoun_gender_ref"]
    assert pron["fate"] == "DISPLACED" and pron["agree_gate"] == "pass" and pron["letter"] == "D"
    # smoothed conflict: step 700 = (1+1+0)/3 >= 0.5, step 800 = 1/3 -> onset 700
    assert pron["onset"] == 700
    # smoothed CM: step 700 = 1/3 >= 0, step 800 = -1/3 -> crossing 700; in [350, 1400] -> PASS
    assert pron["cm_zero_crossing"] == 700 and pron["timing"] == "PASS"
    assert pron["cm_final"] == pytest.approx(-1.0)
    assert pron["cm_peak_step"] == 600 and pron["cm_instrument_valid"] is True  # ties go to the later step
    assert pron["pm_final"] == pytest.approx((1.3 + 1.4 + 1.5) / 3)
    assert pron["pm_at_peak"] == pytest.approx(0.6)
    assert recs["det_an_choice"]["fate"] == "RECOVERED" and "cm_final" not in recs["det_an_choice"]
    # agree: smoothed final 0.5 < 0.8 -> gate fails, letter lower-case
    assert recs["plural_agreement"]["agree_gate"] == "fail" and recs["plural_agreement"]["letter"] == "r"
    assert len(data["classifier_sha256"]) == 64
    # results are not silently overwritten
    code, _, err = _run(["classify", str(traj), "--json", str(out_json)], capsys)
    assert code == 2 and "already exists" in err


def test_classify_config_override_changes_hash_and_verdict(traj, tmp_path, capsys):
    cfg = tmp_path / "cls.yaml"
    cfg.write_text("recovered_thr: 0.5\ndisplaced_thr: 0.4\nagree_valid_thr: 0.4\nagree_drop_thr: 0.6\n")
    out_json = tmp_path / "f.json"
    code, _, err = _run(["classify", str(traj), "--config", str(cfg), "--json", str(out_json)], capsys)
    assert code == 0, err
    recs = {r["family"]: r for r in json.loads(out_json.read_text())["records"]}
    assert recs["plural_agreement"]["agree_gate"] == "pass"
    cfg.write_text("no_such_constant: 1\n")
    code, _, err = _run(["classify", str(traj), "--config", str(cfg)], capsys)
    assert code == 2 and "no_such_constant" in err and len(err.strip().splitlines()) == 1


def test_classify_bad_input_is_one_line(tmp_path, capsys):
    code, _, err = _run(["classify", str(tmp_path / "none.parquet")], capsys)
    assert code == 2 and "not found" in err
    rows = [
        dict(run="r", step=s, family="f", condition="conflict", split="heldout", accuracy=1.0) for s in STEPS
    ]
    path = tmp_path / "noagree.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    code, _, err = _run(["classify", str(path)], capsys)
    assert code == 2 and "no heldout agree rows" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    (tmp_path / "junk.parquet").write_text("not parquet")
    code, _, err = _run(["classify", str(tmp_path / "junk.parquet")], capsys)
    assert code == 2 and "not a readable parquet" in err
