"""The live monitor's states and early warning on hand-made probe sequences (values worked by hand),
and the offline replay reproducing the live watch exactly."""

from __future__ import annotations

import random

import pytest

from ungrok.fate.classify import classify_family, smooth
from ungrok.fate.watch_config import DEFAULT_WATCH, WatchConfig
from ungrok.train.watch import RuleWatch, least_squares_slope, readings, replay, replay_rule


def _feed(w, seq, start=0, every=100):
    return [w.observe(start + i * every, *obs) for i, obs in enumerate(seq)]


def test_sustained_fall_warns_before_the_classifier_says_displaced():
    w = RuleWatch("r")
    warns = _feed(w, [(c, 1.0) for c in (0.0, 1.0, 1.0, 1.0, 0.55, 0.6, 0.55, 0.6)])
    # display values, trailing means of 2: 0, .5, 1, 1, .775, .575, .575, .575
    assert w.smoothed_conflict == pytest.approx([0, 0.5, 1, 1, 0.775, 0.575, 0.575, 0.575])
    # step 0 is below min_step (100): ignored. Emerged at 100 (kept [1] -> best 1 >= 0.8).
    # Raw <= 0.6 at 400, 500, 600 -> the third consecutive probe (600) raises the warning.
    # Classifier on the kept prefix at 600 ([1,1,1,.55,.6,.55]): smoothed 1,1,.85,.717,.567,.575,
    # tail range .15 < .2, final mean .619 > .6 -> PARTIAL, so the state is "displacing";
    # at 700 the final mean is (.567+.583+.575)/3 = .575 <= .6 -> DISPLACED.
    assert warns[:6] == [None] * 6
    assert warns[6] is not None and "displacement warning" in warns[6]
    assert warns[7] is not None and "displaced" in warns[7] and "warning" not in warns[7]
    assert (w.warned_at, w.state) == (600, "displaced")
    assert w.summary()["warning"] is True and w.summary()["warned_at"] == 600


def test_a_brief_dip_does_not_warn():
    w = RuleWatch("r")
    warns = _feed(w, [(c, 1.0) for c in (0.0, 1.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 0.5, 1.0)])
    # the trigger holds at two consecutive probes at most (sustain is 3), then resets
    assert warns == [None] * 10 and w.warned_at is None and w.trigger_run == 0
    assert w.state == "emerged"


def test_emergence_before_min_step_does_not_count():
    # solved only at step 50, below min_step: the classifier calls such a rule NEVER, so its
    # later fall is no displacement (the old rule warned here)
    w = RuleWatch("r")
    warns = _feed(w, [(c, 1.0) for c in (0.0, 0.9, 0.6, 0.7, 0.5, 0.4, 0.3, 0.3)], every=50)
    # kept (>= 100): .6 .7 .5 .4 .3 .3 -> centred smoothing peaks at .65 < 0.8
    assert warns == [None] * 8 and w.state == "not yet" and w.warned_at is None
    assert w.summary()["conflict_best"] == pytest.approx(0.65)


def test_agree_failure_is_not_called_displacement():
    w = RuleWatch("r")
    warns = _feed(w, [(1.0, a) for a in (1.0, 1.0, 1.0, 1.0, 0.2, 0.0)])
    # kept agree at 400: 1, 1, 1, .2 -> smoothed 1, 1, .733, .6; final mean .778 < 0.8 -> gate fails
    assert warns[:4] == [None] * 4
    assert warns[4] is not None and "agree control failing" in warns[4]
    assert w.state == "control-failing" and w.warned_at is None


def test_a_rule_that_never_emerges_stays_quiet():
    w = RuleWatch("r")
    warns = _feed(w, [(0.5, 1.0)] * 6)
    assert warns == [None] * 6 and w.state == "not yet"
    assert w.summary()["conflict_best"] == pytest.approx(0.5)


def test_agree_swings_before_emergence_raise_nothing():
    w = RuleWatch("r")
    # an early always-"he" phase solves agree by accident, then it drops: the rule never emerged
    warns = _feed(w, [(0.0, 1.0), (0.0, 1.0), (0.3, 0.2), (0.2, 0.3), (0.1, 0.2)])
    assert warns == [None] * 5 and w.state == "not yet"


def test_cm_trigger_only_when_the_config_enables_it():
    seq = [(1.0, 1.0, cm) for cm in (0.0, 2.0, 4.0, 4.0, 3.0, 1.5, 1.0)]
    # kept CM (>= 100) at 600: 2 4 4 3 1.5 1 -> centred smoothing 3, 3.33, 3.67, 2.83, 1.83, 1.25;
    # lost 3.67 - 1.25 = 2.42 >= max(0.5, 0.5 * 3.67); slope of (2.83, 1.83, 1.25) < 0 -> trigger.
    # At 500 (smoothed ..., 2.83, 2.25): lost 1.42 < 1.83 -> not yet.
    on = RuleWatch("r", WatchConfig(cm_trigger=True, sustain=1))
    warns = _feed(on, seq)
    assert [x is not None for x in warns] == [False] * 6 + [True]
    assert on.state == "displacing" and on.warned_at == 600 and "CM +1.25 (peak +4.00)" in warns[-1]
    off = RuleWatch("r")  # the shipped rule: CM alone raises nothing
    assert _feed(off, seq) == [None] * 7 and off.warned_at is None


def test_slope_is_least_squares():
    assert least_squares_slope([3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert least_squares_slope([1.0, 1.0, 4.0]) == pytest.approx(1.5)  # x = 0,1,2: cov 3 / var 2


def test_displaced_state_is_the_classifier_verdict_so_far():
    rng = random.Random(7)
    for _ in range(20):
        w = RuleWatch("r")
        steps, conflict, agree = [], [], []
        for i in range(24):
            c = round(rng.choice([1.0, 0.9, 0.75, 0.6, 0.5, 0.3, 0.1]) * 48) / 48
            steps.append(i * 50)
            conflict.append(c)
            agree.append(1.0)
            w.observe(i * 50, c, 1.0)
            kept = sum(1 for s in steps if s >= 100)
            want = kept >= 3 and classify_family(steps, conflict, agree).cls == "DISPLACED"
            assert (w.state == "displaced") == want


def _live_rows(series: dict[str, list[tuple]], cfg: WatchConfig = DEFAULT_WATCH) -> list[dict]:
    """What RuleMonitor writes, built by hand: one line per probe with every rule's summary."""
    watches = {r: RuleWatch(r, cfg) for r in series}
    n = len(next(iter(series.values())))
    rows = []
    for i in range(n):
        step = i * 50
        lines = [m for r, w in watches.items() if (m := w.observe(step, *series[r][i]))]
        rows.append({"step": step, "rules": {r: w.summary() for r, w in watches.items()}, "warnings": lines,
                     "watch_sha256": cfg.sha256()})
    return rows


# conflict, agree[, CM] per probe; values are multiples of 1/16 so the legacy inversion is exact
SERIES = {
    "falls": [(c / 16, 1.0) for c in (0, 8, 16, 16, 15, 14, 12, 9, 8, 10, 7, 6, 5, 4, 4, 3, 2, 2)],
    "noisy": [
        (c / 16, a / 16)
        for c, a in zip(
            (0, 4, 13, 16, 16, 9, 16, 14, 8, 9, 16, 16, 15, 10, 9, 9, 16, 16),
            (16,) * 12 + (10, 8, 6, 16, 16, 16),
            strict=True,
        )
    ],
    "margin": [
        (c / 16, 1.0, m / 4)
        for c, m in zip(
            (0, 16, 16, 16, 16, 16, 16, 16, 8, 8, 8, 8, 6, 6, 4, 4, 4, 4),
            (0, 4, 8, 12, 12, 10, 6, 4, 2, 1, 0, -1, -2, -2, -3, -3, -3, -3),
            strict=True,
        )
    ],
}


@pytest.mark.parametrize("cfg", [DEFAULT_WATCH, WatchConfig(cm_trigger=True, sustain=2, level_window=2)])
def test_replay_reproduces_the_live_watch_exactly(cfg):
    rows = _live_rows(SERIES, cfg)
    assert any(r["warnings"] for r in rows)  # the series do raise warnings
    got = replay(rows, cfg)
    assert set(got) == set(SERIES)
    for rule, probes in got.items():
        assert [p["step"] for p in probes] == [r["step"] for r in rows]
        for p, row in zip(probes, rows, strict=True):
            recorded = row["rules"][rule]
            assert {k: v for k, v in p.items() if k not in ("step", "line")} == recorded
            assert (
                (p["line"] in row["warnings"])
                if p["line"]
                else not any(rule + ":" in x for x in row["warnings"])
            )


def test_replay_of_a_log_without_raw_readings_inverts_the_display_values():
    rows = _live_rows(SERIES)
    legacy = [{**r, "rules": {k: {f: v for f, v in e.items() if f not in ("raw", "warning", "warned_at")}
                              for k, e in r["rules"].items()}} for r in rows]
    for rule, seq in SERIES.items():
        back = readings(legacy, rule)
        assert [s for s, *_ in back] == [r["step"] for r in rows]
        assert [x[1:3] for x in back] == [x[:2] for x in seq]  # sixteenths: every mean is exact in binary
        assert [x[3] for x in back] == [x[2] if len(x) > 2 else None for x in seq]
    live, again = replay(rows), replay(legacy)
    for rule in SERIES:
        assert [(p["state"], p["warned_at"], p["line"]) for p in again[rule]] == [
            (p["state"], p["warned_at"], p["line"]) for p in live[rule]
        ]


def test_replay_under_another_config_changes_the_warning():
    rows = _live_rows(SERIES)
    quick = replay_rule("falls", readings(rows, "falls"), WatchConfig(sustain=1))
    slow = replay(rows)["falls"]
    first = [next(p["step"] for p in x if p["warning"]) for x in (quick, slow)]
    # raw <= 0.6 (9.6/16) at 350 (9/16) and 400 (8/16), not at 450 (10/16), then from 500 on:
    # sustain 1 warns at 350; sustain 3 needs 500, 550, 600
    assert first == [350, 600]


@pytest.mark.parametrize("cfg", [DEFAULT_WATCH, WatchConfig(cm_trigger=True, sustain=2, level_window=2)])
def test_replay_without_verdicts_keeps_every_warning_and_drops_only_the_classifier_states(cfg):
    rows = _live_rows(SERIES, cfg)
    full, quick = replay(rows, cfg), replay(rows, cfg, verdicts=False)
    states = set()
    for rule in SERIES:
        assert [(p["warning"], p["warned_at"]) for p in quick[rule]] == [
            (p["warning"], p["warned_at"]) for p in full[rule]
        ]
        states |= {p["state"] for p in full[rule]}
        assert not {p["state"] for p in quick[rule]} & {"displaced", "control-failing"}
    assert "displaced" in states  # the series do reach the classifier's verdict with verdicts on


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_best_is_the_max_of_the_whole_smoothed_series_at_every_probe(k):
    """The incremental best (settled windows kept) equals re-smoothing everything, bit for bit."""
    rng = random.Random(k)
    cfg = WatchConfig(**{**DEFAULT_WATCH.model_dump(), "smooth_k": k, "min_step": 30})
    w = RuleWatch("r", cfg, verdicts=False)
    for step in range(0, 400, 10):
        w.observe(step, rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) * rng.random(), 1.0)
        kept = [c for s, c in zip(w.steps, w.conflict, strict=True) if s >= 30]
        assert w.best == (max(smooth(kept, k)) if kept else None)

