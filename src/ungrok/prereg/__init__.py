"""prereg: predictions registered before the data exist, enforced by the tool.

freeze -> registry (hashed, dated; amendments hash-chained) ; ledger (first read of each
run artifact; quarantine) ; score -> scoreboard (PASS / FAIL / UNSCOREABLE, falsifiers).
"""

from ungrok.prereg.clock import Clock, parse_stamp, stamp, utc_now
from ungrok.prereg.evaluate import Result, evaluate
from ungrok.prereg.evidence import Evidence, SeedRecord, load_evidence, records_for_run
from ungrok.prereg.ledger import (
    LEDGER_NAME,
    REGISTRY_NAME,
    Ledger,
    artifact_key,
    check_readable,
    read_ledger,
    record_read,
)
from ungrok.prereg.predictions import Gates, Prediction, Vocabulary, compile_predictions
from ungrok.prereg.registry import (
    Amendment,
    Registry,
    amend,
    freeze,
    freeze_warnings,
    load_registry,
    unlock,
    verify,
)
from ungrok.prereg.scoreboard import Outcome, Scoreboard, Summary, score, write_scoreboard
from ungrok.prereg.shorthand import parse_shorthand

__all__ = [
    "LEDGER_NAME",
    "REGISTRY_NAME",
    "Amendment",
    "Clock",
    "Evidence",
    "Gates",
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
