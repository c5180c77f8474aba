"""Depth by scale: the vectorised bootstrap against a slow reference, rank rho against scipy,
and what classify_suite says when it cannot classify or compute."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from ungrok.errors import UngrokError
from ungrok.fate.config import DEFAULT_CONFIG
from ungrok.hub.scale import bootstrap_rho, classify_suite, depth_by_scale, item_matrix, rank_rho
from ungrok.hub.suite import score_suite


def slow_bootstrap(sizes, mats, n_boot, seed):  # noqa: ANN001, ANN201
    """Loops and lists: per model, per replicate, one within-template draw per stratum (strata in
    order of first appearance), accuracy per revision, smoothed (k = 3, truncated), final =
    mean of the last max(3, round(n/10)); then scipy's Spearman against the sizes."""
    rng = np.random.default_rng(seed)
    finals = [[0.0] * len(mats) for _ in range(n_boot)]
    for j, (mat, templates) in enumerate(mats):
        strata: dict[str, list[int]] = {}
        for i, t in enumerate(templates):
            strata.setdefault(t, []).append(i)
        for b in range(n_boot):
            picked = []
            for members in strata.values():
                picked += [members[k] for k in rng.integers(0, len(members), size=len(members))]
            acc = [sum(row[i] for i in picked) / len(picked) for row in mat.tolist()]
            n = len(acc)
            sm = [sum(acc[max(0, i - 1) : i + 2]) / len(acc[max(0, i - 1) : i + 2]) for i in range(n)]
            m = max(3, round(0.1 * n))
            finals[b][j] = sum(sm[-m:]) / m
    out = []
    for f in finals:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.append(spearmanr(sizes, f).statistic)
    return np.array(out)


def test_bootstrap_matches_the_slow_reference():
    rng = np.random.default_rng(7)
    templates = ["a", "a", "a", "b", "b", "b", "b", "c", "c", "c"]
    mats = [((rng.random((7, 10)) < p).astype(float), templates) for p in (0.3, 0.5, 0.6, 0.9)]
    sizes = [1e6, 4e6, 2e7, 9e7]
    fast = bootstrap_rho(sizes, mats, DEFAULT_CONFIG, 300, seed=3)
    ref = slow_bootstrap(sizes, mats, 300, seed=3)
    assert np.array_equal(np.isnan(fast), np.isnan(ref))
    np.testing.assert_allclose(fast[~np.isnan(fast)], ref[~np.isnan(ref)], atol=1e-12)
    assert np.isnan(fast).sum() > 0 or fast.std() > 0  # the statistic really varies


def test_rank_rho_is_spearman_with_average_ranks():
    rng = np.random.default_rng(0)
    x = np.array([3.0, 1.0, 2.0, 2.0, 5.0])
    ys = rng.integers(0, 3, size=(50, 5)).astype(float)  # many ties, some constant rows
    got = rank_rho(x, ys)
    for y, r in zip(ys, got, strict=True):
        if np.ptp(y) == 0:
            assert math.isnan(r)
        else:
            assert r == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_too_few_models_or_all_tied_give_no_rho():
    models = [
        {"model": m, "n_params": n, "size_rank": k}
        for k, (m, n) in enumerate((("a", 1), ("b", 2), ("c", 3)), 1)
    ]
    two = depth_by_scale(models, {"a": 0.5, "b": 0.7}, [], "f")
    assert (
        two["rho"] is None
        and two["ci"] is None
        and "at least 3 models" in two["note"]
        and "has 2" in two["note"]
    )
    tied = depth_by_scale(models, {"a": 0.5, "b": 0.5, "c": 0.5}, [], "f")
    assert tied["rho"] is None and "undefined" in tied["note"]
    no_items = depth_by_scale(models, {"a": 0.5, "b": 0.6, "c": 0.9}, [], "f")
    assert (
        no_items["rho"] == pytest.approx(1.0)
        and no_items["ci"] is None
        and "no per-item rows" in no_items["note"]
    )


def test_item_matrix_keeps_items_present_at_every_kept_step():
    def row(step, item, correct, skipped=False):  # noqa: ANN001, ANN202
        return {"run": "m", "family": "f", "condition": "conflict", "split": "heldout", "step": step,
                "item_id": item, "template_id": item[0], "correct": correct, "skipped": skipped}

    rows = [row(50, "a1", False), row(100, "a1", True), row(200, "a1", False), row(100, "b1", True),
            row(200, "b1", True), row(100, "b2", False, True), row(200, "b2", False)]
    steps, mat, templates = item_matrix(rows, "m", "f", DEFAULT_CONFIG)
    assert steps == [100, 200] and templates == ["a", "b"] and mat.tolist() == [[1.0, 1.0], [0.0, 1.0]]
    assert item_matrix(rows, "other", "f", DEFAULT_CONFIG) is None


def test_classify_suite_names_models_it_cannot_classify(offline, tmp_path):
    _, battery = offline
    out = tmp_path / "o"
    score_suite(["org/neox-s"], "step128,step256", battery, out, device="cpu", progress=False)
    score_suite(["org/neox-l"], "step128,step256,step512", battery, out, device="cpu", progress=False)
    res = classify_suite(out, n_boot=50)
    assert [r["run"] for r in res["records"]] == ["org/neox-l"]
    assert res["unclassified"] == [{"model": "org/neox-s", "why": "run org/neox-s family pronoun_gender_ref: only "
                                    "2 checkpoint(s) at step >= 100; the classifier needs at least 3"}]
    assert res["scale"]["rho"] is None and "has 1" in res["scale"]["note"]
    with pytest.raises(UngrokError, match="family 'nope' was not scored"):
        classify_suite(out, family="nope")
    with pytest.raises(UngrokError, match="not a hub suite folder"):
        classify_suite(tmp_path / "empty")
