import math

import pytest
from pydantic import ValidationError

from ungrok.train.schedule import (
    PAPER_CHECKPOINTS,
    CheckpointRule,
    checkpoint_steps,
    lr_multiplier,
    muon_weight_decay,
    probe_due,
)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 1.0),
        (3079, 1.0),
        (3080, 1.0),  # cos(0)
        (3080 + 330, 0.5 * (1 + math.cos(math.pi / 4))),
        (3740, 0.5),  # half-way through the 1,320-step warm-down
        (4400, 0.0),
    ],
)
def test_lr_multiplier_matches_the_papers_formula(step, expected):
    assert lr_multiplier(step, 4400) == pytest.approx(expected, abs=1e-12)


def test_lr_multiplier_is_flat_then_decreasing():
    values = [lr_multiplier(s, 100) for s in range(101)]
    assert values[:70] == [1.0] * 70
    assert all(a >= b for a, b in zip(values[70:], values[71:], strict=False))
    assert values[100] == pytest.approx(0.0, abs=1e-12)


def test_muon_weight_decay_linear_and_constant():
    assert muon_weight_decay(0, 4400, 0.2, "linear") == 0.2
    assert muon_weight_decay(2200, 4400, 0.2, "linear") == pytest.approx(0.1)
    assert muon_weight_decay(4400, 4400, 0.2, "linear") == 0.0
    assert muon_weight_decay(2200, 4400, 0.2, "none") == 0.2


def test_paper_checkpoint_schedule_has_114_checkpoints():
    steps = checkpoint_steps(PAPER_CHECKPOINTS, 4400)
    brute = [s for s in range(4401) if s % 100 == 0 or (100 <= s <= 2400 and s % 25 == 0)]
    assert steps == brute
    assert len(steps) == 114
    assert sum(s >= 100 for s in steps) == 113
    assert steps[:4] == [0, 100, 125, 150] and steps[-3:] == [4200, 4300, 4400]


def test_user_rules_are_clipped_and_the_last_step_is_always_saved():
    rules = [CheckpointRule(start=0, end=10, every=5), CheckpointRule(start=20, every=30)]
    assert checkpoint_steps(rules, 60) == [0, 5, 10, 20, 50, 60]
    assert checkpoint_steps(rules, 7) == [0, 5, 7]
    with pytest.raises(ValidationError):
        CheckpointRule(start=10, end=5, every=1)
    with pytest.raises(ValidationError):
        CheckpointRule(start=0, every=0)


def test_probe_cadence_dense_then_every_n():
    due = [s for s in range(80) if probe_due(s, 5, 50)]
    assert due == list(range(51)) + [55, 60, 65, 70, 75]
