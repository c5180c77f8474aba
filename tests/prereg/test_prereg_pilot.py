"""Pilot, then confirm: pilot reads and a pilot record are bound into the frozen registry, the
verify timeline shows the order and fails when it is broken, pilot seeds are never scored,
and a confirmatory prediction after a confirmatory read is refused while one after pilot
reads only is allowed. Hashes and times are worked out independently of the code."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime

import pytest
from prereg_helpers import FakeClock, canonical_sha, evidence, rec

from cli_helpers import one_line_error
from cli_helpers import run as ungrok
from ungrok.errors import UngrokError
from ungrok.prereg.amend import amend
from ungrok.prereg.integrity import verify
from ungrok.prereg.ledger import read_ledger, record_start
from ungrok.prereg.pilot import PilotRecord, load_pilot_record, pilot_record_from_run
from ungrok.prereg.reads import record_read
from ungrok.prereg.registry import freeze, load_registry
from ungrok.prereg.scoreboard import score

EXPERIMENT = """\
cells: [ts, web]
seeds: [42, 43, 44]
pilot_seeds: [7, 8]
predictions:
  - name: P1
    expr: pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell ts
"""
SHA_A, SHA_B = "a" * 64, "b" * 64


def entry(cell="ts", seed=101, family="pronoun_gender_ref", **kw):
    e = dict(cell=cell, seed=seed, family=family, verdict="DISPLACED", agree_gate="pass", cm_final=-0.4,
             peak=0.93, final=0.21, traj_sha256=SHA_A)
    e.update(kw)
    return e


@pytest.fixture
def exp(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(EXPERIMENT)
    return p


def at(iso):
    return FakeClock(iso + "+00:00")


# --------------------------------------------------------------------------- pilot record schema
def test_a_pilot_record_validates_as_an_object_or_a_bare_list(tmp_path):
    p = tmp_path / "pilot.json"
    p.write_text(json.dumps({"format": "ungrok-pilot/1", "created_utc": "2026-06-01T00:00:00.000000Z",
                             "entries": [entry(), entry(seed=102, cm_final=None)]}))
    r = load_pilot_record(p)
    assert r.seeds == [101, 102] and r.entries[1].cm_final is None and r.created_utc.startswith("2026-06-01")
    p.write_text(json.dumps([entry()]))
    assert load_pilot_record(p).entries[0].verdict == "DISPLACED" and load_pilot_record(p).created_utc is None


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ([entry(verdict="GONE")], "entries.0.verdict"),
        ([entry(traj_sha256="xyz")], "entries.0.traj_sha256"),
        ([entry(), entry()], "cell ts seed 101 family pronoun_gender_ref appears twice"),
        ([], "entries"),
        ([{**entry(), "colour": "red"}], "entries.0.colour"),
        ({"entries": [entry()], "created_utc": "yesterday"}, "not a UTC timestamp"),
    ],
)
def test_bad_pilot_records_are_one_line(tmp_path, doc, needle):
    p = tmp_path / "pilot.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(UngrokError, match="pilot record") as e:
        load_pilot_record(p)
    assert needle in str(e.value) and "\n" not in str(e.value)


# --------------------------------------------------------------------------- made from a pilot run
def pilot_run(tmp_path, fates_name="pilot_fates.json"):
    """A finished pilot run folder: verdict records and the trajectory tables they came from."""
    run = tmp_path / "pilot"
    recs = []
    for cell in ("high", "web"):
        for seed in (101, 102):
            d = run / "cells" / cell / f"seed{seed}"
            d.mkdir(parents=True)
            (d / "traj.parquet").write_bytes(f"table {cell} {seed}".encode())
            recs.append(rec(cell, seed, fate="DISPLACED", cf=0.2, cmax=0.9, cm_final=-0.5))
    (run / fates_name).write_text(json.dumps({"classifier_sha256": SHA_B, "records": recs}))
    return run


def test_pilot_record_from_a_run_hashes_each_trajectory_table(tmp_path):
    run = pilot_run(tmp_path)
    r = pilot_record_from_run(run, clock=at("2026-06-01T00:00:00"))
    assert r.created_utc == "2026-06-01T00:00:00.000000Z" and r.classifier_sha256 == SHA_B
    assert r.seeds == [101, 102] and len(r.entries) == 4
    for e in r.entries:
        want = hashlib.sha256(f"table {e.cell} {e.seed}".encode()).hexdigest()
        assert (e.traj_sha256, e.verdict, e.final, e.peak, e.cm_final) == (want, "DISPLACED", 0.2, 0.9, -0.5)
    PilotRecord.model_validate(json.loads(r.model_dump_json()))  # round trip


def test_pilot_record_refuses_a_changed_table_and_a_registered_runs_fates(tmp_path):
    run = pilot_run(tmp_path)
    record_read(run, "web/102/trajectories", sha256=SHA_A)  # the ledger saw other bytes
    with pytest.raises(UngrokError, match="web/seed102/traj.parquet changed since it was classified"):
        pilot_record_from_run(run)
    other = pilot_run(tmp_path / "b", fates_name="fates.json")
    assert len(pilot_record_from_run(other).entries) == 4  # a whole experiment run as a pilot
    (other / "registry.json").write_text("{}")
    with pytest.raises(UngrokError, match="holds confirmatory verdicts"):
        pilot_record_from_run(other)


def test_pilot_record_cli_writes_the_file_and_prints_its_sha256(tmp_path, capsys):
    folder, out = pilot_run(tmp_path), tmp_path / "pilot.json"
    code, printed, err = ungrok(["prereg", "pilot-record", folder, "--out", out], capsys)
    assert code == 0, err
    assert hashlib.sha256(out.read_bytes()).hexdigest() in printed and "4 verdict(s) of 4 pilot run(s)" in printed
    assert len(load_pilot_record(out).entries) == 4
    code, _, err = ungrok(["prereg", "pilot-record", folder, "--out", out], capsys)
    assert "exists; use --force" in one_line_error(code, err)


def test_pilot_record_of_several_folders_names_cells_by_folder(tmp_path, capsys):
    """Two waves that reuse a cell name stay apart: cells become FOLDER/CELL, every entry kept."""
    a = pilot_run(tmp_path / "w1").rename(tmp_path / "wave1")
    b = pilot_run(tmp_path / "w2").rename(tmp_path / "wave2")
    out = tmp_path / "pilot.json"
    code, printed, err = ungrok(["prereg", "pilot-record", a, b, "--out", out], capsys)
    assert code == 0, err
    rec = load_pilot_record(out)
    assert len(rec.entries) == 8 and "8 verdict(s) of 8 pilot run(s)" in printed
    assert {e.cell.split("/")[0] for e in rec.entries} == {a.name, b.name}
    single = {(e.cell, e.seed) for e in pilot_record_from_run(a).entries}
    assert {(e.cell.split("/", 1)[1], e.seed) for e in rec.entries if e.cell.startswith(a.name + "/")} == single
    code, _, err = ungrok(["prereg", "pilot-record", a, a, "--out", tmp_path / "x.json"], capsys)
    assert "share a name" in one_line_error(code, err)


# --------------------------------------------------------------------------- the freeze binds the pilot
def test_the_freeze_binds_the_pilot_reads_that_precede_it(exp, tmp_path):
    run = tmp_path / "run"
    record_read(run, "ts/7/trajectories", clock=at("2026-06-10T09:00:00"), sha256=SHA_A)
    record_read(run, "web/8/margins", clock=at("2026-06-10T09:30:00"), sha256=SHA_B)
    reg = freeze(exp, run, clock=at("2026-06-10T10:00:00"))
    raw = json.loads(reg.path.read_text())
    assert raw["pilot"] == {
        "seeds": [7, 8],
        "reads": [
            {"artifact": "ts/7/trajectories", "first_read": "2026-06-10T09:00:00.000000Z", "sha256": SHA_A},
            {"artifact": "web/8/margins", "first_read": "2026-06-10T09:30:00.000000Z", "sha256": SHA_B},
        ],
        "record": None,
    }
    assert raw["sha256"] == canonical_sha({k: v for k, v in raw.items() if k not in ("sha256", "amendments")})
    assert raw["seeds"] == {"governed": [42, 43, 44], "quarantined": []}  # pilot seeds are not governed
    lines = verify(reg.path)
    order = [ln for ln in lines if ln.startswith("order:")]
    assert order == [
        "order: pilot reads before the freeze: 2 (first 2026-06-10T09:00:00.000000Z, last 2026-06-10T09:30:00.000000Z)",
        f"order: freeze 2026-06-10T10:00:00.000000Z, sha256 {raw['sha256']}",
        "order: confirmatory training: not started",
        "order: confirmatory reads: none yet",
    ]
    # a later pilot read is allowed and shown, but not bound
    record_read(run, "ts/8/trajectories", clock=at("2026-06-10T11:00:00"))
    assert any("pilot reads after the freeze (exploratory, not bound): 1" in ln for ln in verify(reg.path))
    assert len(load_registry(reg.path).pilot.reads) == 2


def test_no_pilot_reads_at_freeze_is_recorded_and_shown(exp, tmp_path):
    reg = freeze(exp, tmp_path / "run", clock=at("2026-06-10T10:00:00"))
    assert reg.pilot is not None and reg.pilot.reads == [] and reg.pilot.seeds == [7, 8]
    assert "order: no pilot reads at freeze" in verify(reg.path)


def test_an_experiment_without_pilot_keeps_the_old_registry_layout(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text(EXPERIMENT.replace("pilot_seeds: [7, 8]\n", ""))
    reg = freeze(p, tmp_path / "run", clock=at("2026-06-10T10:00:00"))
    assert "pilot" not in json.loads(reg.path.read_text())
    assert "order: no pilot declared" in verify(reg.path)


def test_the_freeze_binds_a_pilot_record_and_verify_watches_it(exp, tmp_path):
    record = tmp_path / "pilot.json"
    record.write_text(json.dumps({"created_utc": "2026-06-01T08:00:00.000000Z",
                                  "entries": [entry(seed=101), entry(seed=102, cell="web")]}))
    exp.write_text(EXPERIMENT + "pilot_record: pilot.json\n")
    reg = freeze(exp, tmp_path / "run", clock=at("2026-06-10T10:00:00"))
    raw = json.loads(reg.path.read_text())
    assert raw["pilot"]["record"] == {
        "path": "../pilot.json",
        "sha256": hashlib.sha256(record.read_bytes()).hexdigest(),
        "entries": 2,
        "seeds": [101, 102],
        "created_utc": "2026-06-01T08:00:00.000000Z",
    }
    lines = verify(reg.path)
    assert "pilot record ../pilot.json: unchanged" in lines
    first = next(ln for ln in lines if ln.startswith("order:"))
    assert first.startswith("order: pilot record ../pilot.json: 2 verdict(s) of seed(s) [101, 102], made "
                            "2026-06-01T08:00:00.000000Z, sha256 " + raw["pilot"]["record"]["sha256"][:12])
    record.write_text(record.read_text().replace("0.93", "0.95"))
    with pytest.raises(UngrokError, match="pilot record ../pilot.json changed since the freeze"):
        verify(reg.path)


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        ([entry(seed=43)], r"pilot record seed\(s\) \[43\] are governed or quarantined"),
        ({"created_utc": "2026-06-11T00:00:00.000000Z", "entries": [entry()]}, "dated .* after this freeze"),
    ],
)
def test_a_pilot_record_on_confirmatory_seeds_or_from_the_future_is_refused(exp, tmp_path, record, needle):
    (tmp_path / "pilot.json").write_text(json.dumps(record))
    exp.write_text(EXPERIMENT + "pilot_record: pilot.json\n")
    with pytest.raises(UngrokError, match=needle):
        freeze(exp, tmp_path / "run", clock=at("2026-06-10T10:00:00"))
    assert not (tmp_path / "run" / "registry.json").exists()


def test_pilot_seeds_must_be_apart_from_the_confirmatory_ones(tmp_path):
    p = tmp_path / "exp.yaml"
    for text, needle in (
        (EXPERIMENT.replace("[7, 8]", "[7, 42]"), r"seed\(s\) \[42\] are both pilot and governed"),
        (EXPERIMENT.replace("[7, 8]", "[7, 7]"), "pilot_seeds: a seed is listed twice"),
    ):
        p.write_text(text)
        with pytest.raises(UngrokError, match=needle):
            freeze(p, tmp_path / "run")


# --------------------------------------------------------------------------- registration after reads
def test_a_confirmatory_prediction_added_after_a_confirmatory_read_is_refused(exp, tmp_path):
    """...while one added after pilot reads only is allowed (pilot seeds are never governed)."""
    run = tmp_path / "run"
    record_read(run, "ts/7/trajectories", clock=at("2026-06-10T09:00:00"))  # pilot, before the freeze
    reg = freeze(exp, run, clock=at("2026-06-10T10:00:00"))  # allowed: P1 reads ts, but not seed 7
    record_read(run, "ts/8/trajectories", clock=at("2026-06-10T11:00:00"))  # pilot, after the freeze
    on_ts = {"predictions": [{"name": "P2", "expr": "pronoun_gender_ref is DISPLACED in all seeds of cell ts"}]}
    amend(reg.path, on_ts, "after the pilot", clock=at("2026-06-10T12:00:00"))
    record_read(run, "ts/42/trajectories", clock=at("2026-06-10T13:00:00"))  # confirmatory
    later = {"predictions": [{"name": "P3", "expr": "pronoun_gender_ref has died in all seeds of cell ts"}]}
    with pytest.raises(UngrokError) as e:
        amend(reg.path, later, "too late", clock=at("2026-06-10T14:00:00"))
    assert ("prediction P3 governs ts/42/trajectories, which was first read at 2026-06-10T13:00:00.000000Z, "
            "before this registration at 2026-06-10T14:00:00.000000Z") in str(e.value)
    assert [p.name for p, _, _ in load_registry(reg.path).registered()] == ["P1", "P2"]
    lines = verify(reg.path)
    assert "order: confirmatory reads: 1 (first 2026-06-10T13:00:00.000000Z, last 2026-06-10T13:00:00.000000Z)" in lines


def test_an_edited_experiment_is_refused_after_a_confirmatory_read_but_not_after_pilot_reads(exp, tmp_path):
    run = tmp_path / "run"
    record_read(run, "ts/8/margins", clock=at("2026-06-10T09:00:00"))
    assert freeze(exp, run, clock=at("2026-06-10T10:00:00")).pilot.reads[0].artifact == "ts/8/margins"
    other = tmp_path / "other"
    record_read(other, "ts/44/margins", clock=at("2026-06-10T09:00:00"))
    with pytest.raises(UngrokError, match="prediction P1 governs ts/44/margins"):
        freeze(exp, other, clock=at("2026-06-10T10:00:00"))


# --------------------------------------------------------------------------- broken order
def test_verify_fails_when_confirmatory_artifacts_predate_the_freeze(exp, tmp_path, capsys):
    run = tmp_path / "run"
    reg = freeze(exp, run, clock=at("2026-06-10T10:00:00"))  # a freeze after training is refused outright
    cfg = run / "cells" / "web" / "seed43" / "config.json"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("{}")
    t = datetime.fromisoformat("2026-06-10T09:00:00+00:00").timestamp()
    os.utime(cfg, (t, t))  # dated 09:00, before the freeze
    with pytest.raises(UngrokError) as e:
        verify(reg.path)
    assert str(e.value).endswith(
        "the order is broken: confirmatory cells/web/seed43/config.json dates from 2026-06-10T09:00:00.000000Z, "
        "before the freeze at 2026-06-10T10:00:00.000000Z; the registry was frozen after confirmatory data existed"
    )
    code, _, err = ungrok(["prereg", "verify", reg.path], capsys)
    assert "the order is broken" in one_line_error(code, err)
    t = datetime.fromisoformat("2026-06-10T10:30:00+00:00").timestamp()
    os.utime(cfg, (t, t))
    assert "order: confirmatory training started 2026-06-10T10:30:00.000000Z (cells/web/seed43/config.json)" in verify(
        reg.path
    )


def test_freeze_is_refused_after_a_recorded_start_or_a_confirmatory_read(exp, tmp_path):
    run = tmp_path / "run"
    record_start(run, "ts", 44, clock=at("2026-06-10T09:00:00"))
    with pytest.raises(UngrokError, match="records training output of ts/44 .*cannot be pre-registered"):
        freeze(exp, run, clock=at("2026-06-10T10:00:00"))
    run2 = tmp_path / "run2"
    record_read(run2, "web/42/trajectories", clock=at("2026-06-10T09:00:00"))  # web: no prediction reads it
    with pytest.raises(UngrokError, match="records training output of web/42/trajectories"):
        freeze(exp, run2, clock=at("2026-06-10T10:00:00"))
    assert not (run / "registry.json").exists() and not (run2 / "registry.json").exists()


def test_verify_fails_on_a_confirmatory_read_dated_before_the_freeze(exp, tmp_path):
    """A read recorded after the freeze, but by a clock set back: the dates break the order."""
    run = tmp_path / "run"
    reg = freeze(exp, run, clock=at("2026-06-10T10:00:00"))
    record_read(run, "web/42/trajectories", clock=at("2026-06-10T09:00:00"))
    with pytest.raises(UngrokError, match="confirmatory artifact web/42/trajectories was first read at 2026-06-10T09:00"):
        verify(reg.path)


def test_verify_fails_when_the_ledger_no_longer_holds_a_bound_pilot_read(exp, tmp_path):
    run = tmp_path / "run"
    record_read(run, "ts/7/trajectories", clock=at("2026-06-10T09:00:00"), sha256=SHA_A)
    reg = freeze(exp, run, clock=at("2026-06-10T10:00:00"))
    led = json.loads((run / "ledger.json").read_text())
    led["digests"]["ts/7/trajectories"] = SHA_B
    (run / "ledger.json").write_text(json.dumps(led))
    with pytest.raises(UngrokError, match="digests table disagrees with its hash chain at ts/7/trajectories"):
        verify(reg.path)


# --------------------------------------------------------------------------- never scored
def test_pilot_seeds_never_enter_a_scored_prediction(exp, tmp_path):
    reg = freeze(exp, tmp_path / "run", clock=at("2026-06-10T10:00:00"))
    governed = [rec("ts", s) for s in (42, 43, 44)]
    assert score(reg, evidence(governed)).outcomes[0].status == "PASS"
    with pytest.raises(UngrokError, match="pilot seed 7 .* exploratory and never scored"):
        score(reg, evidence([*governed, rec("ts", 7)]))


# --------------------------------------------------------------------------- ledger
def test_the_ledger_keeps_the_first_read_digest_and_the_first_start(tmp_path):
    t1 = record_read(tmp_path, "ts/7/trajectories", clock=at("2026-06-10T09:00:00"), sha256=SHA_A)
    t2 = record_read(tmp_path, "ts/7/trajectories", clock=at("2026-06-10T10:00:00"), sha256=SHA_B)
    assert t1 == t2 == "2026-06-10T09:00:00.000000Z"
    assert read_ledger(tmp_path).digests == {"ts/7/trajectories": SHA_A}
    record_start(tmp_path, "ts", 42, clock=at("2026-06-10T11:00:00"))
    record_start(tmp_path, "ts", 42, clock=at("2026-06-10T12:00:00"))  # a resume never moves it
    assert read_ledger(tmp_path).started == {"ts/42": "2026-06-10T11:00:00.000000Z"}


def test_freeze_and_verify_print_the_pilot_and_the_timeline(exp, tmp_path, capsys):
    reg = tmp_path / "run" / "registry.json"
    code, out, err = ungrok(["prereg", "freeze", exp, "--out", tmp_path / "run"], capsys)
    assert code == 0 and "pilot seeds [7, 8]: no pilot reads at freeze" in out, err
    code, out, err = ungrok(["prereg", "verify", reg], capsys)
    assert code == 0, err
    lines = out.splitlines()
    i = lines.index("order: no pilot reads at freeze")
    assert lines[i + 1].startswith("order: freeze ") and lines[i + 2] == "order: confirmatory training: not started"
    assert lines[i + 3] == "order: confirmatory reads: none yet" and "verified: nothing changed" in out
