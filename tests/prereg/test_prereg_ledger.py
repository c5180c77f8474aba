"""The read ledger: first reads are kept, keys are checked, concurrent writers lose nothing."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest
from prereg_helpers import FakeClock

from ungrok.errors import UngrokError
from ungrok.prereg.clock import parse_stamp, stamp
from ungrok.prereg.ledger import (
    LOCK_NAME,
    artifact_key,
    locked,
    parse_artifact_key,
    read_ledger,
    reads_not_after,
)
from ungrok.prereg.reads import check_readable, record_read


def test_first_read_is_kept_and_later_reads_do_not_move_it(tmp_path):
    clock = FakeClock("2026-06-10T12:00:00+00:00")
    first = record_read(tmp_path, "ts/42/trajectories", clock=clock)
    again = record_read(tmp_path, "ts/42/trajectories", clock=clock.at("2026-07-01T00:00:00+00:00"))
    assert first == again == "2026-06-10T12:00:00.000000Z"
    record_read(tmp_path, "ts/43/trajectories", clock=clock)
    data = json.loads((tmp_path / "ledger.json").read_text())
    assert data["reads"] == {"ts/42/trajectories": "2026-06-10T12:00:00.000000Z",
                             "ts/43/trajectories": "2026-07-01T00:00:00.000000Z"}


def test_artifact_keys_round_trip_and_bad_keys_are_refused(tmp_path):
    assert parse_artifact_key(artifact_key("web_dn1.5", 44, "margins")) == ("web_dn1.5", 44, "margins")
    assert parse_artifact_key("kill_1/42/verdicts/part-0") == ("kill_1", 42, "verdicts/part-0")
    for bad in ("ts/trajectories", "ts/x/trajectories", "/42/t", "ts/42/"):
        with pytest.raises(UngrokError, match="is not CELL/SEED/NAME"):
            record_read(tmp_path, bad)
    assert not (tmp_path / "ledger.json").exists()


def test_without_a_registry_nothing_is_quarantined(tmp_path):
    check_readable(tmp_path, "ts", 45)


def test_reads_not_after_selects_the_governed_runs_up_to_a_moment(tmp_path):
    clock = FakeClock("2026-06-10T12:00:00+00:00")
    for key in ("ts/42/t", "web/42/t", "ts/43/t", "ts/44/t"):
        record_read(tmp_path, key, clock=clock)  # 12:00:00, :01, :02, :03
    led = read_ledger(tmp_path)
    assert reads_not_after(led, ["ts"], [42, 43, 44], "2026-06-10T12:00:02.000000Z") == [
        ("ts/42/t", "2026-06-10T12:00:00.000000Z"), ("ts/43/t", "2026-06-10T12:00:02.000000Z")]
    assert reads_not_after(led, ["kill_1"], [42], "2030-01-01T00:00:00.000000Z") == []


def test_stamps_are_utc_and_naive_clocks_are_refused():
    from datetime import datetime, timedelta, timezone

    plus2 = timezone(timedelta(hours=2))
    assert stamp(lambda: datetime(2026, 6, 10, 14, 0, tzinfo=plus2)) == "2026-06-10T12:00:00.000000Z"
    assert parse_stamp("2026-06-10T12:00:00.000000Z") == datetime(2026, 6, 10, 12, tzinfo=timezone.utc)
    with pytest.raises(UngrokError, match="without a time zone"):
        stamp(lambda: datetime(2026, 6, 10, 12))


def _reader(run_dir: str, worker: int, n: int) -> None:
    for i in range(n):
        record_read(run_dir, f"cell_{worker}/{i}/trajectories")


def test_parallel_readers_lose_no_entries(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_reader, args=(str(tmp_path), w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(read_ledger(tmp_path).reads) == 4 * 15


def test_the_ledger_lock_is_exclusive_and_its_file_stays(tmp_path):
    """filelock keeps fcntl's semantics: RUN/.ledger.lock persists; a second holder waits."""
    from filelock import FileLock, Timeout

    run = tmp_path / "run"
    with locked(run):
        assert (run / LOCK_NAME).is_file()
        with pytest.raises(Timeout):
            FileLock(run / LOCK_NAME, timeout=0.2).acquire()
    assert (run / LOCK_NAME).is_file()  # kept after release, so waiters share one inode
    with FileLock(run / LOCK_NAME, timeout=0.2):  # released: free to take
        pass
