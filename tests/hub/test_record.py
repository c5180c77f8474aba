"""suite.json: size ranks, what a rerun keeps, refusal of another battery, unreadable files."""

from __future__ import annotations

import json

import pytest

from ungrok.errors import UngrokError
from ungrok.hub.record import SuiteRecord, read_suite


def test_ranks_skips_and_what_a_rerun_keeps(tmp_path):
    rec = SuiteRecord(tmp_path, "b.jsonl", "abc")
    for model, n in (("org/a", 300), ("org/b", 100), ("org/c", 300), ("org/d", 50)):
        rec.set_params(model, n)
        rec.set_revision(model, "step1", 1, "scored", seconds=1.5, peak_rss_mib=10.0)
    rec.set_revision("org/a", "step2", 2, "skipped", "not cached")
    rec.set_revision("org/a", "main", None, "skipped", "no step")
    rec.set_revision("org/b", "step2", 2, "failed", "RuntimeError: x")
    rec.add_notes("org/a", ["n1", "n1", "n2"])
    rec.set_unknown("org/zz", "unknown model id")
    rec.save()
    data = json.loads((tmp_path / "suite.json").read_text())
    # competition ranking: equal sizes share the lower rank
    assert {m: v["size_rank"] for m, v in data["models"].items()} == {
        "org/a": 3,
        "org/b": 2,
        "org/c": 3,
        "org/d": 1,
    }
    assert [r["revision"] for r in data["models"]["org/a"]["revisions"]] == ["step1", "step2", "main"]
    assert data["models"]["org/a"]["notes"] == ["n1", "n2"]
    assert data["skipped"] == [
        {"model": "org/a", "revision": "step2", "why": "not cached"},
        {"model": "org/a", "revision": "main", "why": "no step"},
        {"model": "org/b", "revision": "step2", "why": "RuntimeError: x"},
        {"model": "org/zz", "revision": None, "why": "unknown model id"},
    ]
    first = data["models"]["org/a"]["revisions"][0]
    assert first == {"revision": "step1", "step": 1, "status": "scored", "why": None, "seconds": 1.5,
                     "peak_rss_mib": 10.0, "rss_after_mib": None, "peak_gpu_mib": None}

    again = SuiteRecord(tmp_path, "b.jsonl", "abc").to_json()  # a rerun decides skips afresh
    assert again["skipped"] == [] and set(again["models"]) == {"org/a", "org/b", "org/c", "org/d"}
    assert [r["revision"] for r in again["models"]["org/a"]["revisions"]] == ["step1"]
    assert again["models"]["org/a"]["notes"] == ["n1", "n2"] and again["models"]["org/a"]["size_rank"] == 3
    with pytest.raises(UngrokError, match="another battery"):
        SuiteRecord(tmp_path, "b.jsonl", "def")


def test_unreadable_or_missing_suite_json(tmp_path):
    with pytest.raises(UngrokError, match="not a hub suite folder"):
        read_suite(tmp_path)
    (tmp_path / "suite.json").write_text("{nope")
    with pytest.raises(UngrokError, match="unreadable"):
        read_suite(tmp_path)
    (tmp_path / "suite.json").write_text("[]")
    with pytest.raises(UngrokError, match="not a suite record"):
        read_suite(tmp_path)
