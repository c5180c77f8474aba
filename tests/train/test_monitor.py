"""The live monitor: readings equal a direct computation, warnings fire on a rise-and-fall, and
the same monitor runs inside a real Hugging Face `Trainer` as a TrainerCallback."""

from __future__ import annotations

import json

import pytest
import torch
from monitor_stubs import PronounStub, pronoun_setup

from ungrok.fate.watch_config import DEFAULT_WATCH
from ungrok.probes.battery import build_battery
from ungrok.train.monitor import RuleMonitor

RULE = "pronoun_gender_ref"


@pytest.fixture(scope="module")
def setup():
    return pronoun_setup(RULE)


def test_monitor_readings_and_displacement_warning(setup):
    battery, margins, tokfile, tok, girls = setup
    mon = RuleMonitor(battery, tokfile, rules=[RULE], margins=[margins])
    stub = PronounStub(tok, girls)
    records = []
    for step, bias in enumerate([2.0, 2.0, 2.0, 2.0, -1.0, -1.0, -1.0, -1.0, -1.0], start=1):
        stub.bias = bias
        records.append(mon.observe(step * 100, stub))  # steps 100..900: all at or above min_step
    first = records[0]["rules"][RULE]
    # girl prompts: she wins (conflict right); boy prompts: he wins (agree right)
    assert first["conflict"] == 1.0 and first["agree"] == 1.0
    assert first["raw"]["conflict"] == 1.0 and first["raw"]["agree"] == 1.0
    # CM = mean over girl prompts of log p(she) - log p(he) = bias exactly
    assert first["cm"] == pytest.approx(2.0, abs=1e-5)
    assert records[-1]["rules"][RULE]["raw"]["cm"] == pytest.approx(-1.0, abs=1e-5)
    # Updated for the hashed warning rule (the old one said displaced at once at step 500, on a
    # trailing mean of 0.5). Conflict 1, 1, 1, 1, then 0 from step 500: raw <= 0.6 at 500, 600,
    # 700 -> early warning at 700, while the classifier on the readings so far still says
    # UNSTABLE (smoothed tail .333, 0, 0); at 800 the tail is 0, 0, 0 -> DISPLACED.
    states = [r["rules"][RULE]["state"] for r in records]
    assert states == ["emerged"] * 6 + ["displacing"] + ["displaced"] * 2
    assert len(records[6]["warnings"]) == 1 and "displacement warning" in records[6]["warnings"][0]
    assert len(records[7]["warnings"]) == 1 and "displaced" in records[7]["warnings"][0]
    assert all(not r["warnings"] for i, r in enumerate(records) if i not in (6, 7))
    assert records[-1]["rules"][RULE]["warned_at"] == 700
    assert records[-1]["display"] == f"{RULE}: displaced"
    # every line names the warning rule that judged it
    assert {r["watch_sha256"] for r in records} == {DEFAULT_WATCH.sha256()}


def test_monitor_refuses_unknown_rule(setup):
    battery, _, tokfile, _, _ = setup
    from ungrok.errors import UngrokError

    with pytest.raises(UngrokError, match="no items in the battery"):
        RuleMonitor(battery, tokfile, rules=["det_an_choice"])


def test_trainer_callback_on_a_real_hf_trainer(setup, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast, Trainer, TrainingArguments

    from ungrok.probes.models import HFTokenizer
    from ungrok.train.monitor import MonitorCallback

    battery, margins, _, tok, _ = setup
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<|unk|>", pad_token="<|endoftext|>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=tok.get_vocab_size(),
            n_positions=32,
            n_embd=16,
            n_layer=1,
            n_head=2,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    texts = [it["prefix"] + it["correct"] for it in battery.items if it["split"] == "train"][:16]
    rows = [hf_tok(t)["input_ids"] for t in texts]
    width = max(map(len, rows))
    data = [{"input_ids": r + [0] * (width - len(r)), "labels": r + [-100] * (width - len(r))} for r in rows]
    mon = RuleMonitor(battery, HFTokenizer(hf_tok), rules=[RULE], margins=[margins])
    cb = MonitorCallback(mon, every=2)
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=5, per_device_train_batch_size=4, learning_rate=1e-2,
        report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True, seed=0,
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=data, callbacks=[cb]).train()
    # every 2 steps, plus the final reading at train end
    assert [r["step"] for r in cb.history] == [2, 4, 5]
    logged = [json.loads(x) for x in (tmp_path / "ungrok_monitor.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [2, 4, 5]
    # the final reading equals a direct transformers computation on the trained model
    model.eval()
    for cond in ("conflict", "agree"):
        items = [it for it in battery.items if it["split"] == "heldout" and it["condition"] == cond]
        right = 0
        with torch.no_grad():
            for it in items:
                ids = torch.tensor([hf_tok(it["prefix"], add_special_tokens=False)["input_ids"]])
                lp = model(ids).logits[0, -1].float().log_softmax(-1)
                c = hf_tok(it["correct"], add_special_tokens=False)["input_ids"][0]
                d = hf_tok(it["distractor"], add_special_tokens=False)["input_ids"][0]
                right += int(lp[c] > lp[d])
        assert cb.history[-1]["rules"][RULE][cond] is not None
        raw = mon.watches[RULE].conflict if cond == "conflict" else mon.watches[RULE].agree
        assert raw[-1] == pytest.approx(right / len(items))


def test_monitor_state_round_trips(setup):
    battery, margins, tokfile, tok, girls = setup
    a = RuleMonitor(battery, tokfile, rules=[RULE], margins=[margins])
    stub = PronounStub(tok, girls)
    for step, bias in enumerate([2.0, 2.0, 2.0, -1.0]):
        stub.bias = bias
        a.observe(step, stub)
    b = RuleMonitor(battery, tokfile, rules=[RULE], margins=[margins])
    b.load_state_dict(a.state_dict())
    stub.bias = -1.0
    assert a.observe(9, stub) == b.observe(9, stub)
    assert a.watches[RULE] == b.watches[RULE]


def test_train_cli_with_a_live_monitor(corpus, tiny_yaml, tmp_path, capsys):
    from ungrok.cli import main
    from ungrok.probes.battery import save_battery

    cfg = tiny_yaml()
    bat = tmp_path / "battery.jsonl"
    save_battery(build_battery([RULE]), bat)
    out = tmp_path / "run"
    try:
        main(["train", "--config", str(cfg), "--data", str(corpus), "--out", str(out),
              "--monitor-battery", str(bat)])
    except SystemExit as e:
        assert not e.code, capsys.readouterr().err
    lines = [json.loads(x) for x in (out / "monitor.jsonl").read_text().splitlines()]
    # probes at every step <= 2, then every 4 steps up to 20
    assert [r["step"] for r in lines] == [0, 1, 2, 4, 8, 12, 16, 20]
    assert set(lines[-1]["rules"][RULE]) >= {"state", "conflict", "agree", "cm"}
    # at step 0 all logits are 0: every forced choice is a tie (wrong) and CM is exactly 0
    assert lines[0]["rules"][RULE]["conflict"] == 0.0 and lines[0]["rules"][RULE]["cm"] == 0.0
