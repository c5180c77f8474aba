"""Reading a run's artifacts under its registration: refuse a quarantined seed, then record
the first read in the ledger (docs/preregistration.md). This sits above both the ledger and the
registry, so neither imports the other."""

from __future__ import annotations

from pathlib import Path

from ungrok.errors import UngrokError
from ungrok.prereg.clock import Clock, utc_now
from ungrok.prereg.ledger import REGISTRY_NAME, parse_artifact_key, record_first_read
from ungrok.prereg.registry import Registry, load_registry


def check_readable(run_dir: str | Path, cell: str, seed: int, registry: Registry | None = None) -> None:
    """Refuse (UngrokError) to read a quarantined seed's artifacts before it is unlocked.

    The registry defaults to RUN_DIR/registry.json; with none, nothing is quarantined.
    """
    if registry is None:
        p = Path(run_dir) / REGISTRY_NAME
        registry = load_registry(p) if p.exists() else None
    if registry is not None and int(seed) in registry.locked_seeds():
        raise UngrokError(
            f"cell {cell} seed {seed} is a quarantined replication seed: its artifacts may not be read "
            "until `ungrok prereg unlock` records an unlock amendment"
        )


def record_read(
    run_dir: str | Path,
    artifact: str,
    *,
    clock: Clock = utc_now,
    registry: Registry | None = None,
    sha256: str | None = None,
    path: str | Path | None = None,
) -> str:
    """Record that an artifact is about to be read; return its first-read time.

    Call this before reading a run's trajectories, verdicts or margins. Quarantined seeds are
    refused. The first time is kept: later reads never move it. `sha256` and `path` (the file
    and its hash) are kept with the first read, so a freeze can bind exactly what a pilot read
    saw and `verify` and `score` can tell a result that changed since.
    """
    cell, seed, _ = parse_artifact_key(artifact)
    check_readable(run_dir, cell, seed, registry)
    return record_first_read(run_dir, artifact, clock=clock, sha256=sha256, path=path)
