"""`--log tensorboard,wandb,trackio`: the curves each library stores, read back with its own reader,
equal the run's own train_log.jsonl and monitor.jsonl at the same steps, warnings included."""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from monitor_stubs import PronounStub, pronoun_setup

from ungrok.corpus.tokenizer import build_word_tokenizer
from ungrok.errors import UngrokError
from ungrok.fate.config import ClassifierConfig
from ungrok.fate.watch_config import WatchConfig
from ungrok.probes.battery import build_battery, save_battery
from ungrok.probes.margins import margin_prompt_set
from ungrok.rules import get_rule
from ungrok.train.monitor import RuleMonitor
from ungrok.train.rundir import read_jsonl
from ungrok.train.trackers import PROJECT

pytestmark = pytest.mark.usefixtures("one_thread", "offline_homes")
RULE = "pronoun_gender_ref"


@pytest.fixture(scope="module")
def offline_homes(tmp_path_factory):
    """W&B's and trackio's own folders in tmp. trackio fixes its store folder when first imported,
    so it is imported here, after TRACKIO_DIR is set (if another test imported it first, its store
    stays where that test put it; the readers below ask trackio where that is)."""
    home = tmp_path_factory.mktemp("tracker-homes")
    mp = pytest.MonkeyPatch()
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        mp.setenv(var, str(home / var.lower()))
    mp.setenv("TRACKIO_DIR", str(home / "trackio"))
    import trackio  # noqa: F401

    yield
    mp.undo()


# --------------------------------------------------------------------------- readers
def tensorboard_events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def tb_scalars(ea, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in ea.Scalars(tag)}


def tb_texts(ea, tag: str) -> list[tuple[int, str]]:
    from tensorboard.util import tensor_util

    out = []
    for e in ea.Tensors(f"{tag}/text_summary"):
        for t in tensor_util.make_ndarray(e.tensor_proto).reshape(-1):
            out.append((e.step, t.decode()))
    return out


def wandb_records(run_root: Path) -> list:
    """Every record of the offline run's .wandb file: a LevelDB-style log (32 KiB blocks, 7-byte
    chunk headers: crc32, length, type) after a 7-byte W&B header, each record a wandb protobuf.
    wandb 0.31 keeps its own reader in the Go core, so the framing is read here."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_root.glob("wandb/offline-run-*/run-*.wandb")
    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1
    out, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        crc, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + n]
        assert zlib.crc32(bytes([kind]) + chunk) == crc
        pos += 7 + n
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            out.append(pb.Record.FromString(pending))
    return out


def wandb_history(records) -> dict[int, dict]:
    rows: dict[int, dict] = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
            rows.setdefault(int(row["_step"]), {}).update(row)
    return rows


def wandb_alerts(records) -> list[str]:
    return [r.alert.text for r in records if r.WhichOneof("record_type") == "alert"]


def trackio_run(name: str) -> tuple[dict[int, dict], list[tuple[int, str]]]:
    """The newest trackio run of that name in the local store: rows by step, and its alerts."""
    from trackio.sqlite_storage import SQLiteStorage

    run_id = [r["id"] for r in SQLiteStorage.get_run_records(PROJECT) if r["name"] == name][-1]
    rows: dict[int, dict] = {}
    for row in SQLiteStorage.get_logs(PROJECT, run_id=run_id):
        rows.setdefault(int(row["step"]), {}).update(row)
    alerts = [(a["step"], a["text"]) for a in SQLiteStorage.get_alerts(PROJECT, run_id=run_id)]
    return rows, sorted(alerts)


def run_name(out: Path) -> str:
    return f"{out.resolve().parent.name}/{out.name}"


def f32(x: float) -> float:
    """TensorBoard stores scalars as float32."""
    return float(np.float32(x))


def assert_curves(out: Path, log: list[dict], monitor: list[dict]) -> None:
    """Each backend holds loss, lr and tokens at every logged step and the monitor's raw readings."""
    ea = tensorboard_events(out / "tensorboard")
    wb = wandb_history(wandb_records(out))
    tr, _ = trackio_run(run_name(out))
    for key, name in (("loss", "train/loss"), ("lr", "train/lr"), ("tokens", "train/tokens")):
        want = {r["step"]: r[key] for r in log}
        assert tb_scalars(ea, name) == {s: f32(v) for s, v in want.items()}, name
        assert {s: wb[s][name] for s in want} == want, name
        assert {s: tr[s][name] for s in want} == want, name
    for rec in monitor:
        for k in ("conflict", "agree", "cm"):
            want = rec["rules"][RULE]["raw"][k]
            tag = f"monitor/{RULE}/{k}"
            assert tb_scalars(ea, tag)[rec["step"]] == f32(want), (tag, rec["step"])
            assert wb[rec["step"]][tag] == want and tr[rec["step"]][tag] == want, (tag, rec["step"])


# --------------------------------------------------------------------------- ungrok train
def test_train_cli_logs_loss_lr_tokens_and_monitor_readings(corpus, tiny_yaml, tmp_path, capsys):
    from ungrok.cli import main

    bat = tmp_path / "battery.jsonl"
    save_battery(build_battery([RULE]), bat)
    out = tmp_path / "run"
    args = ["train", "--config", str(tiny_yaml(sampler={"steps": 30})), "--data", str(corpus), "--out", str(out),
            "--monitor-battery", str(bat), "--log", "tensorboard,wandb", "--log", "trackio"]
    try:
        main(args)
    except SystemExit as e:
        assert not e.code, capsys.readouterr().err
    assert "Trackio" not in capsys.readouterr().out  # trackio's banners go to stderr
    log, monitor = read_jsonl(out / "train_log.jsonl"), read_jsonl(out / "monitor.jsonl")
    assert [r["step"] for r in log] == list(range(30))
    assert [r["step"] for r in monitor] == [0, 1, 2, 4, 8, 12, 16, 20, 24, 28]
    assert_curves(out, log, monitor)
    # trackers watch a run, they do not define it: config.json leaves them out
    assert "log" not in json.loads((out / "config.json").read_text())["config"]


class ScriptedMonitor:
    """The real RuleMonitor, reading a stub whose she:he bias follows a script: the rule is solved
    for four probes, then lost. The loop's own model is ignored, so the warnings are known."""

    def __init__(self, biases: list[float]):
        battery, margins, tokfile, tok, girls = pronoun_setup(RULE)
        self.stub = PronounStub(tok, girls)
        self.monitor = RuleMonitor(battery, tokfile, [RULE], [margins],
                                   ClassifierConfig(min_step=0), watch=WatchConfig(min_step=0))
        self.biases = list(biases)

    def on_probe(self, step: int, model) -> dict:
        self.stub.bias = self.biases.pop(0)
        return self.monitor.observe(step, self.stub)


def test_loop_sends_every_monitor_warning(corpus, tiny_config, tmp_path):
    from ungrok.train.loop import train

    out = tmp_path / "run"
    cfg = tiny_config(log=["tensorboard", "wandb,trackio"])
    # probes at 0, 1, 2, 4, 8, 12, 16, 20; conflict 1, 1, 1, 1, then 0. As in test_monitor's
    # rise-and-fall: the early warning at the 7th probe (step 16), DISPLACED at the 8th (step 20).
    train(cfg, corpus, out, callbacks=[ScriptedMonitor([2.0] * 4 + [-1.0] * 4)], progress=False)
    monitor = read_jsonl(out / "monitor.jsonl")
    warned = [(r["step"], w) for r in monitor for w in r["warnings"]]
    assert [s for s, _ in warned] == [16, 20]
    assert "displacement warning" in warned[0][1] and ": displaced:" in warned[1][1]
    assert tb_texts(tensorboard_events(out / "tensorboard"), "monitor/warning") == warned
    records = wandb_records(out)
    assert wandb_alerts(records) == [w for _, w in warned]
    hist = wandb_history(records)
    assert [(s, row["monitor/warning"]) for s, row in sorted(hist.items()) if "monitor/warning" in row] == warned
    assert trackio_run(run_name(out))[1] == warned
    assert_curves(out, read_jsonl(out / "train_log.jsonl"), monitor)


# --------------------------------------------------------------------------- Hugging Face Trainer
def test_monitor_callback_logs_to_trackers_inside_hf_trainer(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, Trainer, TrainingArguments

    from ungrok.probes.models import HFTokenizer
    from ungrok.train.monitor import MonitorCallback

    battery, margins = build_battery([RULE]), margin_prompt_set(get_rule(RULE))
    texts = [s for it in battery.items for s in (it["prefix"], it["correct"], it["distractor"])]
    texts += list(margins.cm_prompts) + list(margins.neutral_prompts)
    tok = build_word_tokenizer(sorted({w for t in texts for w in t.split()}))
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<|unk|>", pad_token="<|endoftext|>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=32, n_embd=16, n_layer=1,
                                       n_head=2, bos_token_id=0, eos_token_id=0))
    rows = [hf_tok(it["prefix"] + it["correct"])["input_ids"] for it in battery.items if it["split"] == "train"][:16]
    width = max(map(len, rows))
    data = [{"input_ids": r + [0] * (width - len(r)), "labels": r + [-100] * (width - len(r))} for r in rows]
    mon = RuleMonitor(battery, HFTokenizer(hf_tok), rules=[RULE], margins=[margins])
    out = tmp_path / "hf"
    cb = MonitorCallback(mon, every=2, log="tensorboard,wandb,trackio")
    args = TrainingArguments(
        output_dir=str(out), max_steps=5, per_device_train_batch_size=4, learning_rate=1e-2, report_to=[],
        save_strategy="no", logging_steps=1, use_cpu=True, seed=0, disable_tqdm=True,
        include_num_input_tokens_seen=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[cb])
    trainer.train()
    losses = {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}
    assert sorted(losses) == [1, 2, 3, 4, 5]
    readings = {r["step"]: r["rules"][RULE]["raw"]["conflict"] for r in cb.history}
    assert sorted(readings) == [2, 4, 5]
    tag = f"monitor/{RULE}/conflict"
    ea = tensorboard_events(out / "tensorboard")
    assert tb_scalars(ea, "train/loss") == {s: f32(v) for s, v in losses.items()}
    assert tb_scalars(ea, tag) == {s: f32(v) for s, v in readings.items()}
    assert tb_scalars(ea, "train/tokens")[5] == trainer.state.num_input_tokens_seen > 0
    wb = wandb_history(wandb_records(out))
    tr, _ = trackio_run(run_name(out))
    for rows in (wb, tr):
        assert {s: rows[s]["train/loss"] for s in losses} == losses
        assert {s: rows[s][tag] for s in readings} == readings


# --------------------------------------------------------------------------- ungrok run
def test_experiment_train_section_logs_each_cell_seed(corpus, tiny_config, tmp_path):
    """`ungrok run` trains each (cell, seed) through run_cell_seed with the cell's train mapping."""
    from ungrok.experiment.layout import corpus_dir, seed_dir
    from ungrok.experiment.tasks import RunJob, run_cell_seed

    bat = tmp_path / "battery.jsonl"
    save_battery(build_battery([RULE]), bat)
    corpus_dir(tmp_path, "c").parent.mkdir(parents=True)
    corpus_dir(tmp_path, "c").symlink_to(corpus)
    job = RunJob(run_dir=str(tmp_path), cell="c", seed=7, train_doc=tiny_config(log="tensorboard").model_dump(mode="json"),
                 batteries=(str(bat),), monitor_rules=(RULE,), classifier={})
    run_cell_seed(job)
    out = seed_dir(tmp_path, "c", 7)
    ea = tensorboard_events(out / "tensorboard")
    log, monitor = read_jsonl(out / "train_log.jsonl"), read_jsonl(out / "monitor.jsonl")
    assert tb_scalars(ea, "train/loss") == {r["step"]: f32(r["loss"]) for r in log}
    tag = f"monitor/{RULE}/agree"
    assert tb_scalars(ea, tag) == {r["step"]: f32(r["rules"][RULE]["raw"]["agree"]) for r in monitor}


def test_experiment_file_refuses_an_unknown_tracker(tmp_path):
    import yaml

    from ungrok.experiment.spec import load_experiment

    train = {"model": {"preset": "tiny"}, "sampler": {"context": 32, "batch_size": 4, "steps": 20},
             "log": ["tensorboard", "comet"]}
    doc = {"name": "t", "seeds": [1], "rules": [RULE], "batteries": {"main": "battery.jsonl"}, "train": train,
           "cells": {"a": {"storyworld": {"tokens": 100_000, "seed": 0}}}}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(UngrokError, match=r"cells\.a\.train: field log: unknown tracker 'comet'"):
        load_experiment(path, check_files=False)


# --------------------------------------------------------------------------- bad input
def test_unknown_tracker_is_one_line_and_exit_2(corpus, tiny_yaml, tmp_path, capsys):
    from ungrok.cli import main

    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(["train", "--config", str(tiny_yaml()), "--data", str(corpus), "--out", str(out),
              "--log", "tensorboard,tensorbord"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert "unknown tracker 'tensorbord' (choose from tensorboard, wandb, trackio)" in err[0]
    assert not out.exists()
    with pytest.raises(SystemExit) as e:  # the same check for a config file's log field
        main(["train", "--config", str(tiny_yaml(log="wandb, mlflow")), "--data", str(corpus), "--out", str(out)])
    assert e.value.code == 2 and "field log: unknown tracker 'mlflow'" in capsys.readouterr().err
    with pytest.raises(UngrokError, match="unknown tracker 'neptune'"):
        from ungrok.train.monitor import MonitorCallback

        MonitorCallback(None, log=["neptune"])


def test_missing_library_names_the_extra(corpus, tiny_yaml, tmp_path, capsys, monkeypatch):
    from ungrok.cli import main

    monkeypatch.setitem(sys.modules, "wandb", None)  # what `import wandb` sees when it is not installed
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(["train", "--config", str(tiny_yaml()), "--data", str(corpus), "--out", str(out), "--log", "wandb"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert "--log wandb needs the wandb package: pip install 'ungrok[trackers]'" in err[0]
    assert not out.exists()  # refused before the run folder was made
