"""The executors: each yields every job once with its result or its exception, whatever the
completion order; the task function and its job pickle; threads split the cores."""

from __future__ import annotations

import math
import os
import pickle
from dataclasses import dataclass

import pytest

from ungrok.errors import UngrokError
from ungrok.experiment.run import InlineExecutor, PoolExecutor, RayExecutor, make_executor, threads_per_worker
from ungrok.experiment.tasks import RunJob, run_cell_seed


@dataclass(frozen=True)
class Job:
    value: float
    threads: int | None = 1


def sqrt_job(job: Job) -> float:
    return math.sqrt(job.value)


def check(results):
    got = {job.value: r for job, r in results}
    assert set(got) == {4.0, -1.0, 9.0}
    assert got[4.0] == 2.0 and got[9.0] == 3.0
    assert isinstance(got[-1.0], ValueError)  # a failing task is reported, the others still run


def test_make_executor_picks_by_kind_and_workers():
    assert isinstance(make_executor("local", 1), InlineExecutor)
    assert isinstance(make_executor("local", 2), PoolExecutor)
    assert isinstance(make_executor("ray", 2, "auto"), RayExecutor)
    for args, msg in ((("spark", 1), "use local or ray"), (("local", 0), "at least 1"),
                      (("local", 2, "auto"), "--address is for --executor ray")):  # fmt: skip
        with pytest.raises(UngrokError, match=msg):
            make_executor(*args)


def test_threads_split_the_cores():
    cores = os.cpu_count() or 1
    assert threads_per_worker(1) == cores
    assert threads_per_worker(cores) == 1
    assert threads_per_worker(cores * 4) == 1


def test_inline_and_spawn_pool_report_every_job():
    jobs = [Job(4.0), Job(-1.0), Job(9.0)]
    check(InlineExecutor().map(sqrt_job, jobs))
    check(PoolExecutor(2).map(sqrt_job, jobs))


def test_the_task_function_and_its_job_pickle():
    job = RunJob(run_dir="/r", cell="c", seed=1, train_doc={"seed": 1, "sampler": {"steps": 5}},
                 batteries=("/r/b.jsonl",), monitor_rules=("pronoun_gender_ref",), classifier={}, threads=1)  # fmt: skip
    assert pickle.loads(pickle.dumps(run_cell_seed)) is run_cell_seed
    assert pickle.loads(pickle.dumps(job)) == job
    assert str(job.out) == "/r/cells/c/seed1" and str(job.data) == "/r/cells/c/corpus"


def test_ray_runs_the_same_dispatch():
    ray = pytest.importorskip("ray")
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        check(RayExecutor(2, None).map(sqrt_job, [Job(4.0), Job(-1.0), Job(9.0)]))
    finally:
        ray.shutdown()
