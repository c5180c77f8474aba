"""The warning rule's hashed config: shipped file = class defaults, a stable hash, clear refusals."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import pytest
from pydantic import ValidationError

from ungrok.errors import UngrokError
from ungrok.fate.watch_config import DEFAULT_WATCH, WatchConfig, load_watch_config, parse_watch_config

# The frozen rule (docs/benchmarks.md). A deliberate retune changes this line and the docs.
FROZEN_SHA256 = "5932ddb289a74ff51151f89692833375b6b87150a4390f2f815a9216cb81f427"


def test_shipped_file_is_complete_and_equals_the_class_defaults():
    data = json.loads(resources.files("ungrok.fate").joinpath("watch.json").read_text(encoding="utf-8"))
    assert set(data) == set(WatchConfig.model_fields)  # every constant written out, none implied
    assert WatchConfig(**data) == WatchConfig() == DEFAULT_WATCH


def test_hash_is_stable_and_covers_every_value():
    assert DEFAULT_WATCH.sha256() == FROZEN_SHA256
    canon = DEFAULT_WATCH.canonical_json()
    assert hashlib.sha256(canon.encode()).hexdigest() == FROZEN_SHA256
    assert list(json.loads(canon)) == sorted(json.loads(canon))  # key-sorted
    assert " " not in canon
    # the same values in another key order hash the same; any value's change changes it
    shuffled = dict(reversed(list(DEFAULT_WATCH.model_dump().items())))
    assert WatchConfig(**shuffled).sha256() == FROZEN_SHA256
    for change in ({"level_thr": 0.61}, {"sustain": 4}, {"cm_trigger": True}, {"min_step": 50}):
        assert DEFAULT_WATCH.model_copy(update=change).sha256() != FROZEN_SHA256
        assert WatchConfig(**{**DEFAULT_WATCH.model_dump(), **change}).sha256() != FROZEN_SHA256


def test_frozen():
    with pytest.raises(ValidationError):
        DEFAULT_WATCH.level_thr = 0.7  # type: ignore[misc]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"level_thr": 1.5}, "not a share in [0, 1]"),
        ({"emerged_thr": -0.1}, "not a share in [0, 1]"),
        ({"drop_thr": float("nan")}, "not a share in [0, 1]"),
        ({"smooth_k": 4}, "smooth_k must be odd"),
        ({"sustain": 0}, "greater than or equal to 1"),
        ({"level_window": 0}, "greater than or equal to 1"),
        ({"level_thr": 0.8}, "must be below emerged_thr"),
        ({"surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_values_are_refused_with_a_reason(bad, message):
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        WatchConfig(**bad)


def test_a_bad_file_is_one_line_naming_the_file_and_field(tmp_path):
    path = tmp_path / "watch.json"
    path.write_text(json.dumps({**DEFAULT_WATCH.model_dump(), "level_thr": 2.0}))
    with pytest.raises(UngrokError) as e:
        load_watch_config(path)
    assert str(path) in str(e.value) and "level_thr" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UngrokError, match="not JSON"):
        parse_watch_config("{", "x.json")
    with pytest.raises(UngrokError, match="expected a JSON object"):
        parse_watch_config("[1]", "x.json")
    with pytest.raises(UngrokError, match="cannot read"):
        load_watch_config(tmp_path / "missing.json")
    path.write_text(DEFAULT_WATCH.canonical_json())
    assert load_watch_config(path) == DEFAULT_WATCH
