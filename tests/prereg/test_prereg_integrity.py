"""The integrity chain (prereg/integrity.py): registry, run ledger and every result read bind
each other by hash. Any edit of one of them, with or without recomputed hashes, a deleted,
truncated or reordered ledger, a freeze after training, a prediction registered after its data
were read: `prereg verify` exits 2 with one line, and `prereg score` refuses the same. A changed
result file makes the predictions reading it UNSCOREABLE, never PASS."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from prereg_helpers import FakeClock

from cli_helpers import run as ungrok
from ungrok.errors import UngrokError
from ungrok.fate.config import DEFAULT_CONFIG
from ungrok.hashing import sha256_json
from ungrok.prereg import predictions as preds
from ungrok.prereg.amend import amend
from ungrok.prereg.evidence import load_evidence
from ungrok.prereg.integrity import check_run, verify
from ungrok.prereg.ledger import Ledger, read_ledger, record_result, record_start
from ungrok.prereg.reads import record_read
from ungrok.prereg.registry import freeze
from ungrok.prereg.scoreboard import score

EXPERIMENT = """\
cells: [ts, web]
seeds: [42, 43]
predictions:
  - name: P1
    expr: pronoun_gender_ref has conflict_final >= 0.5 in all seeds of cell ts
  - name: W1
    expr: pronoun_gender_ref has conflict_final >= 0.5 in all seeds of cell web
"""
RUNS = [(c, s) for c in ("ts", "web") for s in (42, 43)]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_run(tmp_path: Path, *, amended: bool = True) -> Path:
    """A registered run folder as `ungrok run` leaves it: freeze (and an amendment), training
    starts, a read of each trajectory table (file, sha256), fates.json recorded then written, and
    a scoreboard.json naming the ledger head it was scored at."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT)
    run = tmp_path / "run"
    clock = FakeClock("2026-06-10T10:00:00+00:00")
    reg = freeze(exp, run, clock=clock).path
    if amended:
        amend(reg, {"changes": "documents the corpus sizes"}, "clarification", clock=clock)
    for cell, seed in RUNS:
        record_start(run, cell, seed, clock=clock)
    for cell, seed in RUNS:
        f = run / "cells" / cell / f"seed{seed}" / "traj.parquet"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(f"accuracies of {cell} {seed}: 0.9".encode())
        record_read(run, f"{cell}/{seed}/trajectories", clock=clock, sha256=sha(f.read_bytes()), path=f)
    text = json.dumps({"records": []}, indent=2, sort_keys=True) + "\n"
    record_result(run, "fates.json", sha(text.encode()), clock=clock)
    (run / "fates.json").write_text(text)
    board = {"registry_head_sha256": "…", "ledger_head_sha256": read_ledger(run).head}  # as the run scores
    (run / "scoreboard.json").write_text(json.dumps(board))
    return run


def evidence_file(tmp_path: Path, cf: float = 0.9) -> Path:
    recs = [dict(cell=c, seed=s, family="pronoun_gender_ref", fate="RECOVERED", agree_gate="pass",
                 conflict_final=cf, conflict_max=0.95, agree_final=0.95, agree_max=0.96, n_checkpoints=4)
            for c, s in RUNS]
    p = tmp_path / "evidence.json"
    p.write_text(json.dumps({"classifier_sha256": DEFAULT_CONFIG.sha256(), "records": recs}))
    return p




def refused(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """`verify` and `score` both exit 2 with the same one line; returns it."""
    reg = run / "registry.json"
    code, _, err = ungrok(["prereg", "verify", reg], capsys)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    code, out, err2 = ungrok(["prereg", "score", reg, "--evidence", evidence_file(tmp_path)], capsys)
    assert code == 2 and err2.strip() == err.strip(), (out, err2)
    return lines[0]


def rewrite_ledger(run: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Edit the ledger's entries and recompute every hash and table, as a careful forger would."""
    raw = json.loads((run / "ledger.json").read_text())
    entries = [{k: v for k, v in e.items() if k not in ("n", "prev", "hash")} for e in raw["entries"]]
    entries = edit(entries)
    led = Ledger()
    for e in entries:
        led.append(e["kind"], e["key"], e["at"], sha256=e["sha256"], path=e["path"], what=e["what"])
    (run / "ledger.json").write_text(json.dumps(led.model_dump(mode="json"), indent=2))


def edit_json(path: Path, edit) -> dict:  # type: ignore[no-untyped-def,type-arg]
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw, indent=2))
    return raw


def rehash_registry(raw: dict) -> None:  # type: ignore[type-arg]
    """Recompute the registry's own sha256 and its amendment chain after an edit."""
    raw["sha256"] = sha256_json({k: v for k, v in raw.items() if k not in ("sha256", "amendments")})
    prev = raw["sha256"]
    for a in raw["amendments"]:
        a["prev_sha256"] = prev
        a["sha256"] = prev = sha256_json({k: v for k, v in a.items() if k != "sha256"})


# --------------------------------------------------------------------------- a clean run
def test_a_clean_run_verifies_and_scores(tmp_path, capsys):
    run = make_run(tmp_path)
    lines = verify(run / "registry.json")
    assert "results: 5 of 5 file(s) read unchanged since their first read" in lines
    assert lines[-1] == "ledger: 2 registration(s) match the chain"
    code, out, err = ungrok(["prereg", "score", run / "registry.json", "--evidence", evidence_file(tmp_path)], capsys)
    assert code == 0 and "2 ✓ / 0 × / 0 ◦" in out, err
    led = read_ledger(run)
    assert led.entries[0].kind == "register" and led.entries[0].what == "freeze"
    assert json.loads((run / "registry.json").read_text())["ledger_head"] == "0" * 64  # nothing before it


# --------------------------------------------------------------------------- the ledger
def _swap_reads(entries: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    i = next(n for n, e in enumerate(entries) if e["kind"] == "read")
    entries[i], entries[i + 1] = entries[i + 1], entries[i]
    return entries


def _raw_ledger(run: Path, edit) -> None:  # type: ignore[no-untyped-def]
    edit_json(run / "ledger.json", edit)


LEDGER_EDITS = {
    "deleted": (lambda run: (run / "ledger.json").unlink(), "ledger.json beside it is missing"),
    "cut mid-file": (lambda run: (run / "ledger.json").write_bytes((run / "ledger.json").read_bytes()[:400]),
                     "not valid JSON any more"),
    "last entries dropped": (lambda run: _raw_ledger(run, lambda r: r.update(entries=r["entries"][:-3])),
                             "table disagrees with its hash chain"),
    "last entries dropped, rehashed": (lambda run: rewrite_ledger(run, lambda es: es[:-3]),
                                       "fates.json holds results, but the run ledger does not record it"),
    "cut before the amendment, rehashed": (lambda run: rewrite_ledger(run, lambda es: es[:1]),
                                           "amendment 1 is not in the run ledger"),
    "reordered": (lambda run: _raw_ledger(run, lambda r: r.update(entries=_swap_reads(r["entries"]))),
                  "does not follow the entry before it"),
    "reordered, rehashed": (lambda run: rewrite_ledger(run, _swap_reads),
                            "scoreboard.json was scored at run ledger entry .* no longer holds"),
    "a read moved before the freeze, rehashed": (
        lambda run: rewrite_ledger(run, lambda es: [es[-2], *es[:-2], es[-1]]),
        "freeze binds run ledger head .* the ledger or the registry was rewritten"),
    "a first-read time edited": (
        lambda run: _raw_ledger(run, lambda r: r["reads"].update({"ts/42/trajectories": "2026-06-01T00:00:00.000000Z"})),
        r"reads table disagrees with its hash chain at ts/42/trajectories"),
    "an entry edited": (
        lambda run: _raw_ledger(run, lambda r: r["entries"][-2].update(at="2026-06-01T00:00:00.000000Z")),
        "changed after it was recorded"),
    "the freeze record's sha256 edited, rehashed": (
        lambda run: rewrite_ledger(run, lambda es: [{**es[0], "sha256": "f" * 64}, *es[1:]]),
        "freeze does not match the run ledger's record of it"),
}


@pytest.mark.parametrize("case", list(LEDGER_EDITS))
def test_verify_and_score_refuse_a_tampered_ledger(tmp_path, capsys, case):
    run = make_run(tmp_path)
    tamper, needle = LEDGER_EDITS[case]
    tamper(run)
    line = refused(run, tmp_path, capsys)
    assert re.search(needle, line), (case, line)


def test_a_traj_edit_with_its_ledger_digest_recomputed_is_caught(tmp_path, capsys):
    run = make_run(tmp_path)
    f = run / "cells" / "ts" / "seed42" / "traj.parquet"
    f.write_bytes(b"accuracies of ts 42: 1.0")

    def new_digest(entries: list[dict]) -> list[dict]:  # type: ignore[type-arg]
        for e in entries:
            if e["key"] == "ts/42/trajectories":
                e["sha256"] = sha(f.read_bytes())
        return entries

    rewrite_ledger(run, new_digest)
    assert "scoreboard.json was scored at run ledger entry" in refused(run, tmp_path, capsys)


# --------------------------------------------------------------------------- the registry
def test_an_edited_quorum_with_a_recomputed_registry_sha256_is_caught(tmp_path, capsys):
    run = make_run(tmp_path)

    def loosen(raw: dict) -> None:  # type: ignore[type-arg]
        raw["predictions"][0]["quorum"] = ">= 1/2"
        rehash_registry(raw)

    edit_json(run / "registry.json", loosen)
    assert "freeze does not match the run ledger's record of it" in refused(run, tmp_path, capsys)


def test_a_removed_amendment_is_caught(tmp_path, capsys):
    run = make_run(tmp_path)
    edit_json(run / "registry.json", lambda raw: raw.update(amendments=[]))
    line = refused(run, tmp_path, capsys)
    assert "records amendment 1" in line and "an amendment was removed" in line


def test_a_prediction_forged_in_after_its_data_were_read_is_caught(tmp_path, capsys):
    """Registry and ledger both rewritten with valid hashes: the chain's order still shows it."""
    run = make_run(tmp_path)
    reg_path = run / "registry.json"
    raw = json.loads(reg_path.read_text())
    reg = check_run(reg_path).registry
    (late,) = preds.compile_predictions(
        [{"name": "P9", "expr": "pronoun_gender_ref has conflict_final >= 0.8 in all seeds of cell ts"}],
        reg.vocabulary(), taken=reg.names())
    head = read_ledger(run).head
    a = {"index": 2, "created_utc": "2026-06-10T11:00:00.000000Z", "kind": "amend", "reason": "late",
         "predictions": preds.dump([late]), "changes": None, "unlocked_seeds": [],
         "prev_sha256": raw["amendments"][-1]["sha256"], "ledger_head": head}
    a["sha256"] = sha256_json(a)
    raw["amendments"].append(a)
    reg_path.write_text(json.dumps(raw, indent=2))
    rewrite_ledger(run, lambda es: [*es, {"kind": "register", "key": "registry.json", "at": a["created_utc"],
                                          "sha256": a["sha256"], "path": None, "what": "amendment 2"}])
    line = refused(run, tmp_path, capsys)
    assert "prediction P9 (amendment 2) governs ts/42/trajectories" in line
    assert "registered after its data were read" in line


def test_a_registry_moved_after_training_in_a_rewritten_ledger_is_caught(tmp_path, capsys):
    run = make_run(tmp_path, amended=False)

    def freeze_last(entries: list[dict]) -> list[dict]:  # type: ignore[type-arg]
        return [*entries[1:-1], entries[0], entries[-1]]

    rewrite_ledger(run, freeze_last)
    led = read_ledger(run)
    before_freeze = next(e for e in led.entries if e.kind == "register").prev

    def rebind(raw: dict) -> None:  # type: ignore[type-arg]
        raw["ledger_head"] = before_freeze
        rehash_registry(raw)

    new = edit_json(run / "registry.json", rebind)
    rewrite_ledger(run, lambda es: [{**e, "sha256": new["sha256"]} if e["kind"] == "register" else e for e in es])
    line = refused(run, tmp_path, capsys)
    assert "the order is broken" in line and "before the freeze" in line


@pytest.mark.parametrize("trained", ["a file in a seed folder", "a training start", "a read"])
def test_a_freeze_after_training_output_exists_is_refused(tmp_path, trained):
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT)
    run = tmp_path / "run"
    if trained == "a file in a seed folder":
        (run / "cells" / "web" / "seed43").mkdir(parents=True)
        (run / "cells" / "web" / "seed43" / "config.json").write_text("{}")
        needle = "training output cells/web/seed43/config.json already exists"
    elif trained == "a training start":
        record_start(run, "web", 43)
        needle = "records training output of web/43"
    else:
        record_read(run, "kill/99/trajectories")  # a seed the experiment does not even list
        needle = "records training output of kill/99/trajectories"
    with pytest.raises(UngrokError, match=needle):
        freeze(exp, run)
    assert not (run / "registry.json").exists()


# --------------------------------------------------------------------------- results
def test_a_changed_trajectory_is_named_by_verify_and_scored_unscoreable(tmp_path, capsys):
    run = make_run(tmp_path)
    (run / "cells" / "ts" / "seed42" / "traj.parquet").write_bytes(b"accuracies of ts 42: 1.0")
    code, _, err = ungrok(["prereg", "verify", run / "registry.json"], capsys)
    assert code == 2 and "cells/ts/seed42/traj.parquet (ts/42/trajectories) changed since its first read" in err
    code, out, err = ungrok(["prereg", "score", run / "registry.json", "--evidence", evidence_file(tmp_path),
                             "--json", tmp_path / "board.json"], capsys)
    assert code == 0, err
    assert "warning: result cells/ts/seed42/traj.parquet" in out
    by = {o["name"]: o for o in json.loads((tmp_path / "board.json").read_text())["outcomes"]}
    assert by["P1"]["status"] == "UNSCOREABLE" and by["P1"]["reason"].startswith("a result it reads changed")
    assert by["W1"]["status"] == "PASS"  # web was not touched


def test_a_deleted_trajectory_or_an_edited_fates_file_is_caught(tmp_path):
    run = make_run(tmp_path)
    (run / "cells" / "web" / "seed43" / "traj.parquet").unlink()
    with pytest.raises(UngrokError, match=r"traj.parquet \(web/43/trajectories\) is missing since its first read"):
        verify(run / "registry.json")
    run2 = make_run(tmp_path / "b")
    edit_json(run2 / "fates.json", lambda d: d["records"].append({"cell": "ts"}))
    with pytest.raises(UngrokError, match=r"fates.json \(fates.json\) changed since its first read"):
        verify(run2 / "registry.json")
    integ = check_run(run2 / "registry.json")
    board = score(integ.registry, load_evidence(evidence_file(tmp_path)), ledger=integ.ledger, changed=integ.changed)
    assert {o.status for o in board.outcomes} == {"UNSCOREABLE"}  # fates.json feeds every verdict


def test_amend_refuses_what_verify_refuses(tmp_path):
    run = make_run(tmp_path)
    (run / "ledger.json").unlink()
    with pytest.raises(UngrokError, match="ledger.json beside it is missing"):
        amend(run / "registry.json", {"changes": "more"}, "why", clock=FakeClock("2026-07-01T00:00:00+00:00"))
