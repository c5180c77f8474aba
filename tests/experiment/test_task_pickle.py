"""The (cell, seed) task function and its job cross a process boundary unchanged
(the executors themselves are tested in tests/test_executor.py)."""

from __future__ import annotations

import pickle

from ungrok.experiment.tasks import RunJob, run_cell_seed


def test_the_task_function_and_its_job_pickle():
    job = RunJob(run_dir="/r", cell="c", seed=1, train_doc={"seed": 1, "sampler": {"steps": 5}},
                 batteries=("/r/b.jsonl",), monitor_rules=("pronoun_gender_ref",), classifier={}, threads=1)
    assert pickle.loads(pickle.dumps(run_cell_seed)) is run_cell_seed
    assert pickle.loads(pickle.dumps(job)) == job
    assert str(job.out) == "/r/cells/c/seed1" and str(job.data) == "/r/cells/c/corpus"
