"""`ungrok hub score|classify`: the designed suite end to end through the CLI, and one-line errors."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from cli_helpers import one_line_error, run

from . import builders as B


def test_score_then_classify(cache_env, tmp_path, capsys):
    _, battery = cache_env
    out = tmp_path / "suite"
    models = ",".join([*B.SIZES, "org/missing"])
    code, text, err = run(["hub", "score", "--models", models, "--revisions", ",".join(B.REVISIONS),
                           "--battery", battery, "--out", out, "--offline", "--device", "cpu"], capsys)
    assert code == 0, err
    assert "scored 15 revision(s), 0 already" in text and "1 not scored" in text
    assert "skipped org/missing: org/missing: not in the local hub cache (offline mode)" in text
    assert f"next: ungrok hub classify {out}" in text
    code, text, err = run(["hub", "classify", out, "--n-boot", "200"], capsys)
    assert code == 0, err
    for model, fate in B.VERDICTS.items():
        assert model in text and fate in text
    assert (
        "Spearman rho(size, final conflict) = 1.000 [0.500, 1.000] (95% CI, 200 item resamples, seed 0)"
        in text
    )
    assert "org/neox-s 0.556, org/neox-m 0.704, org/neox-l 1.000" in text
    assert json.loads((out / "hub_fates.json").read_text())["scale"]["n_boot"] == 200


def test_bad_input_is_one_line(cache_env, tmp_path, capsys):
    _, battery = cache_env
    out = tmp_path / "o"
    base = ["hub", "score", "--battery", battery, "--out", out, "--device", "cpu", "--offline"]
    cases = [
        (base + ["--models", "org/neox-s"], "no known revision grid for org/neox-s"),
        (base + ["--models", "org/neox-s", "--revisions", "step1", "--address", "auto"],
         "--address is for --executor ray"),
        (base + ["--models", "org/neox-s", "--revisions", "step1", "--ray-address", "auto"],
         "--address is for --executor ray"),  # the deprecated name is the same flag
        (base + ["--models", "org/neox-s", "--revisions", "step1", "--dtype", "int8"], "--dtype must be one of"),
        (base + ["--models", "org/neox-s", "--revisions", "step1", "--precision", "fp16"],
         "--precision must be one of fp32, bf16"),
        (base + ["--models", "org/neox-s", "--revisions", "step1", "--workers", "0"], "need at least 1"),
        (["hub", "score", "--battery", tmp_path / "none.jsonl", "--out", out, "--models", "org/neox-s",
          "--revisions", "step1"], "battery file not found"),
        (["hub", "classify", tmp_path], "not a hub suite folder"),
    ]
    for args, needle in cases:
        code, _, err = run(args, capsys)
        assert needle in one_line_error(code, err), (args, err)
    assert not out.exists()


def test_failed_tasks_make_score_exit_1_after_writing_and_listing_everything(cache_env, tmp_path, capsys,
                                                                              monkeypatch):
    from ungrok.errors import UngrokError
    from ungrok.hub import task as task_mod

    _, battery = cache_env
    real_load, real_plan = task_mod.load_hf, task_mod.BatteryPlan

    def load(name, revision, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        if revision == "step256":  # the loader's own one-line error: the revision is there, its load fails
            raise UngrokError(f"cannot load {name} at revision {revision!r}: weights truncated")
        return real_load(name, revision, *a, **k)

    class Plan(real_plan):  # a score that raises
        def score(self, model):  # noqa: ANN001, ANN201
            if model.model.config.hidden_size == 16:
                raise RuntimeError("scoring broke")
            return super().score(model)

    monkeypatch.setattr(task_mod, "load_hf", load)
    monkeypatch.setattr(task_mod, "BatteryPlan", Plan)
    out = tmp_path / "suite"
    code, text, err = run(["hub", "score", "--models", "org/neox-s,org/neox-m,org/missing", "--revisions",
                           "step128,step256", "--battery", battery, "--out", out, "--offline", "--device", "cpu"],
                          capsys)
    assert code == 1, err
    assert "scored 1 revision(s), 0 already" in text and "4 not scored (3 failed)" in text
    assert "skipped org/missing: org/missing: not in the local hub cache (offline mode)" in text
    assert "failed org/neox-s@step256: cannot load org/neox-s at revision 'step256': weights truncated" in text
    assert "failed org/neox-m@step128: RuntimeError: scoring broke" in text
    assert "failed org/neox-m@step256: cannot load" in text
    assert f"next: ungrok hub classify {out}" in text  # everything was still reported
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "3 task(s) failed" in lines[0] and "Traceback" not in err
    suite = json.loads((out / "suite.json").read_text())
    status = {(m, r["revision"]): r["status"] for m, v in suite["models"].items() for r in v["revisions"]}
    assert status == {("org/neox-s", "step128"): "scored", ("org/neox-s", "step256"): "failed",
                      ("org/neox-m", "step128"): "failed", ("org/neox-m", "step256"): "failed"}
    assert (out / "traj.parquet").is_file()  # the scored revision was written

    # fixed: the rerun scores only the failed ones and exits 0 (the skip stays a skip)
    monkeypatch.setattr(task_mod, "load_hf", real_load)
    monkeypatch.setattr(task_mod, "BatteryPlan", real_plan)
    code, text, err = run(["hub", "score", "--models", "org/neox-s,org/neox-m,org/missing", "--revisions",
                           "step128,step256", "--battery", battery, "--out", out, "--offline", "--device", "cpu"],
                          capsys)
    assert code == 0, err
    assert "scored 3 revision(s), 1 already" in text and "; 1 not scored\n" in text
    assert not any(ln.startswith("failed") for ln in text.splitlines()) and not err.strip()


def test_precision_and_compile_reach_every_task(cache_env, tmp_path, capsys, monkeypatch):
    """bf16 scores land in the same tables as fp32 ones (close, not equal); `--compile` without a C++
    compiler fails each task with that line, and the exit status says the suite is incomplete."""
    _, battery = cache_env
    base = ["hub", "score", "--models", "org/neox-s", "--revisions", "step128", "--battery", battery,
            "--offline", "--device", "cpu"]
    for name, extra in (("fp32", []), ("bf16", ["--precision", "bf16"])):
        code, _, err = run(base + ["--out", tmp_path / name] + extra, capsys)
        assert code == 0, err
    fp32, bf16 = (pq.read_table(tmp_path / n / "traj.parquet").to_pylist() for n in ("fp32", "bf16"))
    assert [r["n_items"] for r in fp32] == [r["n_items"] for r in bf16]
    diffs = [abs(a["mean_margin"] - b["mean_margin"]) for a, b in zip(fp32, bf16, strict=True)]
    assert 0 < max(diffs) < 0.1
    monkeypatch.setattr("shutil.which", lambda name: None)
    code, text, err = run(base + ["--out", tmp_path / "c", "--compile"], capsys)
    assert code == 1 and "failed org/neox-s@step128: --compile needs a C++ compiler" in text, (text, err)
