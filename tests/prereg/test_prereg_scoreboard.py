"""The scoreboard: a frozen registry scored against hand-made evidence, checked against the paper's
Step-6 kill group (3 ✓ / 0 × / 2 ◦, falsifier silent) and against the evidence checks."""

from __future__ import annotations

import json

import pytest
from prereg_helpers import SEEDS, FakeClock, cm, rec

from ungrok.errors import UngrokError
from ungrok.fate.config import ClassifierConfig
from ungrok.prereg.amend import unlock
from ungrok.prereg.evidence import Evidence, SeedRecord, load_evidence, records_for_run
from ungrok.prereg.ledger import Ledger
from ungrok.prereg.registry import freeze, load_registry
from ungrok.prereg.scoreboard import score, write_scoreboard

# The paper's Step-6 kill registrations (docs/method.md §9.2), on cells named by kill rate.
KILL_EXPERIMENT = """\
cells: [kill_0, kill_437, kill_645, kill_1]
seeds: [42, 43, 44]
quarantined_seeds: [45]
cell_numbers: [rate]
predictions:
  - name: K1-behavioural
    group: Step 6 kill
    expr: pronoun_gender_ref has died in >= 2/3 seeds of cell kill_645
    gates: {intervention: ks}
  - name: K1-CM
    group: Step 6 kill
    expr: pronoun_gender_ref has cm_final < 0 in >= 2 seeds of cell kill_645
    gates: {intervention: ks}
  - name: K1c-behavioural
    group: Step 6 kill
    expr: pronoun_gender_ref has died in >= 2/3 seeds of cell kill_1
    gates: {intervention: ks}
  - name: K1c-CM
    group: Step 6 kill
    expr: pronoun_gender_ref has cm_final < 0 in >= 2 seeds of cell kill_1
    gates: {intervention: ks}
  - name: K2
    group: Step 6 kill
    expr: spearman(rate, mean cm_final of pronoun_gender_ref) over cells kill_* <= -0.8
    gates: {cm_guard: false}
  - name: K-falsifier
    group: Step 6 kill
    falsifier: true
    kind: all
    of:
      - pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell kill_645
      - pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell kill_1
  - name: CMR1
    group: replication
    expr: pronoun_gender_ref has cm_final < 0 in all seeds of cell kill_1
    seeds: quarantined
"""

RATES = {"kill_0": 0.0, "kill_437": 0.437, "kill_645": 0.645, "kill_1": 1.0}
CM_MEANS = {"kill_0": 1.2, "kill_437": 0.4, "kill_645": -0.38, "kill_1": -0.9}


def controls(cell, lost=()):
    out = []
    for fam in ("det_an_choice", "a_an_adjective", "irregular_past", "negation_bare_verb"):
        for s in SEEDS:
            gone = fam in lost and s != 42  # lost in 2 of 3 seeds
            out.append(rec(cell, s, fam, "DISPLACED" if gone else "RECOVERED", cf=0.3 if gone else 0.95))
    return out


def kill_evidence():
    records = []
    for cell, mean in CM_MEANS.items():
        died = cell in ("kill_645", "kill_1")
        for j, s in enumerate(SEEDS):
            fields = cm(mean + (j - 1) * 0.02, valid=(s != 44))  # seed 44 fails the CM guard everywhere
            records.append(rec(cell, s, "pronoun_gender_ref", "DISPLACED" if died else "RECOVERED",
                               cf=0.2 if died else 0.95, **fields))
        # kill_645: the KS gate fires (det_an_choice and a_an_adjective lost in 2/3 seeds)
        records += controls(cell, lost=("det_an_choice", "a_an_adjective") if cell == "kill_645" else ())
    return Evidence(
        classifier_sha256=ClassifierConfig().sha256(),
        records=records,
        cells={c: {"rate": r} for c, r in RATES.items()},
    )


def plus(ev, *records):
    """The evidence with extra records (validated, as a runner's JSON would be)."""
    return ev.model_copy(update={"records": [*ev.records, *(SeedRecord.model_validate(r) for r in records)]})


@pytest.fixture
def registry(tmp_path):
    (tmp_path / "kill.yaml").write_text(KILL_EXPERIMENT)
    return freeze(tmp_path / "kill.yaml", tmp_path / "run", clock=FakeClock())


def test_the_paper_step6_kill_group(registry):
    board = score(registry, kill_evidence())
    got = {o.name: o.status for o in board.outcomes}
    assert got == {
        "K1-behavioural": "UNSCOREABLE",  # KS gate fired at p = 0.645 (at face value it would pass)
        "K1-CM": "UNSCOREABLE",
        "K1c-behavioural": "PASS",
        "K1c-CM": "PASS",
        "K2": "PASS",
        "K-falsifier": "FAIL",
        "CMR1": "UNSCOREABLE",  # replication seeds: registered, never read
    }
    by = {o.name: o for o in board.outcomes}
    assert "kill_645 is INTERVENTION-INVALID: det_an_choice, a_an_adjective" in by["K1-CM"].reason
    assert by["K2"].value == pytest.approx(-1.0) and "p = 0.0417" in by["K2"].reason
    assert by["K-falsifier"].falsifier and by["K-falsifier"].triggered is False
    assert by["K1c-CM"].value == "2/3"  # seed 44 is not CM-valid; 2 valid seeds below zero
    s = board.summary
    assert (s.passed, s.failed, s.unscoreable, s.triggered, s.silent) == (3, 0, 3, 0, 1)
    assert s.line() == "3 ✓ / 0 × / 3 ◦; falsifiers: 0 of 1 applicable triggered"
    groups = {g.group: g for g in board.groups}
    kill = groups["Step 6 kill"]
    assert (kill.passed, kill.failed, kill.unscoreable, kill.falsifier) == (
        3,
        0,
        2,
        "silent",
    )  # Table 2's row
    assert (board.registry_sha256, board.classifier_sha256) == (registry.sha256, registry.classifier_sha256)


def test_a_triggered_falsifier(registry):
    ev = kill_evidence()
    revived = [
        r.model_copy(update={"fate": "RECOVERED", "conflict_final": 0.95})
        if r.family == "pronoun_gender_ref" and r.cell in ("kill_645", "kill_1") else r
        for r in ev.records
    ]
    board = score(registry, ev.model_copy(update={"records": revived}), invalid_cells={})
    fal = next(o for o in board.outcomes if o.name == "K-falsifier")
    assert (fal.status, fal.triggered) == ("PASS", True)
    assert board.summary.line().endswith("falsifiers: 1 of 1 applicable triggered")


def test_unlocked_replication_seeds_are_scored(registry):
    unlock(registry.path, "primary results reported", clock=FakeClock("2026-07-01T00:00:00+00:00"))
    reg = load_registry(registry.path)
    board = score(
        reg, plus(kill_evidence(), rec("kill_1", 45, "pronoun_gender_ref", "DISPLACED", cf=0.2, **cm(-0.5)))
    )
    cmr = next(o for o in board.outcomes if o.name == "CMR1")
    # one quarantined seed, CM-valid, below zero; but a CM cell verdict needs 2 valid seeds
    assert cmr.status == "UNSCOREABLE" and "a CM verdict needs 2" in cmr.reason


def test_invalid_cells_given_by_the_run(registry):
    board = score(registry, kill_evidence(), ["kill_1"])
    by = {o.name: o for o in board.outcomes}
    assert by["K1c-behavioural"].status == "UNSCOREABLE"
    assert "kill_1 is INTERVENTION-INVALID (flagged by the run)" in by["K1c-behavioural"].reason
    assert by["K2"].status == "UNSCOREABLE"  # it reads kill_1 too
    with pytest.raises(UngrokError, match="invalid cell 'nope'"):
        score(registry, kill_evidence(), ["nope"])


def test_evidence_must_match_the_registry(registry):
    ev = kill_evidence()
    with pytest.raises(UngrokError, match="classified with constants sha256"):
        score(
            registry,
            ev.model_copy(update={"classifier_sha256": ClassifierConfig(displaced_thr=0.5).sha256()}),
        )
    with pytest.raises(UngrokError, match="quarantined seed 45 .* locked"):
        score(registry, plus(ev, rec("kill_1", 45)))
    with pytest.raises(UngrokError, match="holds cell 'web'"):
        score(registry, plus(ev, rec("web", 42)))
    with pytest.raises(UngrokError, match="seed 7"):
        score(registry, plus(ev, rec("kill_1", 7)))
    with pytest.raises(UngrokError, match="appears twice"):
        score(registry, plus(ev, ev.records[0].model_dump(exclude_unset=True)))


def test_post_hoc_predictions_get_no_verdict(registry):
    # a ledger (e.g. from another copy of the run) whose read of kill_1 precedes the freeze
    led = Ledger(reads={"kill_1/43/trajectories": "2020-01-01T00:00:00.000000Z"})
    board = score(registry, kill_evidence(), ledger=led)
    by = {o.name: o for o in board.outcomes}
    assert by["K1c-CM"].status == "UNSCOREABLE"
    assert by["K1c-CM"].reason.startswith("post hoc: kill_1/43/trajectories was first read at 2020-01-01")
    assert by["K2"].status == "UNSCOREABLE" and by["K2"].reason.startswith("post hoc")  # K2 reads kill_1 too
    assert "INTERVENTION-INVALID" in by["K1-CM"].reason  # kill_645 was not read early: its own reason


def test_scoreboard_json_and_no_silent_overwrite(registry, tmp_path):
    board = score(registry, kill_evidence())
    out = tmp_path / "scoreboard.json"
    write_scoreboard(out, board)
    data = json.loads(out.read_text())
    assert data["registry_sha256"] == registry.sha256 and data["summary"]["passed"] == 3
    assert [o["name"] for o in data["outcomes"]][:2] == ["K1-behavioural", "K1-CM"]
    with pytest.raises(FileExistsError):
        write_scoreboard(out, board)
    # same inputs, same bytes
    write_scoreboard(out, score(registry, kill_evidence()), force=True)
    assert json.loads(out.read_text()) == data


def test_evidence_file_round_trip_and_bad_files(tmp_path):
    summary = [{"run": "s42", "family": "pronoun_gender_ref", "fate": "RECOVERED", "letter": "R",
                "agree_gate": "pass", "confirmatory": True, "conflict_final": 0.9, "conflict_max": 0.95,
                "agree_final": 0.97, "agree_max": 0.98, "n_checkpoints": 44, "onset": 4400,
                "transient": False}]
    recs = records_for_run(
        "ts", 42, summary, steps=[300, 100, 200], extra={"pronoun_gender_ref": {"ood": 0.8}}
    )
    assert recs[0]["cell"] == "ts" and recs[0]["steps"] == [100, 200, 300] and recs[0]["ood"] == 0.8
    p = tmp_path / "evidence.json"
    p.write_text(json.dumps({"classifier_sha256": "x", "records": recs}))
    ev = load_evidence(p)
    r = ev.records[0]
    assert r.has("ood") and r.get("ood") == 0.8 and not r.has("cm_final") and r.has("onset")
    p.write_text(json.dumps({"classifier_sha256": "x", "records": [{**recs[0], "fate": "GONE"}]}))
    with pytest.raises(UngrokError, match=r"evidence file: records\.0\.fate"):
        load_evidence(p)
    p.write_text(json.dumps({"classifier_sha256": "x", "records": [{**recs[0], "ood": "high"}]}))
    with pytest.raises(UngrokError, match="extra measure 'ood' must be a finite number"):
        load_evidence(p)
    p.write_text("{")
    with pytest.raises(UngrokError, match="not valid JSON"):
        load_evidence(p)
