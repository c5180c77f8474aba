import json

import pytest
import torch
from safetensors.torch import load_file

from ungrok.errors import UngrokError
from ungrok.model import GPT, ModelConfig, load_checkpoint
from ungrok.train.loop import Diverged, forward_backward, train
from ungrok.train.rundir import read_jsonl
from ungrok.train.sampler import served_windows

pytestmark = pytest.mark.usefixtures("one_thread")


def weights(run, step):
    return load_file(str(run / "checkpoints" / f"model_{step:06d}.safetensors"))


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def log_without_time(path):
    return [{k: v for k, v in r.items() if k != "time_s"} for r in read_jsonl(path)]


def assert_same_run(a, b, steps):
    for s in steps:
        assert same_weights(weights(a, s), weights(b, s)), f"checkpoint {s} differs"
    assert log_without_time(a / "train_log.jsonl") == log_without_time(b / "train_log.jsonl")
    assert (a / "monitor.jsonl").exists() == (b / "monitor.jsonl").exists()
    if (a / "monitor.jsonl").exists():
        assert (a / "monitor.jsonl").read_bytes() == (b / "monitor.jsonl").read_bytes()


class Recorder:
    """A trivial probe: notes the mode it was called in and one number from the weights."""

    def __init__(self, fail_at: int | None = None):
        self.calls = []
        self.fail_at = fail_at

    def on_probe(self, step, model):
        if step == self.fail_at:
            raise KeyboardInterrupt("simulated crash")
        self.calls.append((step, model.training, torch.is_grad_enabled()))
        head = float(model.lm_head.weight.abs().sum())
        return {"head_l1": head, "display": "head is zero" if head == 0 else ""}

    def state_dict(self):
        return {"calls": len(self.calls)}

    def load_state_dict(self, state):
        self.calls = [(-1, None, None)] * state["calls"]


def test_same_seed_same_run_and_a_checkpoint_holds_the_weights_after_s_updates(
    corpus, tiny_config, tmp_path, default_threads
):
    cfg = tiny_config()
    a = train(cfg, corpus, tmp_path / "a", progress=False)
    b = train(cfg, corpus, tmp_path / "b", progress=False)
    assert a.status == b.status == "trained" and a.checkpoints == [0, 5, 10, 15, 20]
    assert_same_run(tmp_path / "a", tmp_path / "b", a.checkpoints)
    log = read_jsonl(tmp_path / "a" / "train_log.jsonl")
    assert [r["step"] for r in log] == list(range(20))
    assert log[-1]["tokens"] == 20 * 4 * 32 and a.final_loss == log[-1]["loss"]
    assert log[-1]["loss"] < log[0]["loss"] - 0.5  # it learns
    # independent check of the data path and of "checkpoint s = weights after s updates":
    # checkpoint s scored on the sampler's batch s gives the loss the log recorded for step s
    windows = list(served_windows(corpus, cfg.sampler, cfg.seed))
    for s in (0, 5, 15):
        model = load_checkpoint(tmp_path / "a" / "checkpoints" / f"model_{s:06d}.json").model
        _, sampler, shards, offsets = windows[s]
        rows = torch.stack(
            [
                torch.from_numpy(sampler.tokens(sh, o).astype("int64"))
                for sh, o in zip(shards, offsets, strict=True)
            ]
        )
        with torch.no_grad():
            _, loss = model(rows[:, :-1], rows[:, 1:])
        assert loss.item() == pytest.approx(log[s]["loss"], rel=1e-5)
    # step 0 is the seeded initialisation
    torch.manual_seed(cfg.seed)
    init = GPT(cfg.model.resolve())
    assert same_weights(weights(tmp_path / "a", 0), {k: v for k, v in init.state_dict().items()})
    # another seed is another run
    train(tiny_config(seed=8), corpus, tmp_path / "c", progress=False)
    assert not same_weights(weights(tmp_path / "a", 20), weights(tmp_path / "c", 20))


def test_interrupted_run_resumes_bit_identically_with_its_monitor(
    corpus, tiny_config, tmp_path, default_threads
):
    cfg = tiny_config()
    ref = Recorder()
    train(cfg, corpus, tmp_path / "ref", callbacks=[ref], progress=False)
    # callbacks: dense every step to 2, then every 4; eval mode without gradients
    assert [c[0] for c in ref.calls] == [0, 1, 2, 4, 8, 12, 16, 20]
    assert all(training is False and grad is False for _, training, grad in ref.calls)
    monitor = read_jsonl(tmp_path / "ref" / "monitor.jsonl")
    assert [m["step"] for m in monitor] == [0, 1, 2, 4, 8, 12, 16, 20]
    assert monitor[0]["head_l1"] == 0.0 and monitor[0]["display"] == "head is zero"  # zero-init head
    assert monitor[-1]["head_l1"] > 0

    crashing = Recorder(fail_at=12)  # dies after checkpoint 10 and the step-10 resume state
    with pytest.raises(KeyboardInterrupt):
        train(cfg, corpus, tmp_path / "run", callbacks=[crashing], progress=False)
    assert not (tmp_path / "run" / "complete.json").exists()
    resumed = Recorder()
    result = train(cfg, corpus, tmp_path / "run", callbacks=[resumed], progress=False)
    assert result.status == "resumed"
    assert resumed.calls[:3] == [(-1, None, None)] * 3  # its state came back: 0, 1, 2, 4, 8 -> 5 calls
    assert [c[0] for c in resumed.calls[5:]] == [12, 16, 20]
    assert_same_run(tmp_path / "ref", tmp_path / "run", result.checkpoints)
    # the model is back in train mode after probes; a finished run is reported, not redone
    again = train(cfg, corpus, tmp_path / "run", progress=False)
    assert again.status == "complete" and again.final_loss == result.final_loss


def test_a_different_config_is_refused_unless_forced(corpus, tiny_config, tmp_path):
    train(tiny_config(), corpus, tmp_path / "r", progress=False)
    with pytest.raises(UngrokError, match=r"different config \(seed: 7 here vs 9 requested\)"):
        train(tiny_config(seed=9), corpus, tmp_path / "r", progress=False)
    forced = train(
        tiny_config(seed=9, sampler={"steps": 5}), corpus, tmp_path / "r", force=True, progress=False
    )
    assert forced.status == "trained"
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("*.json")) == [
        "model_000000.json", "model_000005.json"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UngrokError, match="not an ungrok training run"):
        train(tiny_config(), corpus, tmp_path / "other", progress=False)


def _interrupt_after_10(corpus, cfg, out):
    with pytest.raises(KeyboardInterrupt):
        train(cfg, corpus, out, callbacks=[Recorder(fail_at=12)], progress=False)


def test_corrupt_resume_state_or_checkpoint_is_refused_by_name(corpus, tiny_config, tmp_path):
    cfg = tiny_config()
    out = tmp_path / "r"
    _interrupt_after_10(corpus, cfg, out)
    state = out / "resume" / "state_000010.pt"
    good = state.read_bytes()
    state.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    with pytest.raises(UngrokError, match=r"state_000010\.pt: corrupt resume state"):
        train(cfg, corpus, out, progress=False)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before  # nothing else touched
    state.write_bytes(good)
    ck = out / "checkpoints" / "model_000005.safetensors"
    ck.write_bytes(ck.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(UngrokError, match=r"model_000005\.safetensors: corrupt or missing checkpoint"):
        train(cfg, corpus, out, progress=False)


class Poison:
    """Turns the embeddings into NaN at one probe step, as a diverging run would."""

    def on_probe(self, step, model):
        if step == 8:
            model.wte.weight.fill_(float("nan"))


def test_divergence_stops_and_keeps_the_last_good_checkpoint(corpus, tiny_config, tmp_path):
    with pytest.raises(Diverged) as e:
        train(tiny_config(), corpus, tmp_path / "r", callbacks=[Poison()], progress=False)
    assert "step 8: loss is nan; training stopped" in str(e.value)
    assert "last good checkpoint" in str(e.value) and "model_000005.safetensors" in str(e.value)
    failed = json.loads((tmp_path / "r" / "failed.json").read_text())
    assert failed["step"] == 8 and failed["last_checkpoint"] == 5
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("*.json")) == [
        "model_000000.json", "model_000005.json"]
    assert all(torch.isfinite(t).all() for t in weights(tmp_path / "r", 5).values())
    assert not (tmp_path / "r" / "complete.json").exists()
    assert [r["step"] for r in read_jsonl(tmp_path / "r" / "train_log.jsonl")] == list(range(8))


def test_gradient_accumulation_gives_the_full_batch_gradient():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=50, n_layer=1, n_head=2, n_embd=16, context=12))
    torch.nn.init.normal_(model.lm_head.weight, 0, 0.5)  # nonzero head, so every gradient flows
    rows = torch.randint(0, 50, (4, 13))
    full = forward_backward(model, rows, 4, torch.device("cpu"))
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    acc = forward_backward(model, rows, 1, torch.device("cpu"))
    assert acc.item() == pytest.approx(full.item(), rel=1e-6)
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, grads[n], rtol=1e-4, atol=1e-7), n
    # and the loss is the mean next-token cross-entropy of the shifted rows
    logits = model(rows[:, :-1])
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 50), rows[:, 1:].reshape(-1))
    assert full.item() == pytest.approx(expected.item(), rel=1e-6)


def test_bf16_training_is_reproducible_resumable_and_close_to_fp32(corpus, tiny_config, tmp_path):
    cfg = tiny_config(precision="bf16")
    a = train(cfg, corpus, tmp_path / "a", progress=False)
    train(cfg, corpus, tmp_path / "b", callbacks=[Recorder()], progress=False)
    for s in a.checkpoints:
        assert same_weights(weights(tmp_path / "a", s), weights(tmp_path / "b", s))
    with pytest.raises(KeyboardInterrupt):
        train(cfg, corpus, tmp_path / "run", callbacks=[Recorder(fail_at=12)], progress=False)
    train(cfg, corpus, tmp_path / "run", callbacks=[Recorder()], progress=False)
    assert_same_run(tmp_path / "b", tmp_path / "run", a.checkpoints)
    # fp32 master weights: checkpoints stay fp32; the run differs from fp32 training, not by much
    assert all(v.dtype == torch.float32 for v in weights(tmp_path / "a", 20).values())
    fp32 = train(tiny_config(), corpus, tmp_path / "fp32", progress=False)
    assert not same_weights(weights(tmp_path / "a", 20), weights(tmp_path / "fp32", 20))
    assert a.final_loss == pytest.approx(fp32.final_loss, abs=0.05)


def test_compiled_training_is_reproducible_and_follows_the_eager_run(corpus, tiny_config, tmp_path):
    cfg = tiny_config(compile=True, precision="bf16", sampler={"steps": 10})
    a = train(cfg, corpus, tmp_path / "a", progress=False)
    train(cfg, corpus, tmp_path / "b", progress=False)
    for s in a.checkpoints:
        assert same_weights(weights(tmp_path / "a", s), weights(tmp_path / "b", s))
    eager = train(tiny_config(precision="bf16", sampler={"steps": 10}), corpus, tmp_path / "e", progress=False)
    assert a.final_loss == pytest.approx(eager.final_loss, abs=0.02)


def test_compile_without_a_cxx_compiler_is_one_line(corpus, tiny_config, tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(UngrokError, match="train.compile needs a C\\+\\+ compiler"):
        train(tiny_config(compile=True), corpus, tmp_path / "x", progress=False)


def test_cpu_attention_bf16_reaches_the_model_and_stays_reproducible(corpus, tiny_config, tmp_path):
    """`cpu_attention: bf16` changes the arithmetic of a bf16 run (the attention core's precision)
    and, like every mode, repeats bit for bit."""
    cfg = tiny_config(precision="bf16", cpu_attention="bf16", sampler={"steps": 10})
    a = train(cfg, corpus, tmp_path / "a", progress=False)
    train(cfg, corpus, tmp_path / "b", progress=False)
    fp32_core = train(tiny_config(precision="bf16", sampler={"steps": 10}), corpus, tmp_path / "c", progress=False)
    for s in a.checkpoints:
        assert same_weights(weights(tmp_path / "a", s), weights(tmp_path / "b", s))
    last = a.checkpoints[-1]
    assert not same_weights(weights(tmp_path / "a", last), weights(tmp_path / "c", last))
    assert a.final_loss == pytest.approx(fp32_core.final_loss, abs=0.05)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_loss_chunk_trains_the_same_model_to_float_rounding_and_repeats_bit_for_bit(corpus, tiny_config, tmp_path, precision):
    """`loss_chunk` makes the head and loss chunk by chunk (model/loss.py): another arithmetic of
    the same loss, so the run repeats exactly and stays within rounding of the one-pass run."""
    cfg = tiny_config(precision=precision, loss_chunk=37, sampler={"steps": 10})
    a = train(cfg, corpus, tmp_path / "a", progress=False)
    train(cfg, corpus, tmp_path / "b", progress=False)
    one = train(tiny_config(precision=precision, sampler={"steps": 10}), corpus, tmp_path / "c", progress=False)
    for s in a.checkpoints:
        assert same_weights(weights(tmp_path / "a", s), weights(tmp_path / "b", s))
    # rounding differences grow over ten Muon steps: 6e-4 nats in fp32 here
    assert a.final_loss == pytest.approx(one.final_loss, abs=5e-3 if precision == "fp32" else 0.05)
    assert json.loads((tmp_path / "a" / "config.json").read_text())["config"]["loss_chunk"] == 37
