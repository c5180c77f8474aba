"""A training run's output folder and the rules for reusing one.

    OUT/config.json             resolved config (what makes two runs the same run)
    OUT/checkpoints/            model_XXXXXX.safetensors + .json (ungrok.model.save_checkpoint)
    OUT/train_log.jsonl         one line per update: step, loss, lr, tokens, time_s
    OUT/monitor.jsonl           one line per probe-callback result
    OUT/resume/                 the latest full trainer state (see state.py)
    OUT/complete.json           written last: the run finished
    OUT/failed.json             the run stopped on a non-finite loss

A folder holding the same config is resumed (or reported, if complete); a different
config is refused unless force, which clears the run's files (and nothing else).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ungrok.atomic import write_json, write_text
from ungrok.errors import UngrokError
from ungrok.hashing import sha256_file
from ungrok.model.checkpoint import checkpoint_paths, read_meta


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def log(self) -> Path:
        return self.root / "train_log.jsonl"

    @property
    def monitor(self) -> Path:
        return self.root / "monitor.jsonl"

    @property
    def resume(self) -> Path:
        return self.root / "resume"

    @property
    def complete(self) -> Path:
        return self.root / "complete.json"

    @property
    def failed(self) -> Path:
        return self.root / "failed.json"

    def run_files(self) -> list[Path]:
        return [
            self.config,
            self.checkpoints,
            self.log,
            self.monitor,
            self.resume,
            self.complete,
            self.failed,
        ]


def _identity(doc: dict) -> dict:
    """The parts of config.json that define the run: data is known by its manifest hash, not its path."""
    doc = json.loads(json.dumps(doc))
    for key in ("data", "phase_b_data"):
        if isinstance(doc.get(key), dict):
            doc[key].pop("path", None)
    phase_b = doc.get("config", {}).get("sampler", {}).get("phase_b")
    if isinstance(phase_b, dict):
        phase_b.pop("data", None)
    return doc


def first_difference(a: object, b: object, where: str = "") -> str | None:
    """The dotted path of the first field where two JSON documents differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
            if d:
                return d
        return None
    return None if a == b else f"{where or 'config'}: {a!r} here vs {b!r} requested"


def prepare(run: RunDir, resolved: dict, force: bool) -> Literal["new", "resume", "complete"]:
    """Decide what to do with OUT, clearing it only when forced; write config.json for a new run."""
    if run.root.exists() and not run.root.is_dir():
        raise UngrokError(f"{run.root}: exists and is not a folder")
    if run.config.is_file() and not force:
        try:
            old = json.loads(run.config.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise UngrokError(f"{run.config}: unreadable ({e}); use --force to start the run again") from None
        diff = first_difference(_identity(old), _identity(resolved))
        if diff:
            diff = diff.removeprefix("config.")  # fields of the YAML read as they are written there
            raise UngrokError(f"{run.root} holds a run with a different config ({diff}); "
                              "use --force to replace it or choose another --out")
        return "complete" if run.complete.is_file() else "resume"
    if run.root.is_dir() and any(run.root.iterdir()) and not run.config.is_file() and not force:
        raise UngrokError(f"{run.root}: exists and is not an ungrok training run; choose another --out")
    for p in run.run_files():
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    run.root.mkdir(parents=True, exist_ok=True)
    write_json(run.config, resolved)
    return "new"


def verify_checkpoints(run: RunDir, steps: list[int]) -> None:
    """Every checkpoint a resumed run stands on must be present and match its recorded hash."""
    for s in steps:
        ck = checkpoint_paths(run.checkpoints, s)
        if not ck.meta.is_file():
            raise UngrokError(f"{ck.meta}: missing checkpoint of this run; the run folder is damaged "
                              "(use --force to train again)")
        meta = read_meta(ck)
        if not ck.weights.is_file() or sha256_file(ck.weights) != meta["sha256"]:
            raise UngrokError(f"{ck.weights}: corrupt or missing checkpoint (sha256 does not match "
                              f"{ck.meta.name}); the run folder is damaged (use --force to train again)")


def settle_outputs(run: RunDir, state: dict | None, saves: list[int]) -> None:
    """Bring OUT back to exactly the saved step: verify what it stands on, cut what came after."""
    step = state["step"] if state is not None else -1
    if state is not None:
        verify_checkpoints(run, [s for s in saves if s <= step])
    truncate_jsonl(run.log, state["log_lines"] if state else 0)
    truncate_jsonl(run.monitor, state["monitor_lines"] if state else 0)
    if run.checkpoints.is_dir():
        for s in saves:
            if s > step:
                ck = checkpoint_paths(run.checkpoints, s)
                ck.meta.unlink(missing_ok=True)
                ck.weights.unlink(missing_ok=True)
    run.failed.unlink(missing_ok=True)


# --------------------------------------------------------------------------- JSONL logs
def append_jsonl(path: Path, record: dict) -> None:
    """One whole line per write; a line torn by a kill is cut off on resume (truncate_jsonl)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_jsonl(path: Path, lines: int) -> None:
    """Keep the first `lines` complete lines (the state at the resumed step), atomically."""
    if lines == 0 and not path.exists():
        return
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    kept = text.split("\n")[:lines]
    complete = len(kept) == lines and (lines == 0 or text.count("\n") >= lines)
    if not complete:
        raise UngrokError(f"{path}: holds fewer than the {lines} lines the resume state expects; "
                          "the run folder is damaged (use --force to start again)")
    write_text(path, "".join(line + "\n" for line in kept))
