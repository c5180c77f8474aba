"""Hostile input, every verb: one table of (arguments, fixture, exit status, message, files that
must not change). Bad input is one error line and exit 2, never a traceback, never a wrong
result with exit 0, and --force never touches an input, a registry, a ledger or a read corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import one_line_error, run
from ungrok.atomic import temp_prefix
from ungrok.corpus.storyworld import StoryworldConfig, build_storyworld

Builder = Callable[[Path, Path], None]
STALE = temp_prefix(Path("sw2"), 4194305) + "abc123.tmp"  # a temporary of a process that is gone
SW = "sw"  # the corpus every row's folder holds, copied from one built once per module
TINY_TRAIN = {
    "model": {"preset": "tiny"},
    "sampler": {"context": 32, "batch_size": 4, "steps": 4},
    "checkpoints": {"rules": [{"start": 0, "every": 2}]},
    "seed": 7,
}


@pytest.fixture(scope="module")
def base_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3k-token storyworld corpus: small enough to copy into every row's folder."""
    path = tmp_path_factory.mktemp("hostile") / SW
    build_storyworld(path, StoryworldConfig(tokens=3_000, seed=1))
    return path


# --------------------------------------------------------------------------- fixture builders
def nothing(_tmp: Path, _base: Path) -> None:
    """The row needs no files at all (its input is missing on purpose)."""


def corpus(tmp: Path, base: Path) -> None:
    shutil.copytree(base, tmp / SW)


def both(*builders: Builder) -> Builder:
    def build(tmp: Path, base: Path) -> None:
        for b in builders:
            b(tmp, base)

    return build


def with_corpus(*builders: Builder) -> Builder:
    return both(corpus, *builders)


def file(name: str, data: bytes | str) -> Builder:
    def build(tmp: Path, _base: Path) -> None:
        p = tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    return build


def manifest(**fields: object) -> Builder:
    """Forge manifest fields (the shards stay as built)."""

    def build(tmp: Path, _base: Path) -> None:
        p = tmp / SW / "manifest.json"
        doc = json.loads(p.read_text(encoding="utf-8"))
        doc.update(fields)
        p.write_text(json.dumps(doc), encoding="utf-8")

    return build


def flip_shard_byte(tmp: Path, _base: Path) -> None:
    """Damage a shard in place: same size, different bytes."""
    p = tmp / SW / "shard_00000.bin"
    data = bytearray(p.read_bytes())
    data[10] ^= 0x01
    p.write_bytes(bytes(data))


def edit_tokenizer(tmp: Path, _base: Path) -> None:
    p = tmp / SW / "tokenizer.json"
    p.write_text(p.read_text(encoding="utf-8") + "\n", encoding="utf-8")


def shrink_vocab(tmp: Path, base: Path) -> None:
    """A consistent-looking manifest whose vocabulary is smaller than the ids in its shards."""
    manifest(vocab_size=5)(tmp, base)


def parquet(name: str, column: str, values: list) -> Builder:
    def build(tmp: Path, _base: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({column: values}), tmp / name)

    return build


def battery_line(**changes: str) -> str:
    item = {"family": "pronoun_gender_ref", "condition": "conflict", "probe": "pronoun_gender_ref.conflict",
            "category": "rule_vs_prior", "template_id": "t", "split": "heldout", "prefix": "Sue cried because",
            "correct": " she", "distractor": " he", "chance": 0.5, "item_id": "x/0"}
    return json.dumps({**item, **changes}) + "\n"


def big_rule(tmp: Path, _base: Path) -> None:
    """A rule whose four 200-word slots multiply to 1.6 billion items."""
    words = "[" + ", ".join(f"w{i}" for i in range(200)) + "]"
    text = f"""name: huge_rule
event: {{kind: ngram}}
lists:
  A: {words}
probes:
  - id: "t_{{a}}_{{b}}_{{c}}_{{d}}"
    split: train
    condition: conflict
    prefix: "The {{a}} {{b}} {{c}} {{d}} was even"
    correct: " bigger"
    distractor: " more big"
    slots: {{a: "@A", b: "@A", c: "@A", d: "@A"}}
"""
    (tmp / "rd").mkdir()
    (tmp / "rd" / "huge_rule.yaml").write_text(text, encoding="utf-8")


def stale_temp(tmp: Path, _base: Path) -> None:
    """What a killed storyworld leaves: a half-built folder named for a process that is gone."""
    dead = tmp / STALE  # above Linux's largest pid: no such process
    dead.mkdir()
    (dead / "shard_00000.bin").write_bytes(b"\0" * 64)


def read_only_dir(tmp: Path, _base: Path) -> None:
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o555)


def train_yaml(tmp: Path, _base: Path) -> None:
    import yaml

    (tmp / "train.yaml").write_text(yaml.safe_dump(TINY_TRAIN), encoding="utf-8")


REGISTRY = file("registry.json", '{"frozen": true}\n')
LEDGER = file("ledger.json", '{"entries": []}\n')
TRAJ = parquet("traj.parquet", "run", ["a"])
BINARY = b"\xff\xfe\x00\x81 not yaml \xc3\x28"
KILL = ("edit", "kill", SW, "--rule", "pronoun_gender_ref", "--rate", "0.5")


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    build: Builder
    code: int
    message: str  # a fragment of the one error line (empty: exit 0 expected)
    unchanged: tuple[str, ...] = ()  # files or folders whose content hash must not change
    absent: tuple[str, ...] = ()  # paths that must not exist afterwards
    console: bool = False  # also run through the installed `ungrok` script
    needs_non_root: bool = False  # permission rows mean nothing to root


CASES = [
    # corpus build
    Case("build-missing-input", ("corpus", "build", "nope.txt", "--out", "c"), nothing, 2, "nope.txt"),
    Case("build-bad-shard-tokens", ("corpus", "build", "a.txt", "--out", "c", "--shard-tokens", "0"),
         file("a.txt", "hello world\n"), 2, "--shard-tokens 0"),
    Case("build-clobber-own-input-folder", ("corpus", "build", "docs", "--out", "docs", "--force"),
         file("docs/a.txt", "hello world\n"), 2, "is an input", unchanged=("docs",)),
    Case("build-clobber-folder-holding-input", ("corpus", "build", "d/a.txt", "--out", "d", "--force"),
         file("d/a.txt", "hello world\n"), 2, "holds d/a.txt", unchanged=("d",)),
    Case("build-int-text-column", ("corpus", "build", "n.parquet", "--out", "c", "--vocab-size", "300"),
         parquet("n.parquet", "text", [1, 2, 3]), 2, "not text", absent=("c",)),
    Case("build-out-is-a-file", ("corpus", "build", "a.txt", "--out", "a.txt"),
         file("a.txt", "hello\n"), 2, "not a folder", unchanged=("a.txt",)),
    # corpus storyworld
    Case("storyworld-tokens-1e30", ("corpus", "storyworld", "--out", "w", "--tokens", str(10**30)),
         nothing, 2, "--tokens", absent=("w",), console=True),
    Case("storyworld-tokens-float", ("corpus", "storyworld", "--out", "w", "--tokens", "1e30"),
         nothing, 2, "--tokens", absent=("w",)),
    Case("storyworld-negative-seed", ("corpus", "storyworld", "--out", "w", "--tokens", "100", "--seed", "-1"),
         nothing, 2, "--seed -1", absent=("w",)),
    Case("storyworld-25-digit-seed",
         ("corpus", "storyworld", "--out", "w", "--tokens", "100", "--seed", "1" * 25),
         nothing, 2, "a seed must be", absent=("w",)),
    Case("storyworld-out-is-a-file", ("corpus", "storyworld", "--out", "f", "--tokens", "100", "--force"),
         file("f", "x"), 2, "not a folder", unchanged=("f",)),
    Case("storyworld-force-over-registry-folder",
         ("corpus", "storyworld", "--out", "r", "--tokens", "100", "--force"),
         file("r/registry.json", "{}"), 2, "frozen registry", unchanged=("r",)),
    Case("storyworld-binary-config", ("corpus", "storyworld", "--out", "w", "--config", "k.yaml"),
         file("k.yaml", BINARY), 2, "not UTF-8", absent=("w",)),
    Case("storyworld-cleans-stale-temp", ("corpus", "storyworld", "--out", "sw2", "--tokens", "200"),
         stale_temp, 0, "", absent=(STALE,)),
    # corpus stats: the manifest loader refuses forged manifests for every reader
    Case("stats-missing", ("corpus", "stats", "nope"), nothing, 2, "not a corpus folder"),
    Case("stats-damaged-shard", ("corpus", "stats", SW), with_corpus(flip_shard_byte), 2, "does not match"),
    Case("stats-json-into-corpus", ("corpus", "stats", SW, "--json", f"{SW}/manifest.json"),
         corpus, 2, "inside the corpus", unchanged=(SW,)),
    Case("stats-format-version", ("corpus", "stats", SW), with_corpus(manifest(format_version=2)), 2,
         "unknown format_version 2"),
    Case("stats-empty-shards", ("corpus", "stats", SW),
         with_corpus(manifest(shards=[], total_tokens=0)), 2, "shard list is empty"),
    Case("stats-shard-outside", ("corpus", "stats", SW), with_corpus(manifest(shards=[
        {"file": "../x.bin", "tokens": 1, "sha256": "0" * 64}], total_tokens=1)), 2, "outside the corpus"),
    Case("stats-eot-outside-vocab", ("corpus", "stats", SW), with_corpus(manifest(eot_id=10**6)), 2,
         "eot_id 1000000 is outside"),
    # support
    Case("support-missing-corpus", ("support", "nope"), nothing, 2, "not a corpus folder"),
    Case("support-task-tokens-negative", ("support", SW, "--task-tokens", "-100"), corpus, 2,
         "--task-tokens -100"),
    Case("support-task-tokens-zero", ("support", SW, "--task-tokens", "0"), corpus, 2, "--task-tokens 0"),
    Case("support-workers-zero", ("support", SW, "--workers", "0"), corpus, 2, "--workers 0"),
    Case("support-workers-negative", ("support", SW, "--workers", "-3"), corpus, 2, "--workers -3"),
    Case("support-work-dir-is-file", ("support", SW, "--work-dir", "f"), with_corpus(file("f", "x")), 2,
         "not a folder", unchanged=("f",)),
    Case("support-json-registry", ("support", SW, "--json", "registry.json", "--force"),
         with_corpus(REGISTRY), 2, "frozen registry", unchanged=("registry.json",)),
    Case("support-json-ledger", ("support", SW, "--json", "ledger.json", "--force"),
         with_corpus(LEDGER), 2, "a ledger", unchanged=("ledger.json",)),
    Case("support-damaged-shard", ("support", SW), with_corpus(flip_shard_byte), 2, "does not match"),
    Case("support-edited-tokenizer", ("support", SW), with_corpus(edit_tokenizer), 2, "tokenizer_sha256"),
    Case("support-ids-outside-vocab", ("support", SW), with_corpus(shrink_vocab), 2,
         "outside the vocabulary", console=True),
    # edit kill / ladder / rescue / scan
    Case("kill-missing-src", ("edit", "kill", "nope", "--rule", "pronoun_gender_ref", "--rate", "0.5",
                              "--out", "k"), nothing, 2, "nope"),
    Case("kill-bad-rate", (*KILL[:5], "--rate", "2", "--out", "k"), corpus, 2, "rate"),
    Case("kill-negative-seed", (*KILL, "--out", "k", "--seed", "-1"), corpus, 2, "--seed -1"),
    Case("kill-workers-zero", (*KILL, "--out", "k", "--workers", "0"), corpus, 2, "--workers 0",
         absent=("k",)),
    Case("kill-clobber-source", (*KILL, "--out", SW, "--force"), corpus, 2, "is an input",
         unchanged=(SW,)),
    Case("kill-out-is-a-file", (*KILL, "--out", "f", "--force"), with_corpus(file("f", "x")), 2,
         "not a folder", unchanged=("f",)),
    Case("kill-damaged-src", (*KILL, "--out", "k"), with_corpus(flip_shard_byte), 2, "does not match",
         absent=("k",)),
    Case("ladder-clobber-source", ("edit", "ladder", SW, "--rule", "pronoun_gender_ref", "--rates", "0.5",
                                   "--out", SW, "--force"), corpus, 2, "is an input", unchanged=(SW,)),
    Case("rescue-clobber-source", ("edit", "rescue", SW, "--rule", "pronoun_gender_ref", "--dose", "1",
                                   "--unit", "0.001", "--out", SW, "--force"), corpus, 2, "is an input",
         unchanged=(SW,)),
    Case("rescue-ids-outside-vocab", ("edit", "rescue", SW, "--rule", "pronoun_gender_ref", "--dose", "1",
                                      "--unit", "0.001", "--out", "r"), with_corpus(shrink_vocab), 2,
         "outside the vocabulary", absent=("r",)),
    Case("scan-clobber-manifest", ("edit", "scan", SW, "--rule", "pronoun_gender_ref",
                                   "--out", f"{SW}/manifest.json", "--force"), corpus, 2, "inside the corpus",
         unchanged=(SW,)),
    # train
    Case("train-missing-config", ("train", "--config", "nope.yaml", "--data", SW, "--out", "run"), corpus,
         2, "nope.yaml"),
    Case("train-into-corpus", ("train", "--config", "train.yaml", "--data", SW, "--out", SW, "--force"),
         with_corpus(train_yaml), 2, "is an input", unchanged=(SW,)),
    Case("train-inside-corpus", ("train", "--config", "train.yaml", "--data", SW, "--out", f"{SW}/run"),
         with_corpus(train_yaml), 2, "inside the corpus", unchanged=(SW,)),
    Case("train-ids-outside-vocab", ("train", "--config", "train.yaml", "--data", SW, "--out", "run"),
         with_corpus(train_yaml, shrink_vocab), 2, "outside the vocabulary", absent=("run/checkpoints",)),
    Case("train-25-digit-seed", ("train", "--config", "train.yaml", "--data", SW, "--out", "run",
                                 "--seed", "9" * 25), with_corpus(train_yaml), 2, "a seed must be",
         absent=("run",)),
    Case("train-binary-config", ("train", "--config", "b.yaml", "--data", SW, "--out", "run"),
         with_corpus(file("b.yaml", BINARY)), 2, "not UTF-8", absent=("run",)),
    # classify / report / probes / score / rules / run / hub
    Case("classify-missing", ("classify", "nope.parquet"), nothing, 2, "not found"),
    Case("classify-json-own-input", ("classify", "traj.parquet", "--json", "traj.parquet", "--force"),
         TRAJ, 2, "is an input", unchanged=("traj.parquet",)),
    Case("classify-threshold-2.5", ("classify", "traj.parquet", "--config", "c.yaml"),
         both(TRAJ, file("c.yaml", "recovered_thr: 2.5\n")), 2, "recovered_thr"),
    Case("classify-damaged-table", ("classify", "t.parquet"), file("t.parquet", b"PAR1 nope"), 2,
         "not a readable parquet"),
    Case("report-registry", ("report", "run", "--out", "registry.json", "--force"),
         both(REGISTRY, file("run/x", "")), 2, "frozen registry", unchanged=("registry.json",)),
    Case("report-over-parquet", ("report", "run", "--out", "traj.parquet", "--force"),
         both(TRAJ, file("run/x", "")), 2, "not an earlier output", unchanged=("traj.parquet",)),
    Case("probes-build-ledger", ("probes", "build", "--out", "ledger.json", "--force"), LEDGER, 2,
         "a ledger", unchanged=("ledger.json",)),
    Case("probes-build-read-only", ("probes", "build", "--out", "ro/b.jsonl"), read_only_dir, 2,
         "permission denied", needs_non_root=True),
    Case("probes-build-under-a-file", ("probes", "build", "--out", "f/b.jsonl"), file("f", "x"), 2,
         "is a file", unchanged=("f",)),
    Case("probes-build-billions", ("probes", "build", "--rules-dir", "rd", "--rules", "huge_rule",
                                   "--out", "b.jsonl"), big_rule, 2, "1,600,000,000 items", absent=("b.jsonl",)),
    Case("probes-show-equal-continuations", ("probes", "show", "b.jsonl"),
         file("b.jsonl", battery_line(correct=" he")), 2, "are equal"),
    Case("score-equal-continuations", ("score", "--battery", "b.jsonl", "--out", "t.parquet", "--run", "r"),
         file("b.jsonl", battery_line(correct=" he")), 2, "are equal", absent=("t.parquet",)),
    Case("score-out-is-battery", ("score", "--battery", "b.jsonl", "--out", "b.jsonl", "--run", "r"),
         file("b.jsonl", battery_line()), 2, "is an input", unchanged=("b.jsonl",)),
    Case("rules-binary-yaml", ("rules", "list", "--rules-dir", "rd"), file("rd/bad.yaml", BINARY), 2,
         "not UTF-8"),
    Case("run-binary-experiment", ("run", "e.yaml", "--out", "r"), file("e.yaml", BINARY), 2, "not UTF-8"),
    Case("run-missing-experiment", ("run", "nope.yaml", "--out", "r"), nothing, 2, "nope.yaml"),
    Case("run-workers-zero", ("run", "e.yaml", "--out", "r", "--workers", "0"), file("e.yaml", "a: 1\n"), 2,
         "--workers 0"),
    Case("run-out-is-a-file", ("run", "e.yaml", "--out", "e.yaml"), file("e.yaml", "a: 1\n"), 2,
         "not a folder", unchanged=("e.yaml",)),
    Case("hub-classify-negative-seed", ("hub", "classify", "suite", "--seed", "-5"), nothing, 2, "--seed -5"),
    # the verbs and kinds the first table left out: missing input, bad value, clobber, damaged input
    Case("ladder-missing-src", ("edit", "ladder", "nope", "--rule", "pronoun_gender_ref", "--rates", "0.5",
                                "--out", "l"), nothing, 2, "nope"),
    Case("ladder-bad-rates", ("edit", "ladder", SW, "--rule", "pronoun_gender_ref", "--rates", "0.5,x",
                              "--out", "l"), corpus, 2, "--rates", absent=("l",)),
    Case("ladder-damaged-src", ("edit", "ladder", SW, "--rule", "pronoun_gender_ref", "--rates", "0.5",
                                "--out", "l"), with_corpus(flip_shard_byte), 2, "does not match", absent=("l",)),
    Case("rescue-missing-src", ("edit", "rescue", "nope", "--rule", "pronoun_gender_ref", "--dose", "1",
                                "--unit", "0.001", "--out", "r"), nothing, 2, "nope"),
    Case("rescue-negative-dose", ("edit", "rescue", SW, "--rule", "pronoun_gender_ref", "--dose", "-1",
                                  "--unit", "0.001", "--out", "r"), corpus, 2, "dose", absent=("r",)),
    Case("scan-missing-src", ("edit", "scan", "nope", "--rule", "pronoun_gender_ref", "--out", "c.json"),
         nothing, 2, "nope"),
    Case("scan-unknown-rule", ("edit", "scan", SW, "--rule", "no_such_rule", "--out", "c.json"), corpus, 2,
         "no_such_rule", absent=("c.json",)),
    Case("scan-damaged-src", ("edit", "scan", SW, "--rule", "pronoun_gender_ref", "--out", "c.json"),
         with_corpus(flip_shard_byte), 2, "does not match", absent=("c.json",)),
    Case("check-missing-dst", ("edit", "check", "nope"), nothing, 2, "nope"),
    Case("check-not-an-edit", ("edit", "check", SW), corpus, 2, SW),
    Case("probes-show-missing", ("probes", "show", "nope.jsonl"), nothing, 2, "nope.jsonl"),
    Case("probes-show-binary", ("probes", "show", "b.jsonl"), file("b.jsonl", BINARY), 2, "b.jsonl"),
    Case("score-missing-battery", ("score", "--battery", "nope.jsonl", "--out", "t.parquet", "--run", "r"),
         nothing, 2, "nope.jsonl", absent=("t.parquet",)),
    Case("rules-list-missing-dir", ("rules", "list", "--rules-dir", "nope"), nothing, 2, "nope"),
    Case("rules-show-unknown", ("rules", "show", "no_such_rule"), nothing, 2, "no_such_rule"),
    Case("rules-show-binary", ("rules", "show", "bad", "--rules-dir", "rd"), file("rd/bad.yaml", BINARY), 2,
         "not UTF-8"),
    Case("model-info-unknown", ("model", "info", "giant"), nothing, 2, "giant"),
    Case("report-missing-run", ("report", "nope"), nothing, 2, "nope"),
    Case("mech-missing-run", ("mech", "nope", "--rule", "pronoun_gender_ref"), nothing, 2, "nope"),
    Case("mech-run-without-checkpoints", ("mech", "run", "--rule", "pronoun_gender_ref"),
         file("run/config.json", "{}"), 2, "no checkpoints"),
    Case("demo-workers-zero", ("demo", "--out", "d", "--workers", "0"), nothing, 2, "--workers 0",
         absent=("d",)),
    Case("demo-out-is-a-file", ("demo", "--out", "f"), file("f", "x"), 2, "not a folder", unchanged=("f",)),
    Case("demo-bad-set", ("demo", "--out", "d", "--set", "no-equals-sign"), nothing, 2, "--set",
         absent=("d/run",)),
    Case("freeze-missing-experiment", ("prereg", "freeze", "nope.yaml", "--out", "r"), nothing, 2, "nope.yaml"),
    Case("freeze-binary-experiment", ("prereg", "freeze", "e.yaml", "--out", "r"), file("e.yaml", BINARY), 2,
         "not UTF-8", absent=("r",)),
    Case("freeze-over-a-registry", ("prereg", "freeze", "e.yaml", "--out", "registry.json"),
         both(file("e.yaml", "a: 1\n"), REGISTRY), 2, "registry.json", unchanged=("registry.json",)),
    Case("verify-missing", ("prereg", "verify", "nope.json"), nothing, 2, "nope.json"),
    Case("verify-damaged-registry", ("prereg", "verify", "registry.json"), file("registry.json", "{"), 2,
         "registry.json"),
    Case("prereg-score-missing-evidence", ("prereg", "score", "registry.json", "--evidence", "nope.json"),
         file("registry.json", "{"), 2, "registry.json"),
    Case("amend-empty-file", ("prereg", "amend", "nope.json", "--file", "a.yaml", "--reason", "x"),
         file("a.yaml", "predictions: []\n"), 2, "nothing to amend"),
    Case("unlock-damaged-registry", ("prereg", "unlock", "registry.json", "--reason", "x"),
         file("registry.json", BINARY), 2, "registry.json", unchanged=("registry.json",)),
    Case("prereg-score-missing-registry", ("prereg", "score", "nope.json", "--evidence", "e.json"),
         file("e.json", "{}"), 2, "nope.json"),
    Case("prereg-score-json-over-registry", ("prereg", "score", "registry.json", "--evidence", "e.json",
                                             "--json", "registry.json", "--force"),
         both(REGISTRY, file("e.json", "{}")), 2, "registry.json", unchanged=("registry.json",)),
    Case("amend-missing-registry", ("prereg", "amend", "nope.json", "--file", "a.yaml", "--reason", "x"),
         file("a.yaml", "predictions:\n  - {name: X9, expr: pronoun_gender_ref is RECOVERED in all seeds of cell a}\n"),
         2, "nope.json"),
    Case("unlock-missing-registry", ("prereg", "unlock", "nope.json", "--reason", "x"), nothing, 2, "nope.json"),
    Case("pilot-record-missing", ("prereg", "pilot-record", "nope", "--out", "p.json"), nothing, 2, "nope"),
    Case("pilot-record-not-a-run-over-registry",
         ("prereg", "pilot-record", "d", "--out", "registry.json", "--force"), both(file("d/x", ""), REGISTRY), 2,
         "neither pilot_fates.json nor fates.json", unchanged=("registry.json",)),
    Case("hub-score-missing-battery", ("hub", "score", "--models", "m", "--revisions", "main",
                                       "--battery", "nope.jsonl", "--out", "s"), nothing, 2, "nope.jsonl", absent=("s",)),
    Case("hub-score-workers-zero", ("hub", "score", "--models", "m", "--revisions", "main",
                                    "--battery", "b.jsonl", "--out", "s", "--workers", "0"), file("b.jsonl", battery_line()), 2, "--workers 0",
         absent=("s",)),
    Case("hub-score-out-is-battery", ("hub", "score", "--models", "m", "--revisions", "main",
                                      "--battery", "b.jsonl", "--out", "b.jsonl"), file("b.jsonl", battery_line()), 2,
         "b.jsonl", unchanged=("b.jsonl",)),
    Case("hub-classify-missing", ("hub", "classify", "nope"), nothing, 2, "nope"),
]


def tree_hash(path: Path) -> str:
    """Content hash of a file, or of every file (by relative name) under a folder."""
    h = hashlib.sha256()
    if path.is_file():
        h.update(path.read_bytes())
        return h.hexdigest()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(path)).encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def console_script() -> Path:
    return Path(sys.executable).parent / "ungrok"


def run_script(args: tuple[str, ...], cwd: Path) -> tuple[int, str]:
    proc = subprocess.run([str(console_script()), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, base_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    """Each row: the exit status, one line naming the problem, and nothing it must not touch touched."""
    if case.needs_non_root and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    monkeypatch.setenv("UNGROK_CACHE_DIR", str(tmp_path / ".cache"))
    case.build(tmp_path, base_corpus)
    before = {p: tree_hash(tmp_path / p) for p in case.unchanged}
    monkeypatch.chdir(tmp_path)
    code, _out, err = run(case.args, capsys)
    if case.code == 2:
        line = one_line_error(code, err)
        assert case.message in line, line
    else:
        assert code == case.code, err
    for p, h in before.items():
        assert tree_hash(tmp_path / p) == h, f"{p} changed"
    for p in case.absent:
        assert not (tmp_path / p).exists(), f"{p} exists"
    if case.console:
        if not console_script().is_file():
            pytest.skip("the ungrok console script is not installed beside this Python")
        code, err = run_script(case.args, tmp_path)
        assert code == case.code and case.message in err and "Traceback" not in err, err


# --------------------------------------------------------------------------- properties
FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(n=st.integers(max_value=0), flag=st.sampled_from(["--task-tokens", "--workers"]))
def test_support_counts_below_one_are_refused(n: int, flag: str, base_corpus: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Zero or negative tokens per task or workers: one line naming the flag, before any counting."""
    code, _out, err = run(["support", str(base_corpus), flag, str(n)], capsys)
    assert f"{flag} {n}" in one_line_error(code, err)


@FAST
@given(seed=st.one_of(st.integers(max_value=-1), st.integers(min_value=2**63, max_value=10**30)))
def test_seeds_outside_every_generator_are_refused(seed: int, base_corpus: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A seed numpy or torch cannot take is one line naming it, not a traceback from inside them."""
    args = ["edit", "kill", str(base_corpus), *KILL[3:], "--out", str(tmp_path / "k"), "--seed", str(seed)]
    code, _out, err = run(args, capsys)
    assert "a seed must be" in one_line_error(code, err)


MANIFEST_FORGERIES = st.one_of(
    st.builds(lambda v: {"format_version": v}, st.integers().filter(lambda v: v != 1)),
    st.builds(lambda v: {"eot_id": v}, st.one_of(st.integers(max_value=-1), st.integers(min_value=2048))),
    st.builds(lambda f: {"shards": [{"file": f, "tokens": 0, "sha256": "0" * 64}], "total_tokens": 0},
              st.sampled_from(["../a.bin", "/etc/passwd", "a/../../b.bin", "", "./", "x/"])),
    st.builds(lambda v: {"vocab_size": v}, st.integers(max_value=0)),
)


@FAST
@given(forged=MANIFEST_FORGERIES)
def test_forged_manifest_fields_are_refused(forged: dict, base_corpus: Path, tmp_path_factory: pytest.TempPathFactory,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Every reader goes through one loader, which refuses each forged field in one line."""
    path = tmp_path_factory.mktemp("forged") / SW
    shutil.copytree(base_corpus, path)
    doc = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    (path / "manifest.json").write_text(json.dumps({**doc, **forged}), encoding="utf-8")
    code, _out, err = run(["corpus", "stats", str(path)], capsys)
    assert "refused manifest" in one_line_error(code, err)


# --------------------------------------------------------------------------- the boundary itself
def test_refused_permission_is_one_line(base_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The read-only row for root: the guard's answer when the folder may not be written."""
    import ungrok.outputs

    monkeypatch.setattr(ungrok.outputs.os, "access", lambda *_a, **_k: False)
    code, _out, err = run(["probes", "build", "--out", str(tmp_path / "b.jsonl")], capsys)
    assert "permission denied" in one_line_error(code, err)


def test_an_os_error_deep_inside_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A write that fails after the checks (a full disk, a folder made read-only meanwhile)."""
    import ungrok.probes.battery

    def refuse(path: object, _data: bytes) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(ungrok.probes.battery, "write_bytes", refuse)
    code, _out, err = run(["probes", "build", "--out", str(tmp_path / "b.jsonl")], capsys)
    line = one_line_error(code, err)
    assert "b.jsonl" in line and "Permission denied" in line


def test_a_live_process_temporary_is_left_alone(tmp_path: Path) -> None:
    """Only temporaries of a process that is gone are swept; one being written now stays."""
    from ungrok.atomic import sweep_stale

    out = tmp_path / "out"
    live = tmp_path / (temp_prefix(out, os.getppid()) + "abc.tmp")
    dead = tmp_path / (temp_prefix(out, 4194305) + "abc.tmp")
    elsewhere = tmp_path / ".out.4194305h00000000-abc.tmp"  # another machine's: judged by age
    for p in (live, dead, elsewhere):
        p.mkdir()
    assert sweep_stale(out) == [dead]
    assert live.is_dir() and elsewhere.is_dir() and not dead.exists()
