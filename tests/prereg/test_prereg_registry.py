"""Freezing, verifying, amending and unlocking a registry: hashes recomputed independently,
tampering detected and named, amendments chained, registration after a read refused."""

from __future__ import annotations

import hashlib
import json

import pytest
from prereg_helpers import FakeClock, canonical_sha, stub_battery

from ungrok.errors import UngrokError
from ungrok.fate.config import DEFAULT_CONFIG
from ungrok.prereg.amend import amend, unlock
from ungrok.prereg.integrity import verify
from ungrok.prereg.ledger import read_ledger
from ungrok.prereg.reads import check_readable, record_read
from ungrok.prereg.registry import freeze, freeze_warnings, load_registry

EXPERIMENT = """\
cells: [ts, web, kill_0, kill_1, kill_2, kill_3]
seeds: [42, 43, 44]
quarantined_seeds: [45]
batteries: {mini: battery.jsonl}
training: {steps: 100}   # keys of the experiment schema that the registry does not read
predictions:
  - name: P1
    group: grid
    expr: pronoun_gender_ref is RECOVERED+valid in >= 2/3 seeds of cell ts
  - name: K2
    group: kill
    expr: spearman(rate, mean cm_final of pronoun_gender_ref) over cells kill_* <= -0.8
  - name: B1
    expr: my_battery_family has conflict_final >= 0.5 in all seeds of cell ts
"""


@pytest.fixture
def exp(tmp_path):
    stub_battery(tmp_path / "battery.jsonl", ["my_battery_family", "pronoun_gender_ref"])
    p = tmp_path / "exp.yaml"
    p.write_text(EXPERIMENT)
    return p


@pytest.fixture
def frozen(exp, tmp_path, clock):
    reg = freeze(exp, tmp_path / "run", clock=clock)
    return reg.path


def test_freeze_records_everything_with_independently_checkable_hashes(exp, tmp_path):
    clock = FakeClock("2026-06-10T12:00:00+00:00")
    reg = freeze(exp, tmp_path / "run", clock=clock)
    assert reg.path == tmp_path / "run" / "registry.json"
    raw = json.loads(reg.path.read_text())
    content = {k: v for k, v in raw.items() if k not in ("sha256", "amendments")}
    assert raw["sha256"] == canonical_sha(content)
    assert raw["created_utc"] == "2026-06-10T12:00:00.000000Z"
    assert raw["experiment"] == {
        "path": "../exp.yaml",
        "sha256": hashlib.sha256(exp.read_bytes()).hexdigest(),
    }
    battery_sha = hashlib.sha256((tmp_path / "battery.jsonl").read_bytes()).hexdigest()
    assert raw["batteries"] == {"mini": {"path": "../battery.jsonl", "sha256": battery_sha}}
    assert raw["classifier_sha256"] == DEFAULT_CONFIG.sha256()
    assert raw["classifier"]["displaced_thr"] == 0.6
    assert raw["seeds"] == {"governed": [42, 43, 44], "quarantined": [45]}
    assert [p["name"] for p in raw["predictions"]] == ["P1", "K2", "B1"]
    assert raw["predictions"][1]["cells"] == ["kill_0", "kill_1", "kill_2", "kill_3"]
    assert "my_battery_family" in raw["families"] and "pronoun_gender_ref" in raw["families"]
    assert raw["amendments"] == []
    led = read_ledger(tmp_path / "run")
    assert [(r.what, r.sha256) for r in led.registrations] == [("freeze", raw["sha256"])]
    lines = verify(reg.path)
    assert any("experiment file ../exp.yaml: unchanged" in ln for ln in lines)
    assert lines[-1] == "ledger: 1 registration(s) match the chain"


def test_freeze_never_overwrites(exp, frozen, clock):
    before = frozen.read_bytes()
    with pytest.raises(UngrokError, match="never overwritten"):
        freeze(exp, frozen, clock=clock)
    with pytest.raises(UngrokError, match="never overwritten"):
        freeze(exp, frozen.parent, clock=clock)
    assert frozen.read_bytes() == before


def test_a_deleted_registry_cannot_be_frozen_again_in_the_same_run(exp, frozen, clock):
    frozen.unlink()
    with pytest.raises(UngrokError, match="already records a registry"):
        freeze(exp, frozen, clock=clock)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"test": "<= -0.8"', '"test": "<= -0.7"'),  # a threshold
        ('"displaced_thr": 0.6', '"displaced_thr": 0.7'),  # a classifier constant
        ('"quarantined": [\n      45\n    ]', '"quarantined": []'),  # unlocking by hand
        ('"name": "P1"', '"name": "Q1"'),
    ],
)
def test_verify_names_a_changed_registry(frozen, old, new):
    text = frozen.read_text()
    assert old in text
    frozen.write_text(text.replace(old, new, 1))
    with pytest.raises(UngrokError, match="the frozen registry changed after it was frozen"):
        verify(frozen)


def test_verify_catches_a_single_flipped_byte_anywhere_in_the_content(frozen):
    data = bytearray(frozen.read_bytes())
    # flip one digit inside the recorded experiment hash: still valid JSON, different content
    i = data.index(b'"sha256": "', data.index(b'"experiment"')) + len(b'"sha256": "')
    data[i] = ord("0") if data[i] != ord("0") else ord("1")
    frozen.write_bytes(bytes(data))
    with pytest.raises(UngrokError, match="changed after it was frozen"):
        verify(frozen)


def test_verify_names_a_broken_json_file(frozen):
    frozen.write_bytes(frozen.read_bytes()[:-5])
    with pytest.raises(UngrokError, match="not valid JSON any more"):
        verify(frozen)


def test_verify_names_a_changed_experiment_file_or_battery(exp, frozen, tmp_path):
    exp.write_text(EXPERIMENT.replace("<= -0.8", "<= -0.7"))
    with pytest.raises(UngrokError, match=r"experiment file \.\./exp\.yaml changed since the freeze"):
        verify(frozen)
    exp.write_text(EXPERIMENT)
    verify(frozen)
    bat = tmp_path / "battery.jsonl"
    bat.write_bytes(bat.read_bytes().replace(b"conflict", b"conflicT"))
    with pytest.raises(UngrokError, match=r"battery mini \.\./battery\.jsonl changed"):
        verify(frozen)
    bat.unlink()
    with pytest.raises(UngrokError, match="battery mini .* is missing"):
        verify(frozen)


AMEND_1 = {"predictions": [{"name": "R1", "group": "rescue",
                            "expr": "pronoun_gender_ref has cm_final > 0 in >= 2 seeds of cell web"}],
           "changes": "adds the rescue prediction"}
AMEND_2 = {"changes": "documents that kill_2 uses p = 0.645"}


def test_amendments_append_and_chain(frozen, clock):
    base = load_registry(frozen)
    a1 = amend(frozen, AMEND_1, "rescue registered before training", clock=clock)
    a2 = amend(frozen, AMEND_2, "clarification", clock=clock)
    reg = load_registry(frozen, check_files=True)
    assert reg.sha256 == base.sha256 and reg.predictions == base.predictions  # the frozen part is untouched
    assert [a.index for a in reg.amendments] == [1, 2]
    assert a1.prev_sha256 == base.sha256 and a2.prev_sha256 == a1.sha256
    raw = json.loads(frozen.read_text())
    for a in raw["amendments"]:
        assert a["sha256"] == canonical_sha({k: v for k, v in a.items() if k != "sha256"})
    assert reg.head_sha256 == a2.sha256
    assert [(p.name, where) for p, _, where in reg.registered()] == [
        ("P1", "freeze"), ("K2", "freeze"), ("B1", "freeze"), ("R1", "amendment 1")]
    assert verify(frozen)[-1] == "ledger: 3 registration(s) match the chain"


def test_amendment_input_is_checked(frozen, clock):
    with pytest.raises(UngrokError, match="needs a --reason"):
        amend(frozen, AMEND_1, "  ", clock=clock)
    with pytest.raises(UngrokError, match="nothing to amend"):
        amend(frozen, {"changes": " "}, "why", clock=clock)
    with pytest.raises(UngrokError, match="P1: the name is already registered"):
        amend(frozen, {"predictions": [{"name": "P1", "expr": "pronoun_gender_ref is NEVER in any seed of cell ts"}]},
              "why", clock=clock)
    with pytest.raises(UngrokError, match="unknown family 'nope'"):
        amend(
            frozen,
            {"predictions": [{"name": "Z", "expr": "nope is NEVER in any seed of cell ts"}]},
            "w",
            clock=clock,
        )
    with pytest.raises(UngrokError, match="amendment file: colour"):
        amend(frozen, {"colour": "red"}, "why", clock=clock)
    assert load_registry(frozen).amendments == []  # nothing was appended by a refused amendment


def test_an_amendment_cannot_be_dated_before_the_last_entry(frozen):
    with pytest.raises(UngrokError, match="not after the registry's last entry"):
        amend(frozen, AMEND_2, "why", clock=FakeClock("2020-01-01T00:00:00+00:00"))


def _edit_amendment(path, i, **changes):
    raw = json.loads(path.read_text())
    raw["amendments"][i].update(changes)
    path.write_text(json.dumps(raw, indent=2))
    return raw


def test_editing_an_old_amendment_is_detected(frozen, clock):
    amend(frozen, AMEND_1, "first", clock=clock)
    amend(frozen, AMEND_2, "second", clock=clock)
    raw = _edit_amendment(frozen, 0, reason="a better-sounding reason")
    with pytest.raises(UngrokError, match=r"amendment 1 \(dated .*\) changed after it was recorded"):
        verify(frozen)
    # re-hashing the edited amendment breaks the link to the next one
    a = raw["amendments"][0]
    _edit_amendment(frozen, 0, sha256=canonical_sha({k: v for k, v in a.items() if k != "sha256"}))
    with pytest.raises(UngrokError, match="amendment 2 .*hash chain broken"):
        verify(frozen)


def test_a_fully_rehashed_chain_still_disagrees_with_the_ledger(frozen, clock):
    amend(frozen, AMEND_1, "first", clock=clock)
    raw = json.loads(frozen.read_text())
    a = raw["amendments"][0]
    a["reason"] = "rewritten"
    a["sha256"] = canonical_sha({k: v for k, v in a.items() if k != "sha256"})
    frozen.write_text(json.dumps(raw))
    with pytest.raises(UngrokError, match="amendment 1 does not match the run ledger's record"):
        verify(frozen)


def test_removing_the_last_amendment_is_detected_by_the_ledger(frozen, clock):
    amend(frozen, AMEND_1, "first", clock=clock)
    amend(frozen, AMEND_2, "second", clock=clock)
    raw = json.loads(frozen.read_text())
    raw["amendments"] = raw["amendments"][:1]
    frozen.write_text(json.dumps(raw))
    with pytest.raises(UngrokError, match="records amendment 2 .* an amendment was removed"):
        verify(frozen)


def test_removing_a_middle_amendment_breaks_the_chain(frozen, clock):
    amend(frozen, AMEND_1, "first", clock=clock)
    amend(frozen, AMEND_2, "second", clock=clock)
    raw = json.loads(frozen.read_text())
    raw["amendments"] = raw["amendments"][1:]
    frozen.write_text(json.dumps(raw))
    with pytest.raises(UngrokError, match="amendment 1 .*hash chain broken"):
        verify(frozen)


# --------------------------------------------------------------------------- read before register
def test_prediction_registered_after_its_data_were_read_is_refused(frozen):
    run = frozen.parent
    clock = FakeClock("2026-06-11T09:00:00+00:00")
    record_read(run, "web/43/trajectories", clock=clock)  # read at 09:00:00
    late = {"predictions": [{"name": "R9", "expr": "pronoun_gender_ref has died in all seeds of cell web"}]}
    with pytest.raises(UngrokError) as e:
        amend(frozen, late, "too late", clock=clock.at("2026-06-11T10:00:00+00:00"))
    msg = str(e.value)
    assert "prediction R9 governs web/43/trajectories" in msg
    assert "first read at 2026-06-11T09:00:00.000000Z" in msg
    assert "registration at 2026-06-11T10:00:00.000000Z" in msg
    # a prediction on data nobody has read yet is still welcome
    fine = {
        "predictions": [{"name": "R10", "expr": "pronoun_gender_ref has died in all seeds of cell kill_3"}]
    }
    amend(frozen, fine, "kill_3 not read yet", clock=clock)
    assert [p.name for p, _, _ in load_registry(frozen).registered()][-1] == "R10"


def test_freeze_is_refused_when_governed_data_were_already_read(exp, tmp_path):
    run = tmp_path / "run"
    record_read(run, "kill_1/44/margins", clock=FakeClock("2026-06-10T08:00:00+00:00"))
    with pytest.raises(
        UngrokError,
        match=r"prediction K2 governs kill_1/44/margins, which was first read at 2026-06-10T08:00",
    ):
        freeze(exp, run, clock=FakeClock("2026-06-10T09:00:00+00:00"))
    assert not (run / "registry.json").exists()


# --------------------------------------------------------------------------- quarantine
def test_quarantined_seeds_cannot_be_read_until_unlocked(frozen, clock):
    run = frozen.parent
    with pytest.raises(UngrokError, match="cell ts seed 45 is a quarantined replication seed"):
        record_read(run, "ts/45/trajectories", clock=clock)
    with pytest.raises(UngrokError, match="quarantined"):
        check_readable(run, "web", 45)
    assert "ts/45/trajectories" not in read_ledger(run).reads  # a refused read is not recorded
    check_readable(run, "web", 44)  # governed seeds are readable
    with pytest.raises(UngrokError, match="needs a --reason"):
        unlock(frozen, "", clock=clock)
    a = unlock(frozen, "primary analysis complete and scored", clock=clock)
    assert (a.kind, a.unlocked_seeds) == ("unlock", [45])
    check_readable(run, "ts", 45)
    first = record_read(run, "ts/45/trajectories", clock=clock)
    assert read_ledger(run).reads["ts/45/trajectories"] == first
    with pytest.raises(UngrokError, match="no quarantined seeds are locked"):
        unlock(frozen, "again", clock=clock)
    verify(frozen)


def test_freeze_warns_of_predictions_that_can_only_be_unscoreable(tmp_path, clock):
    # one governed seed: a CM-guarded cell mean needs 2 valid seeds, and a 2/3 quorum needs 2 seeds
    stub_battery(tmp_path / "battery.jsonl", ["pronoun_gender_ref"])
    p = tmp_path / "exp.yaml"
    p.write_text(
        "cells: [ts, web]\nseeds: [0]\nbatteries: {mini: battery.jsonl}\npredictions:\n"
        "  - {name: G, expr: mean cm_final of pronoun_gender_ref in cell web < 0, gates: {cm_guard: true}}\n"
        "  - {name: M, expr: mean cm_final of pronoun_gender_ref in cell web < 0}\n"
        "  - {name: Q, expr: pronoun_gender_ref has cm_final < 0 in all seeds of cell web}\n"
        "  - {name: R, expr: pronoun_gender_ref has conflict_final > 0.5 in all seeds of cell ts, seeds: quarantined}\n"
    )
    reg = freeze(p, tmp_path / "run", clock=clock)
    warnings = freeze_warnings(reg)
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith("G: a cell mean over CM-instrument-valid seeds needs 2")
    assert warnings[1].startswith("Q: the CM guard needs 2 instrument-valid seeds per cell")
    assert warnings[2] == "R reads the quarantined seeds, and the experiment lists none"
    # the default (every seed, as the paper averages) is scoreable with one seed: no warning for M
