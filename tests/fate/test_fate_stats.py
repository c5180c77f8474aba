"""Spearman with permutation p, template-stratified bootstrap CIs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ungrok.errors import UngrokError
from ungrok.fate import bootstrap_ci, paired_drop_ci, peak_checkpoint, spearman

# ---------------------------------------------------------------- Spearman


def test_spearman_reversed_is_minus_one_with_exact_p():
    # rho_kill = -1.00 over 4 doses: only the fully reversed ordering of 4! reaches -1
    r = spearman([0.0, 0.437, 0.645, 1.0], [0.9, 0.8, 0.3, 0.1], alternative="less")
    assert r.rho == pytest.approx(-1.0)
    assert r.p == pytest.approx(1 / 24)
    assert r.exact and r.n == 4
    # default direction = the observed sign
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]).p == pytest.approx(1 / 24)
    # the other tail: every ordering has rho >= -1
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1], alternative="greater").p == 1.0


def test_spearman_one_swap():
    # rho = 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*2/120 = 0.9. Orderings with rho >= 0.9 have
    # sum(d^2) <= 2: the identity and the 4 adjacent swaps -> p = 5/120.
    r = spearman([1, 2, 3, 4, 5], [1, 2, 3, 5, 4], alternative="greater")
    assert r.rho == pytest.approx(0.9)
    assert r.p == pytest.approx(5 / 120)


def test_spearman_constant_input_is_undefined():
    r = spearman([1, 2, 3], [0.5, 0.5, 0.5])
    assert math.isnan(r.rho) and r.p is None


def test_spearman_monte_carlo_above_exact_limit():
    x = list(range(12))
    r = spearman(x, x[::-1], alternative="less", n_perm=2000, seed=1)
    assert r.rho == pytest.approx(-1.0)
    assert not r.exact
    assert 1 / 2001 <= r.p <= 3 / 2001  # (hits + 1)/(n_perm + 1) with hits ~ 0


def test_spearman_errors():
    with pytest.raises(UngrokError):
        spearman([1, 2], [1, 2])
    with pytest.raises(UngrokError):
        spearman([1, 2, 3], [1, 2])


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_all_correct_is_degenerate():
    items = [f"i{k}" for k in range(12)]
    tids = ["laughed"] * 6 + ["cried"] * 6
    assert tuple(bootstrap_ci(items, tids, [1] * 12, n=200)) == (1.0, 1.0, 1.0)


def test_bootstrap_contains_point_estimate():
    items = list(range(24))
    tids = ["washed", "surprised", "taught", "saw"] * 6
    flags = [1, 0, 1, 1, 0, 1] * 4
    ci = bootstrap_ci(items, tids, flags, n=500, seed=0)
    assert ci.point == pytest.approx(16 / 24)
    assert ci.lo <= ci.point <= ci.hi
    assert ci.lo < ci.hi
    assert bootstrap_ci(items, tids, flags, n=500, seed=0) == ci  # seeded: reproducible
    assert bootstrap_ci(items, tids, flags, n=500, seed=np.random.default_rng(0)) == ci


def test_bootstrap_is_stratified_by_template():
    # Template A all correct, B all wrong. Resampling within strata keeps 6 A-items and
    # 6 B-items in every resample, so every resample scores exactly .5; an unstratified
    # bootstrap would spread around .5.
    items = list(range(12))
    tids = ["A"] * 6 + ["B"] * 6
    flags = [1] * 6 + [0] * 6
    assert tuple(bootstrap_ci(items, tids, flags, n=300)) == (0.5, 0.5, 0.5)


def test_bootstrap_errors():
    with pytest.raises(UngrokError, match="unique"):
        bootstrap_ci(["a", "a"], ["t", "t"], [1, 0])
    with pytest.raises(UngrokError, match="aligned"):
        bootstrap_ci(["a", "b"], ["t"], [1, 0])
    with pytest.raises(UngrokError, match="0/1"):
        bootstrap_ci(["a", "b"], ["t", "t"], [1, 2])
    with pytest.raises(UngrokError, match="level"):
        bootstrap_ci(["a", "b"], ["t", "t"], [1, 0], level=1.5)


def test_paired_drop_full_collapse():
    # Table 12 web base s42: peak all correct, final all wrong -> +1.00 [1.00, 1.00]
    tids = ["laughed"] * 6 + ["cried"] * 6
    assert tuple(paired_drop_ci([1] * 12, [0] * 12, tids, n=500)) == (1.0, 1.0, 1.0)


def test_paired_drop_respects_pairing():
    # Identical flags at both checkpoints: every paired resample drops exactly 0,
    # although each checkpoint's own accuracy varies across resamples.
    tids = ["A", "B"] * 6
    flags = [1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1, 0]
    assert tuple(paired_drop_ci(flags, flags, tids, n=500)) == (0.0, 0.0, 0.0)
    # Final loses exactly template B (all of it): every resample drops 6/12 = .5
    tids = ["A"] * 6 + ["B"] * 6
    assert tuple(paired_drop_ci([1] * 12, [1] * 6 + [0] * 6, tids, n=500)) == (0.5, 0.5, 0.5)


def test_paired_drop_interval_contains_point():
    tids = ["A"] * 6 + ["B"] * 6
    peak = [1] * 12
    final = [1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    ci = paired_drop_ci(peak, final, tids, n=2000, seed=0)
    assert ci.point == pytest.approx(9 / 12)
    assert 0.0 <= ci.lo <= ci.point <= ci.hi <= 1.0


def test_peak_checkpoint_earliest_argmax_snapped_earlier_on_ties():
    # earliest argmax of [.5, 1, 1, .5] at steps 5..20 is step 10; nearest of {0, 25, 50} is 0
    assert peak_checkpoint([5, 10, 15, 20], [0.5, 1, 1, 0.5], [0, 25, 50]) == 0
    # peak at 25, checkpoints 0 and 50 equidistant -> the earlier one
    assert peak_checkpoint([25, 30], [1.0, 0.5], [0, 50]) == 0
