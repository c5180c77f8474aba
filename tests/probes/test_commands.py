"""`ungrok probes build|show` and `ungrok score`: outputs, resuming, and one-line errors (exit 2)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from cli_helpers import one_line_error, run
from ungrok.model import save_checkpoint
from ungrok.probes.battery import build_battery, save_battery
from ungrok.probes.margins import margin_prompt_set
from ungrok.probes.trajectories import margins_path_for
from ungrok.rules import get_rule

from .conftest import HUB_REVISIONS, battery_texts, tiny_gpt, word_tokenizer


def test_build_then_show(tmp_path, capsys):
    out = tmp_path / "b.jsonl"
    code, text, _ = run(
        ["probes", "build", "--rules", "pronoun_gender_ref,det_an_choice", "--out", out], capsys
    )
    sha = build_battery(["pronoun_gender_ref", "det_an_choice"]).sha256
    assert code == 0 and sha in text and "432 items" in text  # 48 + 384
    code, text, _ = run(["probes", "show", out], capsys)
    assert code == 0 and sha in text and "det_an_choice" in text and "file sha256" not in text
    code, _, err = run(["probes", "build", "--rules", "det_an_choice", "--out", out], capsys)
    assert "already exists" in one_line_error(code, err)
    code, _, _ = run(["probes", "build", "--rules", "det_an_choice", "--out", out, "--force"], capsys)
    assert code == 0


def test_show_reports_a_non_canonical_file_hash(reference, capsys):
    code, text, _ = run(["probes", "show", reference / "batteries/v1/battery.jsonl"], capsys)
    assert code == 0 and "file sha256 0b13cefb" in text and "legacy" in text


def test_show_bad_line_is_one_line_naming_file_line_and_field(tmp_path, capsys):
    b = build_battery(["pronoun_gender_ref"])
    lines = [json.dumps(it) for it in b.items]
    lines[4] = json.dumps({k: v for k, v in b.items[4].items() if k != "distractor"})
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run(["probes", "show", path], capsys)
    assert f"{path}:5: missing field 'distractor'" in one_line_error(code, err)


@pytest.fixture
def own_run(tmp_path):  # noqa: ANN201
    """A run folder with three checkpoints, its tokenizer, and a focal-rule battery with one empty prefix."""
    battery = build_battery(["pronoun_gender_ref"])
    focal = margin_prompt_set(get_rule("pronoun_gender_ref"))
    tok = word_tokenizer(battery_texts(battery) + list(focal.neutral_prompts), tmp_path / "tok.json")
    items = list(battery.items)
    items[0] = {**items[0], "prefix": ""}
    from ungrok.probes.battery import Battery

    save_battery(Battery(tuple(items)), tmp_path / "b.jsonl")
    for step in (0, 100, 200):
        save_checkpoint(
            tiny_gpt(tok.vocab_size, seed=step, random_head=step > 0), tmp_path / "run/checkpoints", step
        )
    return tmp_path


def test_score_a_run_then_resume(own_run, capsys):
    t = own_run
    args = ["score", "--battery", t / "b.jsonl", "--run", t / "run", "--tokenizer", t / "tok.json",
            "--out", t / "traj.parquet"]
    code, text, err = run(args, capsys)
    assert code == 0, err
    assert "scored 3 checkpoint(s), 0 already" in text and "margins: pronoun_gender_ref" in text
    assert "1 item(s) skipped" in text
    rows = pq.read_table(t / "traj.parquet").to_pylist()
    assert {r["step"] for r in rows} == {0, 100, 200} and {r["run"] for r in rows} == {"run"}
    skipped = [r for r in rows if r["n_skipped"]]
    assert len(skipped) == 3 and all(r["n_skipped"] == 1 and r["n_items"] == 11 for r in skipped)
    assert all(r["accuracy"] == 0.0 for r in rows if r["step"] == 0)  # all-zero logits: ties are wrong
    margins = pq.read_table(margins_path_for(t / "traj.parquet")).to_pylist()
    assert [(m["step"], m["rule"], m["n_cm"], m["n_pm"]) for m in margins] == [
        (s, "pronoun_gender_ref", 12, 32) for s in (0, 100, 200)
    ]
    code, text, _ = run(args, capsys)
    assert code == 0 and "scored 0 checkpoint(s), 3 already" in text
    code, text, _ = run(args + ["--items"], capsys)  # item rows were not kept: rescored for them only
    assert code == 0 and "scored 3 checkpoint(s)" in text
    assert len(pq.read_table(t / "traj.items.parquet")) == 3 * 48
    assert len(pq.read_table(t / "traj.parquet")) == len(rows)


def test_score_errors_are_one_line(own_run, tmp_path, capsys):
    t = own_run
    base = ["score", "--battery", t / "b.jsonl", "--out", t / "o.parquet"]
    (t / "empty").mkdir()
    words = battery_texts(build_battery(["pronoun_gender_ref"]))
    words += list(margin_prompt_set(get_rule("pronoun_gender_ref")).neutral_prompts)
    big = word_tokenizer(words + [f"w{i}" for i in range(600)], t / "big.json")
    cases = [
        (base + ["--run", t / "empty", "--tokenizer", t / "tok.json"], "no checkpoints"),
        (base + ["--run", t / "run"], "pass --tokenizer FILE"),
        (base + ["--run", t / "run", "--tokenizer", big.path], "embeds only"),
        (base + ["--run", t / "run", "--hf", "org/x"], "exactly one of --run"),
        (base + ["--hf", "org/x"], "--hf needs --revisions"),
        (base + ["--run", t / "run", "--tokenizer", t / "tok.json", "--margins", "det_an_choice"],
         "declares no margin"),
        (["score", "--battery", t / "none.jsonl", "--run", t / "run", "--out", t / "o.parquet"], "not found"),
    ]
    for args, needle in cases:
        code, _, err = run(args, capsys)
        assert needle in one_line_error(code, err), (args, err)
    assert not (t / "o.parquet").exists()


def test_score_hub_revisions(offline_hub, tmp_path, capsys):
    from ungrok.probes.battery import Battery

    from .conftest import small_battery

    save_battery(Battery(small_battery().items), tmp_path / "b.jsonl")
    out = tmp_path / "hub.parquet"
    args = [
        "score",
        "--battery",
        tmp_path / "b.jsonl",
        "--hf",
        "org/tiny-gpt2",
        "--device",
        "cpu",
        "--out",
        out,
    ]
    code, text, err = run(args + ["--revisions", ",".join(HUB_REVISIONS)], capsys)
    assert code == 0, err
    rows = pq.read_table(out).to_pylist()
    assert {(r["step"], r["revision"]) for r in rows} == {(1000, "step1000"), (2000, "step2000")}
    assert {r["run"] for r in rows} == {"org/tiny-gpt2"} and not margins_path_for(out).exists()
    code, _, err = run(args + ["--revisions", "step1000,step5"], capsys)
    assert "revision 'step5'" in one_line_error(code, err)
    assert {r["step"] for r in pq.read_table(out).to_pylist()} == {1000, 2000}


def test_score_a_run_in_bf16(own_run, capsys):
    t = own_run
    base = [
        "score",
        "--battery",
        t / "b.jsonl",
        "--run",
        t / "run",
        "--tokenizer",
        t / "tok.json",
        "--device",
        "cpu",
    ]
    code, text, err = run(base + ["--out", t / "bf16.parquet", "--precision", "bf16"], capsys)
    assert code == 0, err
    assert "scored 3 checkpoint(s)" in text and "bf16 matmuls" in text
    code, _, err = run(base + ["--out", t / "fp32.parquet"], capsys)
    assert code == 0, err
    key = lambda r: (r["step"], r["family"], r["condition"], r["split"])  # noqa: E731
    fp32 = {key(r): r for r in pq.read_table(t / "fp32.parquet").to_pylist()}
    bf16 = {key(r): r for r in pq.read_table(t / "bf16.parquet").to_pylist()}
    assert fp32.keys() == bf16.keys()
    for k, r in fp32.items():
        assert bf16[k]["n_items"] == r["n_items"] and abs(bf16[k]["mean_margin"] - r["mean_margin"]) < 0.1, k
    code, _, err = run(base + ["--out", t / "x.parquet", "--precision", "fp16"], capsys)
    assert "--precision must be one of fp32, bf16" in one_line_error(code, err)
    assert not (t / "x.parquet").exists()


def test_score_compile_reaches_the_model_and_fails_in_one_line_without_a_compiler(own_run, capsys, monkeypatch):
    """`--compile` builds each checkpoint's forward with torch.compile (probes/test_precision.py
    checks what it computes); without a C++ compiler that is one line before anything is written."""
    t = own_run
    monkeypatch.setattr("shutil.which", lambda name: None)
    args = ["score", "--battery", t / "b.jsonl", "--run", t / "run", "--tokenizer", t / "tok.json",
            "--device", "cpu", "--out", t / "c.parquet", "--compile"]
    assert "--compile needs a C++ compiler" in one_line_error(*run(args, capsys)[::2])
    assert not (t / "c.parquet").exists()
