from pathlib import Path

import pytest

from ungrok.errors import UngrokError
from ungrok.model import PRESETS
from ungrok.model.optim import OptimizerConfig
from ungrok.train.config import TrainConfig, check_run, load_train_config, resolve_model
from ungrok.train.schedule import PAPER_CHECKPOINTS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train-tiny.yaml"


def test_defaults_are_the_papers_run():
    paper = TrainConfig.model_validate({"model": {"preset": "paper-11.5m"}})
    assert (paper.sampler.context, paper.sampler.batch_size, paper.sampler.steps) == (2048, 32, 4400)
    assert paper.optimizer == OptimizerConfig(arm="ts")
    assert (paper.optimizer.matrix_lr, paper.optimizer.embed_lr, paper.optimizer.weight_decay) == (
        0.04,
        0.6,
        0.2,
    )
    assert paper.checkpoints.rules == PAPER_CHECKPOINTS and paper.checkpoints.dtype == "float32"
    assert (paper.probe_every, paper.probe_dense_until) == (5, 50)
    assert resolve_model(paper) == PRESETS["paper-11.5m"]


def test_example_config_loads_and_overrides_win():
    cfg = load_train_config(EXAMPLE, seed=3, steps=11)
    assert cfg.seed == 3 and cfg.sampler.steps == 11
    model = resolve_model(cfg)
    assert (model.n_layer, model.n_embd, model.vocab_size, model.context) == (2, 128, 2048, 128)


def test_the_paper_cell_example_is_the_papers_run_in_bf16_compiled():
    """examples/train-paper.yaml: 4,400 steps of 32 x 2,048 tokens (docs/method.md §1.2), the
    paper's 114 checkpoints, the 11.5M model, bf16 compiled; the README's hours rest on it."""
    from ungrok.train.schedule import checkpoint_steps

    cfg = load_train_config(EXAMPLE.with_name("train-paper.yaml"))
    s = cfg.sampler
    assert (s.steps, s.batch_size, s.context, s.steps * s.batch_size * s.context) == (4400, 32, 2048, 288_358_400)
    assert len(checkpoint_steps(cfg.checkpoints.rules, s.steps)) == 114
    assert (cfg.precision, cfg.compile, cfg.model.preset) == ("bf16", True, "paper-11.5m")
    assert resolve_model(cfg).vocab_size == 8192


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ("sampler: {contxt: 5}\n", "unknown field sampler.contxt"),
        ("optimizer: {arm: adam}\n", "field optimizer.arm"),
        ("checkpoints: {rules: [{start: 5, end: 1, every: 1}]}\n", "field checkpoints.rules.0"),
        ("- a list\n", "expected a mapping"),
        ("model: {preset: huge}\n", "unknown model preset 'huge'"),
        ("model: {preset: tiny, n_embd: 33}\n", "model: n_embd 33 is not divisible by n_head 2"),
    ],
)
def test_bad_configs_are_one_line_errors(tmp_path, doc, needle):
    path = tmp_path / "c.yaml"
    path.write_text(doc)
    with pytest.raises(UngrokError) as e:
        resolve_model(load_train_config(path))
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"sampler": {"context": 100}}, "sampler.context 100 is longer than the model's context 64"),
        (
            {"model": {"preset": "tiny", "context": 300_000}, "sampler": {"context": 250_000}},
            "sampler.context 250,000 is too long for",
        ),
        (
            {"model": {"preset": "tiny", "vocab_size": 1000}},
            "corpus vocab_size 1,456 is larger than the model's",
        ),
        ({"sampler": {"max_tokens": 10_000_000}}, "sampler.max_tokens 10,000,000 exceeds the size of"),
        ({"sampler": {"batch_size": 3}, "device_batch_size": 2}, "not divisible"),
        ({"sampler": {"phase_b": {"data": "x", "switch_step": 99}}}, "after the last step 20"),
    ],
)
def test_config_is_checked_against_model_and_corpus(corpus, tiny_config, changes, needle):
    cfg = tiny_config(**changes)
    with pytest.raises(UngrokError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        check_run(cfg, resolve_model(cfg), corpus)
