"""`probes export --format lm-eval` and `score --from-lm-eval`: lm-eval's own scores of a tiny GPT-NeoX
match `ungrok score --hf` item for item, ties included, and bad logs are one-line errors (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from cli_helpers import one_line_error, run
from hub import builders
from ungrok.errors import UngrokError
from ungrok.probes.battery import build_battery, save_battery
from ungrok.probes.lmeval import ImportedRun, _battery_scores, group_name, store_imported
from ungrok.probes.margins import MarginScore
from ungrok.probes.trajectories import TrajectoryStore, items_path_for, margins_path_for

MODEL = "org/neox-s"
# step100 keeps the rule (6/6 held-out conflict), step200 half of it (3/6), step300 has a zero
# unembedding: every choice ties, which both ungrok and lm-eval (distractor listed first) count wrong.
REVS = {"step100": (0.04, 4.0), "step200": (0.5, 5.0), "step300": (0.5, 0.0)}
SPLIT = "org/neox-split"  # a random model whose tokenizer makes " she" two tokens


@pytest.fixture(scope="module")
def lm_eval_runs(tmp_path_factory):  # noqa: ANN201
    """(root, battery file) after exporting and running lm-eval on MODEL x REVS (root/results)
    and on SPLIT at step10 (root/results-split), offline from a local hub cache."""
    import datasets.config
    import huggingface_hub.constants as hc
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    root = tmp_path_factory.mktemp("lmeval")
    b = builders.battery()
    raw = builders.word_tokenizer(b)
    for rev, (theta, strength) in REVS.items():
        model = builders.designed_model(raw, 8, 1, theta, strength)
        builders.save_revision(model, raw, root, MODEL, rev, root / "cache")
    split = builders.split_tokenizer(b)
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(vocab_size=split.get_vocab_size(), hidden_size=8, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=16, max_position_embeddings=32)
    builders.save_revision(GPTNeoXForCausalLM(cfg).eval(), split, root, SPLIT, "step10", root / "cache")
    bfile = root / "pgr.v1.jsonl"
    save_battery(b, bfile)
    with pytest.MonkeyPatch.context() as mp:
        _offline(mp, root, hc, datasets.config)
        code = _cli(["probes", "export", bfile, "--format", "lm-eval", "--out", root / "tasks"])
        assert code == 0
        for rev in REVS:
            _lm_eval(root / "tasks", MODEL, rev, root / "results")
        _lm_eval(root / "tasks", SPLIT, "step10", root / "results-split")
    return root, bfile


def _offline(mp: pytest.MonkeyPatch, root: Path, hc, dconfig) -> None:  # noqa: ANN001
    for var, value in (("HF_HUB_OFFLINE", "1"), ("HF_HUB_CACHE", str(root / "cache")),
                       ("HF_DATASETS_CACHE", str(root / "datasets"))):
        mp.setenv(var, value)
    mp.setattr(hc, "HF_HUB_OFFLINE", True)
    mp.setattr(hc, "HF_HUB_CACHE", str(root / "cache"))
    mp.setattr(dconfig, "HF_DATASETS_CACHE", root / "datasets")
    mp.setattr(dconfig, "HF_HUB_OFFLINE", True)


@pytest.fixture
def offline_env(lm_eval_runs, monkeypatch):  # noqa: ANN001, ANN201
    import datasets.config
    import huggingface_hub.constants as hc

    _offline(monkeypatch, lm_eval_runs[0], hc, datasets.config)
    return lm_eval_runs


def _cli(args: list) -> int:
    from ungrok.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return e.code or 0
    return 0


def _lm_eval(tasks: Path, model: str, rev: str, out: Path) -> None:
    """What `lm_eval --model hf --include_path T --tasks G --log_samples --output_path O` does."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    group = json.loads((tasks / "ungrok-lm-eval.json").read_text())["group"]
    tracker = EvaluationTracker(output_path=str(out))
    results = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={model},revision={rev}", tasks=[group], device="cpu",
        task_manager=TaskManager(include_path=str(tasks), include_defaults=False), batch_size=16,
        log_samples=True, evaluation_tracker=tracker,
    )
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])


def test_group_name_drops_the_dots_of_the_stem():
    assert group_name("/x/rvp3.1.jsonl") == "ungrok_rvp31"
    assert group_name("pgr.v1.jsonl") == "ungrok_pgrv1"


def test_imported_margins_keep_the_stores_rows_and_prompt_set(battery, tmp_path):
    scores = _battery_scores(battery, {it["item_id"]: [0.0, 1.0] for it in battery.items}, tmp_path)

    def imported(step: int, sha: str, cm: float = 1.0) -> ImportedRun:
        margins = [MarginScore("pron", cm, None, 2, 0, sha)]
        return ImportedRun("m", step, f"step{step}", scores, scores.groups(), margins, tmp_path)

    out = tmp_path / "t.parquet"
    assert store_imported(TrajectoryStore(out), [imported(1, "a" * 64)], battery) == 1
    assert store_imported(TrajectoryStore(out), [imported(1, "a" * 64, cm=9.0)], battery) == 0
    assert pq.read_table(margins_path_for(out)).column("cm").to_pylist() == [1.0]  # kept, not doubled
    with pytest.raises(UngrokError, match=r"run 'm' has pron margins from other prompts \(sha256 a{12}…\)"):
        store_imported(TrajectoryStore(out), [imported(2, "b" * 64)], battery)


def test_export_lists_distractor_first_and_scores_acc_only(lm_eval_runs, capsys):
    root, bfile = lm_eval_runs
    b = builders.battery()
    tasks = root / "tasks"
    group = yaml.safe_load((tasks / "ungrok_pgrv1.yaml").read_text())
    fam = "ungrok_pgrv1_pronoun_gender_ref"
    assert group["task"] == [f"{fam}_{c}_{s}" for c, s in
                             (("agree", "heldout"), ("agree", "train"), ("conflict", "heldout"), ("conflict", "train"))] \
        + ["ungrok_pgrv1_margin_pronoun_gender_ref"]
    cfg = yaml.safe_load((tasks / f"{fam}_conflict_heldout.yaml").read_text())
    assert cfg["output_type"] == "multiple_choice" and cfg["target_delimiter"] == ""
    assert [m["metric"] for m in cfg["metric_list"]] == ["acc"] and cfg["metadata"][
        "battery_sha256"
    ] == b.sha256
    docs = [json.loads(x) for x in Path(cfg["dataset_kwargs"]["data_files"]["test"]).read_text().splitlines()]
    items = {it["item_id"]: it for it in b.items if (it["condition"], it["split"]) == ("conflict", "heldout")}
    assert len(docs) == len(items) == 12
    for d in docs:
        it = items[d["item_id"]]
        assert (
            d["choices"] == [it["distractor"], it["correct"]]
            and d["label"] == 1
            and d["prefix"] == it["prefix"]
        )
        assert d["battery_sha256"] == b.sha256
    margin = [json.loads(x) for x in (tasks / "data" / "ungrok_pgrv1_margin_pronoun_gender_ref.jsonl").open()]
    assert [d["kind"] for d in margin].count("cm") == 12 and [d["kind"] for d in margin].count("pm") == 32
    code, _, err = run(["probes", "export", bfile, "--out", tasks], capsys)
    assert "already exists" in one_line_error(code, err)


def test_lm_eval_logs_match_ungrok_item_for_item(offline_env, tmp_path, capsys):
    root, bfile = offline_env
    revs = ",".join(REVS)
    ref, got = tmp_path / "ref.parquet", tmp_path / "got.parquet"
    code, _, err = run(["score", "--battery", bfile, "--hf", MODEL, "--revisions", revs, "--items", "--out", ref],
                       capsys)
    assert code == 0, err
    code, text, err = run(["score", "--battery", bfile, "--from-lm-eval", root / "results", "--items",
                           "--out", got], capsys)
    assert code == 0 and "imported 3 lm-eval run(s) (3 new)" in text, err

    a, b = _same_items(ref, got, 3 * 48)
    # step300 ties everywhere: logps equal, every item wrong in both
    tie = b[b["step"] == 300]
    assert (tie["logp_correct"] == tie["logp_distractor"]).all() and not tie["correct"].any()

    # lm-eval's own per-sample acc (argmax over [distractor, correct]) agrees with ungrok's strict >
    lm_acc = {}
    for res in sorted((root / "results").rglob("results_*.json")):
        step = int(json.loads(res.read_text())["config"]["model_revision"].removeprefix("step"))
        for f in res.parent.glob(f"samples_*{res.name.removeprefix('results_').removesuffix('.json')}.jsonl"):
            for line in f.open():
                s = json.loads(line)
                if "item_id" in s["doc"]:
                    lm_acc[(step, s["doc"]["item_id"])] = s["acc"] == 1.0
    assert lm_acc == {(s, i): bool(c) for s, i, c in zip(a["step"], a["item_id"], a["correct"], strict=True)}

    ta, tb = (_sorted(p, ["step", "family", "condition", "split"]) for p in (ref, got))
    assert (ta["accuracy"] == tb["accuracy"]).all() and (ta["n_items"] == tb["n_items"]).all()
    assert (ta["mean_margin"] - tb["mean_margin"]).abs().max() < 1e-4 and tb["mean_margin_norm"].isna().all()
    heldout = tb[(tb["condition"] == "conflict") & (tb["split"] == "heldout")]["accuracy"].tolist()
    assert heldout == [1.0, 0.5, 0.0]  # the designed accuracies, and the tie revision all wrong
    ma, mb = (pq.read_table(margins_path_for(p)).to_pandas().sort_values("step") for p in (ref, got))
    assert (ma["prompts_sha256"].values == mb["prompts_sha256"].values).all()
    for col in ("cm", "pm"):
        assert abs(ma[col].values - mb[col].values).max() < 1e-4
    code, text, err = run(["classify", got], capsys)
    assert code == 0 and "pronoun_gender_ref" in text, err
    code, text, _ = run(
        ["score", "--battery", bfile, "--from-lm-eval", root / "results", "--out", got], capsys
    )
    assert code == 0 and "(0 new)" in text


def test_multi_token_continuations_sum_like_ungrok(offline_env, tmp_path, capsys):
    root, bfile = offline_env
    ref, got = tmp_path / "ref.parquet", tmp_path / "got.parquet"
    code, _, err = run(["score", "--battery", bfile, "--hf", SPLIT, "--revisions", "step10", "--items",
                        "--out", ref], capsys)
    assert code == 0, err
    code, _, err = run(["score", "--battery", bfile, "--from-lm-eval", root / "results-split", "--items",
                        "--out", got], capsys)
    assert code == 0, err
    _same_items(ref, got, 48)
    ma, mb = (_sorted(margins_path_for(p), ["step"]) for p in (ref, got))
    assert abs(ma["cm"].values - mb["cm"].values).max() < 1e-4


def _sorted(path: Path, key: list[str]):  # noqa: ANN202
    return pq.read_table(path).to_pandas().sort_values(key).reset_index(drop=True)


def _same_items(ref: Path, got: Path, n: int):  # noqa: ANN202
    """Item tables of `score --hf` and `score --from-lm-eval`: same rows, verdicts, log-probs to 1e-4."""
    key = ["run", "step", "item_id"]
    a, b = (_sorted(items_path_for(p), key) for p in (ref, got))
    assert len(a) == len(b) == n and (a[key + ["revision"]] == b[key + ["revision"]]).all().all()
    assert (a["correct"] == b["correct"]).all()
    for col in ("logp_correct", "logp_distractor"):
        assert (a[col] - b[col]).abs().max() < 1e-4
    return a, b


def test_bad_lm_eval_logs_are_one_line_errors(lm_eval_runs, tmp_path, capsys):
    root, bfile = lm_eval_runs
    out = tmp_path / "t.parquet"
    other = tmp_path / "other.jsonl"
    save_battery(build_battery(["det_an_choice"]), other)
    code, _, err = run(
        ["score", "--battery", other, "--from-lm-eval", root / "results", "--out", out], capsys
    )
    assert "exported from another battery" in one_line_error(code, err)

    cut = tmp_path / "cut"
    shutil.copytree(root / "results", cut)
    f = sorted(cut.rglob("samples_*conflict_heldout*.jsonl"))[0]
    f.write_text("".join(f.read_text().splitlines(keepends=True)[1:]))
    code, _, err = run(["score", "--battery", bfile, "--from-lm-eval", cut, "--out", out], capsys)
    assert "lack 1 of the battery's 48 items" in one_line_error(code, err)
    shutil.copy(sorted((root / "results").rglob(f.name))[0], f)  # restore the item
    m = sorted(cut.rglob("samples_*margin*.jsonl"))[0]
    m.write_text("".join(m.read_text().splitlines(keepends=True)[:-1]))  # drop the last neutral prompt
    code, _, err = run(["score", "--battery", bfile, "--from-lm-eval", cut, "--out", out], capsys)
    assert "lack 1 of rule 'pronoun_gender_ref''s 32 pm margin prompts" in one_line_error(code, err)

    empty = tmp_path / "empty"
    empty.mkdir()
    for res in root.joinpath("results").rglob("results_*.json"):
        shutil.copy(res, empty)  # results without --log_samples
    code, _, err = run(["score", "--battery", bfile, "--from-lm-eval", empty, "--out", out], capsys)
    assert "no lm-eval sample logs" in one_line_error(code, err)
    assert not out.exists()
