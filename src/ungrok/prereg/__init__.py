"""prereg: predictions registered before the data exist, enforced by the tool.

freeze -> registry (hashed, dated; amendments hash-chained) ; ledger (a hash chain of first
reads with file hashes, training starts and registrations; quarantine) ; integrity (the
check verify, score and the runner share) ; score -> scoreboard (PASS / FAIL / UNSCOREABLE).
"""

from ungrok.prereg.amend import amend, unlock
from ungrok.prereg.clock import Clock, parse_stamp, stamp, utc_now
from ungrok.prereg.evaluate import Result, evaluate
from ungrok.prereg.evidence import Evidence, SeedRecord, load_evidence, records_for_run
from ungrok.prereg.integrity import Changed, Integrity, check_run, verify
from ungrok.prereg.ledger import (
    LEDGER_NAME,
    REGISTRY_NAME,
    Ledger,
    artifact_key,
    read_ledger,
)
from ungrok.prereg.predictions import Gates, Prediction, Vocabulary, compile_predictions
from ungrok.prereg.reads import check_readable, record_read
from ungrok.prereg.registry import Amendment, Registry, freeze, freeze_warnings, load_registry
from ungrok.prereg.scoreboard import Outcome, Scoreboard, Summary, score, write_scoreboard
from ungrok.prereg.shorthand import parse_shorthand

__all__ = [
    "LEDGER_NAME",
    "REGISTRY_NAME",
    "Amendment",
    "Changed",
    "Clock",
    "Evidence",
    "Gates",
    "Integrity",
    "Ledger",
    "Outcome",
    "Prediction",
    "Registry",
    "Result",
    "Scoreboard",
    "SeedRecord",
    "Summary",
    "Vocabulary",
    "amend",
    "artifact_key",
    "check_readable",
    "check_run",
    "compile_predictions",
    "evaluate",
    "freeze",
    "freeze_warnings",
    "load_evidence",
    "load_registry",
    "parse_shorthand",
    "parse_stamp",
    "read_ledger",
    "record_read",
    "records_for_run",
    "score",
    "stamp",
    "unlock",
    "utc_now",
    "verify",
    "write_scoreboard",
]
