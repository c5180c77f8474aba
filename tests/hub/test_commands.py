"""`ungrok hub score|classify`: the designed suite end to end through the CLI, and one-line errors."""

from __future__ import annotations

import json

from cli_helpers import one_line_error, run

from . import builders as B


def test_score_then_classify(cache_env, tmp_path, capsys):
    _, battery = cache_env
    out = tmp_path / "suite"
    models = ",".join([*B.SIZES, "org/missing"])
    code, text, err = run(["hub", "score", "--models", models, "--revisions", ",".join(B.REVISIONS),
                           "--battery", battery, "--out", out, "--offline", "--device", "cpu"], capsys)  # fmt: skip
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
        (base + ["--models", "org/neox-s", "--revisions", "step1", "--ray-address", "auto"],
         "--ray-address is for --executor ray"),
        (base + ["--models", "org/neox-s", "--revisions", "step1", "--dtype", "int8"], "--dtype must be one of"),
        (base + ["--models", "org/neox-s", "--revisions", "step1", "--workers", "0"], "need at least 1"),
        (["hub", "score", "--battery", tmp_path / "none.jsonl", "--out", out, "--models", "org/neox-s",
          "--revisions", "step1"], "battery file not found"),
        (["hub", "classify", tmp_path], "not a hub suite folder"),
    ]  # fmt: skip
    for args, needle in cases:
        code, _, err = run(args, capsys)
        assert needle in one_line_error(code, err), (args, err)
    assert not out.exists()
