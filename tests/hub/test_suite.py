"""The suite on designed checkpoints: verdicts and the scale statistic as designed, resume,
bad input skipped and named, models freed task by task, and the pool and Ray executors."""

from __future__ import annotations

import json
import weakref

import pyarrow.parquet as pq
import pytest

from ungrok.errors import UngrokError
from ungrok.hub import task as task_mod
from ungrok.hub.scale import classify_suite
from ungrok.hub.suite import score_suite

from . import builders as B

ALL = ",".join(B.REVISIONS)


def heldout_conflict(out, model):  # noqa: ANN001, ANN201
    rows = pq.read_table(out / "traj.parquet").to_pylist()
    got = {r["step"]: r["accuracy"] for r in rows
           if r["run"] == model and r["split"] == "heldout" and r["condition"] == "conflict"}
    return [got[int(rev.removeprefix("step"))] for rev in B.REVISIONS]


def table(out, name="traj.parquet"):  # noqa: ANN001, ANN201
    return sorted(pq.read_table(out / name).to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))


def test_suite_recovers_the_designed_verdicts_and_scale(offline, tmp_path):
    _, battery = offline
    out = tmp_path / "suite"
    summary = score_suite(list(B.SIZES), ALL, battery, out, device="cpu", progress=False)
    assert summary.scored == 15 and summary.already == 0 and not summary.skipped
    for model, acc in B.DESIGN.items():
        assert heldout_conflict(out, model) == pytest.approx(acc, abs=1e-12)
    suite = json.loads((out / "suite.json").read_text())
    assert suite["battery_sha256"] == B.battery().sha256 and suite["skipped"] == []
    ranks = {m: v["size_rank"] for m, v in suite["models"].items()}
    assert ranks == {"org/neox-s": 1, "org/neox-m": 2, "org/neox-l": 3}  # hidden 8/16/32, 1/2/3 layers
    for v in suite["models"].values():
        assert [r["revision"] for r in v["revisions"]] == list(B.REVISIONS)
        assert all(
            r["status"] == "scored" and r["seconds"] > 0 and r["peak_rss_mib"] > 0 for r in v["revisions"]
        )
    assert (out / "traj.margins.parquet").exists() and (out / "traj.items.parquet").exists()

    fates = classify_suite(out)
    got = {r["run"]: (r["fate"], r["agree_gate"], r["conflict_final"]) for r in fates["records"]}
    assert got == {m: (B.VERDICTS[m], "pass", pytest.approx(B.FINALS[m], abs=1e-12)) for m in B.SIZES}
    scale = fates["scale"]
    assert scale["family"] == B.FAMILY and scale["rho"] == pytest.approx(1.0)
    # Item resamples leave only three orderings of the two collapsing models' finals: x < y
    # (rho 1), a tie (rho sqrt(3)/2) and x > y (rho 1/2), with x, y the resampled final-revision
    # accuracies (two 6-item template strata: Binomial(6, 1/2) vs Binomial(6, 2/3) per stratum).
    # Exactly, P(x > y) = 0.147 and P(x < y) = 0.738, both above 2.5%: the 95% CI is [1/2, 1].
    assert scale["ci"] == pytest.approx([0.5, 1.0])
    assert [m["final_accuracy"] for m in scale["models"]] == pytest.approx([B.FINALS[m] for m in B.SIZES])
    assert json.loads((out / "hub_fates.json").read_text())["scale"]["rho"] == pytest.approx(1.0)


def counting_loader(monkeypatch, fail_at: int | None = None, exc: BaseException | None = None):  # noqa: ANN001, ANN201
    """Wrap the real loader: count loads, keep weak references, optionally raise at load n."""
    from ungrok.probes.models import load_hf as real

    seen: list[tuple[str, weakref.ref]] = []

    def load(name, revision, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        if fail_at is not None and len(seen) + 1 == fail_at:
            raise exc
        adapter, tok = real(name, revision, *a, **k)
        seen.append((f"{name}@{revision}", weakref.ref(adapter.model)))
        return adapter, tok

    monkeypatch.setattr(task_mod, "load_hf", load)
    return seen


def test_a_killed_suite_resumes_and_a_finished_one_loads_nothing(offline, tmp_path, monkeypatch):
    _, battery = offline
    out = tmp_path / "suite"
    counting_loader(monkeypatch, fail_at=3, exc=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        score_suite(["org/neox-s"], ALL, battery, out, device="cpu", progress=False)
    assert {r["step"] for r in pq.read_table(out / "traj.parquet").to_pylist()} == {
        128,
        256,
    }  # saved per task
    seen = counting_loader(monkeypatch)
    s = score_suite(["org/neox-s"], ALL, battery, out, device="cpu", progress=False)
    assert (s.scored, s.already) == (3, 2) and [n for n, _ in seen] == [
        f"org/neox-s@{r}" for r in B.REVISIONS[2:]
    ]
    assert heldout_conflict(out, "org/neox-s") == pytest.approx(B.DESIGN["org/neox-s"])
    before = table(out), table(out, "traj.items.parquet"), table(out, "traj.margins.parquet")
    s = score_suite(["org/neox-s"], ALL, battery, out, device="cpu", progress=False)
    assert (s.scored, s.already) == (0, 5) and len(seen) == 3
    assert (table(out), table(out, "traj.items.parquet"), table(out, "traj.margins.parquet")) == before
    revs = json.loads((out / "suite.json").read_text())["models"]["org/neox-s"]["revisions"]
    assert [r["status"] for r in revs] == ["scored"] * 5


def test_bad_input_is_skipped_named_and_reported_while_the_rest_is_scored(cache_env, tmp_path):
    _, battery = cache_env  # HF_HUB_OFFLINE unset: offline=True must switch it on
    out = tmp_path / "suite"
    s = score_suite(["org/neox-s", "org/no-such-model", B.SPLIT_MODEL], "step128,step1000,step2000,main",
                    battery, out, device="cpu", offline=True, progress=False)
    assert s.scored == 4  # neox-s at 128 and 1000, the split model at 1000 and 2000
    not_scored = {(k["model"], k["revision"]) for k in s.skipped}
    assert not_scored == {("org/neox-s", "step2000"), ("org/neox-s", "main"), ("org/no-such-model", None),
                          (B.SPLIT_MODEL, "step128"), (B.SPLIT_MODEL, "main")}
    text = "\n".join(s.lines())
    assert "org/no-such-model: not in the local hub cache (offline mode)" in text
    assert "revision 'step2000' not in the local hub cache (offline mode)" in text
    assert "'main' names no training step" in text
    note = "target ' she' splits into 2 tokens: scored as multi-token"
    assert s.notes == {"org/neox-s": [], B.SPLIT_MODEL: [note]} and f"note {B.SPLIT_MODEL}: {note}" in text
    suite = json.loads((out / "suite.json").read_text())
    assert suite["models"][B.SPLIT_MODEL]["notes"] == [note] and "org/no-such-model" not in suite["models"]
    assert {"model": "org/no-such-model", "revision": None,
            "why": "org/no-such-model: not in the local hub cache (offline mode)"} in suite["skipped"]
    rows = pq.read_table(out / "traj.parquet").to_pylist()
    assert {(r["run"], r["revision"]) for r in rows} == {("org/neox-s", "step128"), ("org/neox-s", "step1000"),
                                                         (B.SPLIT_MODEL, "step1000"), (B.SPLIT_MODEL, "step2000")}
    import huggingface_hub.constants as hc

    assert hc.HF_HUB_OFFLINE is False  # the flag's effect ends with the suite


def test_each_model_is_freed_before_the_next_one_loads(offline, tmp_path, monkeypatch):
    _, battery = offline
    seen = counting_loader(monkeypatch)
    real = task_mod.load_hf

    def load(*a, **k):  # noqa: ANN002, ANN003, ANN202
        alive = [name for name, ref in seen if ref() is not None]
        assert not alive, f"still referenced when the next revision loads: {alive}"
        return real(*a, **k)

    monkeypatch.setattr(task_mod, "load_hf", load)
    s = score_suite(["org/neox-s", "org/neox-m"], "step128,step256,step512", battery, tmp_path / "o",
                    device="cpu", progress=False)
    assert s.scored == 6 and len(seen) == 6 and all(ref() is None for _, ref in seen)


def test_a_failing_task_is_recorded_and_the_suite_goes_on(offline, tmp_path, monkeypatch):
    _, battery = offline
    real = task_mod.load_hf

    def load(name, revision, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        if revision == "step256":
            raise RuntimeError("weights are corrupt\nsecond line")
        return real(name, revision, *a, **k)

    monkeypatch.setattr(task_mod, "load_hf", load)
    out = tmp_path / "o"
    s = score_suite(["org/neox-s"], "step128,step256,step512", battery, out, device="cpu", progress=False)
    assert s.scored == 2
    assert s.skipped == [{"model": "org/neox-s", "revision": "step256", "status": "failed",
                          "why": "RuntimeError: weights are corrupt"}]
    revs = json.loads((out / "suite.json").read_text())["models"]["org/neox-s"]["revisions"]
    assert [r["status"] for r in revs] == ["scored", "failed", "scored"]
    monkeypatch.setattr(task_mod, "load_hf", real)
    s = score_suite(["org/neox-s"], "step128,step256,step512", battery, out, device="cpu", progress=False)
    assert (s.scored, s.already) == (1, 2)  # the failed one is retried


def test_refusals_come_before_any_work(offline, tmp_path):
    _, battery = offline
    out = tmp_path / "o"
    cases = [
        (dict(models=["org/neox-s"], revisions="auto"), "no known revision grid for org/neox-s"),
        (dict(models=["allenai/OLMo-1B-hf"], revisions="thinned"), "thinned is Pythia's grid"),
        (dict(models=" , ", revisions=ALL), "--models is empty"),
        (dict(models=["org/neox-s"], revisions=" ,"), "--revisions is empty"),
        (dict(models=["org/neox-s"], revisions=ALL, dtype="float16"), "--dtype must be one of"),
        (dict(models=["org/neox-s"], revisions=ALL, executor="spark"), "use local or ray"),
    ]
    for kw, needle in cases:
        with pytest.raises(UngrokError, match=needle):
            score_suite(battery=battery, out=out, device="cpu", progress=False, **kw)
    assert not out.exists()


def test_another_battery_in_the_same_folder_is_refused(offline, tmp_path):
    from ungrok.probes.battery import Battery, save_battery

    _, battery = offline
    out = tmp_path / "o"
    score_suite(["org/neox-s"], "step128", battery, out, device="cpu", progress=False)
    other = tmp_path / "other.jsonl"
    save_battery(Battery(B.battery().items[:-1]), other)
    with pytest.raises(UngrokError, match="another battery"):
        score_suite(["org/neox-s"], "step128", other, out, device="cpu", progress=False)


def test_the_task_and_its_result_cross_process_boundaries(offline):
    """Pool and Ray workers receive the task by pickle and send the result back the same way."""
    import pickle

    from ungrok.hub.task import SuiteTask, score_task

    _, battery = offline
    from ungrok.probes.battery import load_battery

    job = SuiteTask("org/neox-s", "step128", 128, load_battery(battery), device="cpu",
                    hub_env=(("HF_HUB_OFFLINE", "1"),))
    assert pickle.loads(pickle.dumps(score_task)) is score_task
    again = pickle.loads(pickle.dumps(job))
    assert again == job and again.battery.sha256 == job.battery.sha256
    res = pickle.loads(pickle.dumps(score_task(job)))
    assert res.status == "scored" and res.battery_scores(job.battery).groups() == \
        score_task(job).battery_scores(job.battery).groups()


def test_ray_executor_on_a_local_instance(offline, tmp_path):
    ray = pytest.importorskip("ray")
    _, battery = offline
    revs = "step128,step143000"
    score_suite(["org/neox-m"], revs, battery, tmp_path / "inline", device="cpu", progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # after the env: workers inherit it
    try:
        s = score_suite(["org/neox-m"], revs, battery, tmp_path / "ray", executor="ray", workers=1,
                        device="auto", progress=False)
    finally:
        ray.shutdown()
    assert s.scored == 2 and not s.skipped
    for name in ("traj.parquet", "traj.margins.parquet", "traj.items.parquet"):
        assert table(tmp_path / "ray", name) == table(tmp_path / "inline", name)


def test_olmo_auto_reads_the_step_branches_of_the_offline_cache(offline, tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    from ungrok.hub.cache import add_to_cache

    cache, battery = offline
    olmo = tmp_path / "cache"
    for k, rev in enumerate(B.REVISIONS):  # the small model's weights under OLMo-style names
        add_to_cache(
            olmo, "org/OLMo-tiny", f"{rev}-tokens{k + 1}B", cache.parent / "src" / "org/neox-s" / rev
        )
    add_to_cache(olmo, "org/OLMo-tiny", "main", cache.parent / "src" / "org/neox-s" / B.REVISIONS[-1])
    monkeypatch.setenv("HF_HUB_CACHE", str(olmo))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(olmo))
    out = tmp_path / "o"
    s = score_suite(["org/OLMo-tiny"], "auto", battery, out, device="cpu", progress=False)
    assert s.scored == 5 and not s.skipped  # "main" names no step: auto leaves it out
    revs = json.loads((out / "suite.json").read_text())["models"]["org/OLMo-tiny"]["revisions"]
    assert [(r["revision"], r["step"]) for r in revs] == [(f"{rev}-tokens{k + 1}B", int(rev[4:]))
                                                          for k, rev in enumerate(B.REVISIONS)]
    assert heldout_conflict(out, "org/OLMo-tiny") == pytest.approx(B.DESIGN["org/neox-s"])
    (fate,) = classify_suite(out, n_boot=10)["records"]
    assert fate["fate"] == "DISPLACED"
