"""`ungrok train` end to end: one-line errors, SIGKILL + rerun, torchrun (gloo), `ungrok model info`."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from ungrok.cli import main
from ungrok.train.config import load_train_config
from ungrok.train.loop import train
from ungrok.train.rundir import read_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")


def run_cli(args, capsys):
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code or 0, out.out, out.err


def one_line_error(err):
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


def checkpoint_tensors(run):
    return {p.name: load_file(str(p)) for p in sorted((run / "checkpoints").glob("*.safetensors"))}


def assert_same_weights(a, b):
    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    assert ta.keys() == tb.keys()
    for name in ta:
        assert all(torch.equal(ta[name][k], tb[name][k]) for k in ta[name]), name


def log_without_time(run):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in read_jsonl(run / "train_log.jsonl")]


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        (
            {"sampler": {"context": 32, "batch_size": 4, "steps": 20, "shuffle": True}},
            "unknown field sampler.shuffle",
        ),
        ({"sampler": {"context": 65, "batch_size": 4, "steps": 20}}, "is longer than the model's context 64"),
        (
            {"model": {"preset": "tiny", "vocab_size": 100}},
            "corpus vocab_size 1,456 is larger than the model's",
        ),
        (
            {"sampler": {"context": 32, "batch_size": 4, "steps": 20, "max_tokens": 300_000}},
            "exceeds the size of",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(corpus, tiny_yaml, tmp_path, capsys, changes, needle):
    cfg = tiny_yaml(**changes)
    code, _, err = run_cli(["train", "--config", cfg, "--data", corpus, "--out", tmp_path / "o"], capsys)
    assert code == 2 and needle in one_line_error(err)
    assert not (tmp_path / "o").exists()  # nothing written for a refused config


def test_finished_run_is_reported_and_a_nan_stops_with_exit_2(
    corpus, tiny_yaml, tmp_path, capsys, monkeypatch
):
    cfg = tiny_yaml(sampler={"steps": 6})
    args = ["train", "--config", cfg, "--data", corpus, "--out", tmp_path / "o", "--seed", 3]
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and "trained:" in out and "6 steps" in out
    assert json.loads((tmp_path / "o" / "config.json").read_text())["config"]["seed"] == 3
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and "already trained with this config" in out
    code, _, err = run_cli(args[:-1] + [4], capsys)
    assert code == 2 and "different config (seed: 3 here vs 4 requested)" in one_line_error(err)
    code, out, _ = run_cli(args + ["--precision", "bf16", "--out", tmp_path / "bf16"], capsys)
    assert code == 0 and "trained:" in out
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["config"]["precision"] == "bf16"
    code, _, err = run_cli(args + ["--precision", "fp8", "--out", tmp_path / "fp8"], capsys)
    assert code == 2 and "field precision" in one_line_error(err)

    from ungrok.model.gpt import GPT

    real = GPT.forward

    def nan_after_two(self, idx, targets=None):
        logits, loss = real(self, idx, targets)
        nan_after_two.calls += 1
        return logits, loss * float("nan") if nan_after_two.calls > 2 else loss

    nan_after_two.calls = 0
    monkeypatch.setattr(GPT, "forward", nan_after_two)
    nan_args = ["train", "--config", cfg, "--data", corpus, "--out", tmp_path / "nan", "--steps", 8]
    code, _, err = run_cli(nan_args, capsys)
    line = one_line_error(err)
    assert (
        code == 2 and "step 2: loss is nan; training stopped" in line and "model_000000.safetensors" in line
    )


def test_sigkill_then_rerun_finishes_bit_identical(corpus, tiny_yaml, tmp_path):
    # one thread on both sides (the autouse one_thread fixture here, OMP_NUM_THREADS there) keeps this
    # fast on a busy machine; test_loop checks determinism and resume at the default thread count
    cfg = tiny_yaml(sampler={"steps": 100}, checkpoints={"rules": [{"start": 0, "every": 5}]})
    train(load_train_config(cfg), corpus, tmp_path / "ref", progress=False)  # the uninterrupted run

    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "ungrok.cli",
        "train",
        "--config",
        str(cfg),
        "--data",
        str(corpus),
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    index = out / "resume" / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(index.read_text())["step"] >= 5:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "complete.json").exists()
    killed_at = json.loads(index.read_text())["step"]
    assert 5 <= killed_at < 100

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "resumed:" in done.stdout
    assert_same_weights(tmp_path / "ref", out)
    assert log_without_time(tmp_path / "ref") == log_without_time(out)


def test_torchrun_with_two_gloo_ranks_matches_one_process(corpus, tiny_yaml, tmp_path):
    cfg = tiny_yaml(sampler={"steps": 2}, checkpoints={"rules": [{"start": 0, "every": 1}]})
    train(load_train_config(cfg), corpus, tmp_path / "one", progress=False)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ungrok.cli", "train", "--config", str(cfg), "--data", str(corpus), "--out", str(tmp_path / "two")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("trained:") == 1  # rank 0 speaks for the run
    one, two = log_without_time(tmp_path / "one"), log_without_time(tmp_path / "two")
    # the same rows, split over the ranks: equal losses up to the order of the gradient sum
    assert [r["loss"] for r in two] == pytest.approx([r["loss"] for r in one], rel=1e-5)
    # after one update every weight agrees (later, Adam's g/√v can amplify last-bit differences of tiny
    # embedding gradients, so the comparison stops at the first update)
    a, b = checkpoint_tensors(tmp_path / "one"), checkpoint_tensors(tmp_path / "two")
    for k, v in a["model_000001.safetensors"].items():
        assert torch.allclose(v, b["model_000001.safetensors"][k], atol=1e-5), k


def test_model_info_prints_the_exact_parameter_count(capsys):
    code, out, _ = run_cli(["model", "info", "paper-11.5m"], capsys)
    assert code == 0 and "11,534,340" in out and "3,145,728" in out and "1, 3" in out
    code, _, err = run_cli(["model", "info", "giant"], capsys)
    assert code == 2 and "unknown model preset 'giant'" in one_line_error(err)
