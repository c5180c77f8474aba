"""The mechanism store: the COMMON.md schema, whole-unit replacement, resume keys, refusals, atomic writes."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ungrok.errors import UngrokError
from ungrok.mech.store import MECH_FILE, MechStore, read_mech

SHA = "a" * 64
SCHEMA = pa.schema([("run", pa.string()), ("step", pa.int64()), ("rule", pa.string()),
                    ("instrument", pa.string()), ("component", pa.string()), ("metric", pa.string()),
                    ("value", pa.float64()), ("prompts_sha256", pa.string())])


def row(step, component="embed", value=1.0, instrument="decomp", metric="nats", sha=SHA, run="r", rule="x"):
    return dict(run=run, step=step, rule=rule, instrument=instrument, component=component, metric=metric,
                value=value, prompts_sha256=sha)


def test_rows_round_trip_with_exactly_the_common_schema(tmp_path):
    path = tmp_path / MECH_FILE
    assert path == tmp_path / "traj.mech.parquet"
    s = MechStore(path)
    s.put([row(8, "embed", 0.25), row(8, "ctx", -1.5), row(0, "embed", math.nan)])
    table = pq.read_table(path)
    assert table.schema.equals(SCHEMA)
    back = MechStore(path).rows
    assert [(r["step"], r["component"]) for r in back] == [(0, "embed"), (8, "ctx"), (8, "embed")]  # sorted
    assert math.isnan(back[0]["value"]) and back[1]["value"] == -1.5
    assert MechStore(path).units() == {("r", 0, "x", "decomp"): SHA, ("r", 8, "x", "decomp"): SHA}


def test_same_rows_in_any_order_write_identical_bytes(tmp_path):
    rows = [row(s, c, float(s) + i) for s in (0, 4, 8) for i, c in enumerate(("embed", "ctx", "gap"))]
    MechStore(tmp_path / "a.parquet").put(rows)
    MechStore(tmp_path / "b.parquet").put(list(reversed(rows)))
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_resume_key_is_the_unit_and_other_prompts_are_refused(tmp_path):
    s = MechStore(tmp_path / MECH_FILE)
    s.put([row(8)])
    assert s.has("r", 8, "x", "decomp", SHA)
    assert not s.has("r", 8, "x", "heads", SHA)  # another instrument
    assert not s.has("r", 16, "x", "decomp", SHA)  # another step
    assert not s.has("r", 8, "y", "decomp", SHA)  # another rule
    assert not s.has("q", 8, "x", "decomp", SHA)  # another run
    with pytest.raises(UngrokError, match="other prompts.*--force") as e:
        s.has("r", 8, "x", "decomp", "b" * 64)
    assert "\n" not in str(e.value)


def test_a_unit_is_replaced_whole_and_other_units_are_kept(tmp_path):
    s = MechStore(tmp_path / MECH_FILE)
    s.put([row(8, "embed", 1.0), row(8, "ctx", 2.0), row(8, "gap", 3.0), row(16, "embed", 9.0)])
    s.put([row(8, "embed", -1.0), row(8, "error", 0.0)])
    again = MechStore(tmp_path / MECH_FILE)
    got = {(r["step"], r["component"]): r["value"] for r in again.rows}
    assert got == {(8, "embed"): -1.0, (8, "error"): 0.0, (16, "embed"): 9.0}


def test_put_refuses_malformed_rows(tmp_path):
    s = MechStore(tmp_path / MECH_FILE)
    with pytest.raises(UngrokError, match="unknown column"):
        s.put([{**row(0), "extra": 1}])
    bad = row(0)
    del bad["metric"]
    with pytest.raises(UngrokError, match="no column"):
        s.put([bad])
    with pytest.raises(UngrokError, match="two values"):
        s.put([row(0), row(0)])
    with pytest.raises(UngrokError, match="mixes two prompts_sha256"):
        s.put([row(0, "embed"), row(0, "ctx", sha="b" * 64)])
    assert not (tmp_path / MECH_FILE).exists()  # nothing was written by a refused put


def test_drop_removes_whole_units(tmp_path):
    s = MechStore(tmp_path / MECH_FILE)
    s.put([row(0, "L0H0", 0.1, "patch", "recovery_final_to_peak"), row(8, "L0H0", 0.2, "patch", "recovery_peak_to_final"),
           row(8, "embed")])
    assert s.steps("r", "x", "patch") == [0, 8]
    assert s.drop([("r", 0, "x", "patch")]) == 1
    again = MechStore(tmp_path / MECH_FILE)
    assert again.steps("r", "x", "patch") == [8] and again.steps("r", "x", "decomp") == [8]


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path):
    s = MechStore(tmp_path / MECH_FILE)
    for step in range(5):
        s.put([row(step)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [MECH_FILE]


def test_foreign_or_damaged_tables_are_one_line_errors(tmp_path):
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"run": ["r"], "step": [1]}), other)
    with pytest.raises(UngrokError, match="no column 'rule'"):
        MechStore(other)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(UngrokError, match="not a readable parquet"):
        read_mech(junk)
    with pytest.raises(UngrokError, match=r"\.parquet"):
        MechStore(tmp_path / "table.csv")
    assert read_mech(tmp_path / "missing.parquet") is None
