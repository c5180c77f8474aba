"""Shared builders for the pre-registration tests: verdict records, vocabularies, a fake clock.

Imported by name (pytest puts this folder on sys.path); the `clock` fixture is in conftest.py."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ungrok.fate.config import DEFAULT_CONFIG
from ungrok.prereg.evaluate import Context, evaluate
from ungrok.prereg.evidence import Evidence
from ungrok.prereg.predictions import Vocabulary, compile_predictions

FAMILIES = frozenset(
    {"pronoun_gender_ref", "reflexive_gender", "det_an_choice", "a_an_adjective", "irregular_past",
     "negation_bare_verb"}
)
CELLS = ("ts", "web", "web_dn1.5", "kill_0", "kill_1", "kill_2", "kill_3")
SEEDS = [42, 43, 44]
VOCAB = Vocabulary(families=FAMILIES, cells=CELLS, measures=frozenset({"ood_conflict_final"}))


def stub_battery(path: Path, families) -> Path:
    """A battery file with one valid conflict item per family: freeze reads it with the real loader."""
    lines = [json.dumps({"family": f, "condition": "conflict", "probe": f"{f}.conflict", "category": "rule_vs_prior",
                         "template_id": "t", "split": "heldout", "prefix": f"{f} said", "correct": " a",
                         "distractor": " b", "chance": 0.5, "item_id": f"{f}.conflict/heldout/0000"})
             for f in families]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def canonical_sha(obj):
    """sha256 of canonical JSON (sorted keys, no spaces), worked out here independently of ungrok.hashing."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def rec(cell, seed, family="pronoun_gender_ref", fate="RECOVERED", valid=True, cf=0.9, cmax=0.95, **extra):
    """One evidence record; fields not given are absent (missing data), as in a real run without margins."""
    r = dict(cell=cell, seed=seed, family=family, fate=fate, agree_gate="pass" if valid else "fail",
             conflict_final=cf, conflict_max=cmax, agree_final=0.95, agree_max=0.96, n_checkpoints=40)
    r.update(extra)
    return r


def cm(value, valid=True, crossing=None, onset=None, **extra):
    """CM fields of a record (as fate.summarize adds them when margins exist)."""
    return dict(cm_final=value, cm_instrument_valid=valid, cm_zero_crossing=crossing, onset=onset, **extra)


def evidence(records, cells=None, families=None):
    return Evidence(
        classifier_sha256=DEFAULT_CONFIG.sha256(), records=records, cells=cells or {}, families=families or {}
    )


def run_one(pred, records, cells=None, families=None, invalid=None, quarantined=(), locked=True, vocab=VOCAB):
    """Compile one prediction (a dict or a one-line expression) and evaluate it."""
    item = {"name": "P", "expr": pred} if isinstance(pred, str) else {"name": "P", **pred}
    (p,) = compile_predictions([item], vocab)
    ctx = Context(
        evidence=evidence(records, cells, families),
        cfg=DEFAULT_CONFIG,
        governed=list(SEEDS),
        quarantined=list(quarantined),
        quarantine_locked=locked,
        invalid_cells=invalid or {},
    )
    return evaluate(p, ctx)


class FakeClock:
    """A clock the test moves by hand: each call returns the current time, then adds `step`."""

    def __init__(self, start="2026-06-10T12:00:00+00:00", step=timedelta(seconds=1)):
        self.now = datetime.fromisoformat(start)
        self.step = step

    def __call__(self):
        t = self.now
        self.now = t + self.step
        return t

    def at(self, iso):
        self.now = datetime.fromisoformat(iso).astimezone(timezone.utc)
        return self
