"""The trajectory store: rows per checkpoint, resumable without rescoring, refuses mixed batteries."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from ungrok.errors import UngrokError
from ungrok.fate import classify_table
from ungrok.probes.battery import Battery
from ungrok.probes.margins import MarginPrompts
from ungrok.probes.models import GPTLogits
from ungrok.probes.score import score_battery
from ungrok.probes.trajectories import (
    CheckpointSource,
    TrajectoryStore,
    items_path_for,
    margins_path_for,
    score_checkpoints,
)

from .conftest import battery_texts, item, tiny_gpt, word_tokenizer

STEPS = [0, 100, 200, 300]
FOCAL = MarginPrompts(
    "pron", " she", " he", ("Lily laughed when", "Mia laughed when"), ("Tom smiled because",)
)


class Loads:
    """Checkpoint loaders that count how often each step is loaded (and can fail on one)."""

    def __init__(self, tok, fail_at: int | None = None):  # noqa: ANN001
        self.tok, self.fail_at, self.count = tok, fail_at, {}

    def sources(self, run: str = "r1") -> list[CheckpointSource]:
        return [CheckpointSource(run, s, None, self._loader(s)) for s in STEPS]

    def _loader(self, step: int):  # noqa: ANN202
        def load():  # noqa: ANN202
            if step == self.fail_at:
                raise KeyboardInterrupt
            self.count[step] = self.count.get(step, 0) + 1
            return GPTLogits(tiny_gpt(self.tok.vocab_size, seed=step, random_head=step > 0)), self.tok

        return load


@pytest.fixture
def tok(battery):  # noqa: ANN001, ANN201
    return word_tokenizer(battery_texts(battery))


def test_rows_hold_each_checkpoints_group_scores_and_margins(tmp_path, battery, tok):
    out = tmp_path / "traj.parquet"
    summary = score_checkpoints(TrajectoryStore(out), Loads(tok).sources(), battery, [FOCAL])
    assert summary.scored == 4 and summary.already == 0
    rows = pq.read_table(out).to_pylist()
    groups = battery.counts()
    assert len(rows) == len(STEPS) * len(groups)
    direct = score_battery(GPTLogits(tiny_gpt(tok.vocab_size, seed=200)), tok, battery).groups()
    at200 = {(r["family"], r["condition"], r["split"]): r for r in rows if r["step"] == 200}
    for g in direct:
        r = at200[(g.family, g.condition, g.split)]
        assert (r["accuracy"], r["n_items"], r["n_skipped"]) == (g.accuracy, g.n_items, 0)
        assert r["mean_margin"] == pytest.approx(g.mean_margin) and r["battery_sha256"] == battery.sha256
    margins = pq.read_table(margins_path_for(out)).to_pylist()
    assert [(m["step"], m["rule"], m["n_cm"], m["n_pm"]) for m in margins] == [
        (s, "pron", 2, 1) for s in STEPS
    ]
    assert margins[0]["cm"] == 0.0 and margins[0]["pm"] == 0.0  # step 0 is the untrained model
    # the table is what the fate classifier reads
    assert ("r1", "pron") in classify_table(pq.read_table(out))


def test_rerun_loads_nothing_and_new_checkpoints_only_are_scored(tmp_path, battery, tok):
    out = tmp_path / "traj.parquet"
    loads = Loads(tok)
    score_checkpoints(TrajectoryStore(out), loads.sources()[:2], battery, [FOCAL])
    before = out.read_bytes()
    summary = score_checkpoints(TrajectoryStore(out), loads.sources()[:2], battery, [FOCAL])
    assert summary.scored == 0 and summary.already == 2 and out.read_bytes() == before
    score_checkpoints(TrajectoryStore(out), loads.sources(), battery, [FOCAL])
    assert loads.count == {0: 1, 100: 1, 200: 1, 300: 1}
    assert sorted({r["step"] for r in pq.read_table(out).to_pylist()}) == STEPS


def test_an_interrupted_run_keeps_finished_checkpoints_and_resumes(tmp_path, battery, tok):
    out = tmp_path / "traj.parquet"
    with pytest.raises(KeyboardInterrupt):
        score_checkpoints(TrajectoryStore(out), Loads(tok, fail_at=200).sources(), battery, [FOCAL])
    assert sorted({r["step"] for r in pq.read_table(out).to_pylist()}) == [0, 100]
    loads = Loads(tok)
    score_checkpoints(TrajectoryStore(out), loads.sources(), battery, [FOCAL])
    assert loads.count == {200: 1, 300: 1}


def test_margins_asked_for_later_load_only_for_the_margins(tmp_path, battery, tok):
    out = tmp_path / "traj.parquet"
    score_checkpoints(TrajectoryStore(out), Loads(tok).sources(), battery, [])
    assert not margins_path_for(out).exists()
    loads = Loads(tok)
    score_checkpoints(TrajectoryStore(out), loads.sources(), battery, [FOCAL])
    assert len(loads.count) == 4 and len(pq.read_table(margins_path_for(out))) == 4
    assert len(pq.read_table(out)) == 4 * len(battery.counts())  # battery rows not duplicated


def test_another_battery_for_the_same_groups_is_refused(tmp_path, battery, tok):
    out = tmp_path / "traj.parquet"
    score_checkpoints(TrajectoryStore(out), Loads(tok).sources()[:1], battery, [])
    other = Battery(battery.items[:-1])
    with pytest.raises(UngrokError, match="from another battery"):
        score_checkpoints(TrajectoryStore(out), Loads(tok).sources()[:1], other, [])
    # a different run, or a battery of other families, may share the file
    score_checkpoints(TrajectoryStore(out), Loads(tok).sources("r2")[:1], other, [])
    fresh = Battery((item("other", "agree", "heldout", "Tom saw", " a dog", " an dog", 0),))
    score_checkpoints(TrajectoryStore(out), Loads(tok).sources()[:1], fresh, [])
    changed = MarginPrompts("pron", " she", " he", ("Lily laughed when",), ())
    score_checkpoints(TrajectoryStore(out), Loads(tok).sources()[:1], battery, [FOCAL])
    with pytest.raises(UngrokError, match="margins from other prompts"):
        score_checkpoints(TrajectoryStore(out), Loads(tok).sources()[:1], battery, [changed])


def test_unreadable_or_foreign_tables_are_errors(tmp_path):
    bad = tmp_path / "t.parquet"
    bad.write_text("not parquet")
    with pytest.raises(UngrokError, match="not a readable parquet"):
        TrajectoryStore(bad)
    import pyarrow as pa

    pq.write_table(pa.table({"x": [1]}), tmp_path / "f.parquet")
    with pytest.raises(UngrokError, match="no column 'run'"):
        TrajectoryStore(tmp_path / "f.parquet")
    with pytest.raises(UngrokError, match="must be a .parquet file"):
        TrajectoryStore(tmp_path / "t.csv")


def test_item_table_agrees_with_group_rows_and_resumes(tmp_path, battery, tok):
    out = tmp_path / "traj.parquet"
    score_checkpoints(TrajectoryStore(out), Loads(tok).sources()[:2], battery, [])
    loads = Loads(tok)
    score_checkpoints(TrajectoryStore(out, items=True), loads.sources()[:3], battery, [])
    assert loads.count == {0: 1, 100: 1, 200: 1}  # the first two again, for their item rows only
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 3 * len(battery.counts())
    items = pq.read_table(items_path_for(out)).to_pylist()
    assert len(items) == 3 * len(battery) and len({(r["step"], r["item_id"]) for r in items}) == len(items)
    for r in rows:
        mine = [i for i in items if (i["step"], i["family"], i["condition"], i["split"])
                == (r["step"], r["family"], r["condition"], r["split"])]
        assert len(mine) == r["n_items"] and sum(i["correct"] for i in mine) / len(mine) == r["accuracy"]
        margins = [i["logp_correct"] - i["logp_distractor"] for i in mine]
        assert sum(margins) / len(margins) == pytest.approx(r["mean_margin"])
    again = Loads(tok)
    score_checkpoints(TrajectoryStore(out, items=True), again.sources()[:3], battery, [])
    assert again.count == {}
