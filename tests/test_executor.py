"""The shared executors (`ungrok.executor`): every task comes back once with its result or its
exception, whatever the completion order; `or_raise` stops at a failure; markers resume."""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ungrok.errors import UngrokError
from ungrok.executor import (
    InlineExecutor,
    PoolExecutor,
    RayExecutor,
    is_done,
    make_executor,
    mark_done,
    or_raise,
    pending,
    threads_per_worker,
)


@dataclass(frozen=True)
class Job:
    value: float
    threads: int | None = 1
    marker: Path | None = None


def sqrt_job(job: Job) -> float:
    return math.sqrt(job.value)


def torch_threads(job: Job) -> tuple[str | None, int]:
    """What a pool worker sees: the thread cap set before the task, and torch's own setting."""
    import torch

    return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()


JOBS = [Job(4.0), Job(-1.0), Job(9.0)]


def check(results) -> None:
    got = {job.value: r for job, r in results}
    assert set(got) == {4.0, -1.0, 9.0}
    assert got[4.0] == 2.0 and got[9.0] == 3.0
    assert isinstance(got[-1.0], ValueError)  # a failing task is reported, the others still run


def test_make_executor_picks_by_kind_and_workers():
    assert isinstance(make_executor("local", 1), InlineExecutor)
    assert isinstance(make_executor("local", 2), PoolExecutor)
    assert isinstance(make_executor("ray", 2, "auto"), RayExecutor)
    assert make_executor("local", 2, threads=3).threads == 3
    assert make_executor("local", 1).threads is None  # inline leaves this process alone
    for args, msg in ((("spark", 1), "use local or ray"), (("local", 0), "at least 1"),
                      (("local", 2, "auto"), "--address is for --executor ray")):
        with pytest.raises(UngrokError, match=msg):
            make_executor(*args)


def test_threads_split_the_cores():
    cores = os.cpu_count() or 1
    assert threads_per_worker(1) == cores
    assert threads_per_worker(cores) == 1
    assert threads_per_worker(cores * 4) == 1


def test_inline_keeps_task_order_and_reports_every_job():
    out = list(InlineExecutor().map(sqrt_job, JOBS))
    assert [j for j, _ in out] == JOBS
    check(out)
    assert list(InlineExecutor().map(sqrt_job, [])) == []


def test_spawn_pool_reports_every_job_and_caps_threads():
    check(PoolExecutor(2).map(sqrt_job, JOBS))
    got = [r for _, r in PoolExecutor(2, threads=1).map(torch_threads, [Job(1.0), Job(2.0)])]
    assert got == [("1", 1), ("1", 1)]
    assert list(PoolExecutor(2).map(sqrt_job, [])) == []


def test_or_raise_stops_at_the_first_failure():
    seen = []
    with pytest.raises(ValueError, match="math domain error"):
        for job, r in or_raise(InlineExecutor().map(sqrt_job, JOBS)):
            seen.append((job.value, r))
    assert seen == [(4.0, 2.0)]
    with pytest.raises(ValueError):
        list(or_raise(PoolExecutor(2).map(sqrt_job, JOBS)))
    assert [r for _, r in or_raise(InlineExecutor().map(sqrt_job, [Job(16.0)]))] == [4.0]


def test_markers_resume_only_what_is_missing(tmp_path):
    jobs = [Job(float(v), marker=tmp_path / f"t{v}.json") for v in (1, 4, 9)]
    assert not any(is_done(j) for j in jobs) and not is_done(Job(1.0))
    for job, r in InlineExecutor().map(sqrt_job, jobs[:2]):
        mark_done(job, {"root": r})
    todo, done = pending(jobs)
    assert todo == jobs[2:] and done == jobs[:2]
    assert json.loads(jobs[1].marker.read_text()) == {"root": 2.0}
    mark_done(Job(1.0), 1.0)  # no marker: nothing to write, never done
    mark_done(jobs[2], 3.0, write=lambda p, r: p.write_text(f"{r}"))
    assert pending(jobs) == ([], jobs) and jobs[2].marker.read_text() == "3.0"


def test_ray_runs_the_same_dispatch():
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        ex = make_executor("ray", 2)
        out = list(ex.map(sqrt_job, JOBS))
        check(out)
        assert ex.gpus() == 0
        with pytest.raises(ValueError):
            list(or_raise(ex.map(sqrt_job, JOBS)))
    finally:
        ray.shutdown()
