"""Resume after SIGKILL: `ungrok run` is killed mid-training, rerun, and ends exactly where an
uninterrupted run of the same experiment (the session's finished run) ended.

The rerun goes through an executor that pickles the task function and each job (as a
process pool or Ray does) and runs the jobs in reverse order, so the same test shows that
dispatch order and process boundaries change nothing that is written."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from conftest import capture, write_experiment
from ungrok.experiment.run import run_experiment

# `python -m ungrok.cli run ...` once cli.py registers the command; until then the same app
# with the command added here. Either way cli.main turns errors into one line.
SCRIPT = """
import sys
from ungrok import cli
from ungrok.commands import experiment
if not any(c.name == "run" for c in cli.app.registered_commands):
    experiment.register(cli.app)
cli.main(sys.argv[1:])
"""


class ReversedPickled:
    """Jobs in reverse order, function and jobs through a pickle round trip."""

    def __init__(self):
        self.seen = []

    def map(self, fn, jobs):
        fn = pickle.loads(pickle.dumps(fn))
        for job in reversed(jobs):
            self.seen.append((job.cell, job.seed))
            try:
                result = fn(pickle.loads(pickle.dumps(job)))
            except Exception as e:  # noqa: BLE001
                result = e
            yield job, result


def _log(path):
    return [{k: v for k, v in json.loads(x).items() if k != "time_s"} for x in path.read_text().splitlines()]


def test_killed_run_resumes_to_the_uninterrupted_result(finished, tmp_path, battery, one_thread):
    exp = write_experiment(tmp_path, battery)
    assert exp.read_text() == finished.experiment.read_text()
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, "run", str(exp), "--out", str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not list((run / "cells").glob("*/seed*/checkpoints/model_000008.json")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no training checkpoint appeared"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    interrupted = [p.parent.parent for p in (run / "cells").glob("*/seed*/checkpoints/model_000008.json")
                   if not (p.parent.parent / ".done-train").exists()]
    assert interrupted, "the kill landed after training had finished"
    assert not (run / "fates.json").exists()

    ex = ReversedPickled()
    console, buf = capture()
    run_experiment(exp, run, console=console, _executor=ex)
    assert "corpora: 3 done earlier, skipped" in buf.getvalue()
    assert ex.seen == sorted(
        ex.seen, key=lambda cs: (["high", "low", "kill"].index(cs[0]), cs[1]), reverse=True
    )

    assert json.loads((run / "fates.json").read_text()) == json.loads(
        (finished.run / "fates.json").read_text()
    )
    assert (run / "scoreboard.json").is_file()
    for sdir in interrupted:
        ref = finished.run / sdir.relative_to(run)
        assert _log(sdir / "train_log.jsonl") == _log(ref / "train_log.jsonl")
        assert (sdir / "monitor.jsonl").read_bytes() == (ref / "monitor.jsonl").read_bytes()
        a = load_file(str(sdir / "checkpoints" / "model_000024.safetensors"))
        b = load_file(str(ref / "checkpoints" / "model_000024.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)
