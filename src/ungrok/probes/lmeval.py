"""Batteries as lm-evaluation-harness tasks, and lm-eval's per-sample logs back into trajectories.

Export: one lm-eval `multiple_choice` task per (family, condition, split) of a battery, one
per margin rule (its CM and neutral prompts), and a group `ungrok_<battery stem>` over them,
each task a YAML file reading its own JSONL (`dataset_path: json`, absolute `data_files`, so
lm-eval runs offline and from any folder; re-export after moving the folder).

Scoring parity with `ungrok score` (docs/method.md §3.1): lm-eval's `acc` compares the
summed log-probabilities of the choices after the prefix (`target_delimiter: ""`, since our
continuations carry their own leading space), with no length normalisation (no `acc_norm`).
It takes the argmax, and numpy's argmax picks the first index on a tie, so every doc lists
its choices as [distractor, correct] with label 1: a tie counts wrong, as in ungrok.
Margin docs list [prior target, rule target], so CM = ll[1] - ll[0] and PM = ll[0] - ll[1].
Two differences remain. lm-eval encodes prefix + continuation together and splits
(ungrok encodes them apart), which is the same for tokenizers that start a word with its
space (GPT-2/NeoX BPE, our word tokenizers). And it never skips an item, so n_skipped is 0
and items ungrok would skip (unknown tokens) are scored.

Import: one lm-eval run (`--log_samples --output_path DIR`) per model revision; each run's
`results_<date>.json` names the model and revision (`config.model_revision`, else
`revision=` in model_args; the step is its `stepN`, as for `ungrok score --hf`) and its
`samples_<task>_<date>.jsonl` files hold the per-choice log-likelihoods. Every doc carries
the battery's sha256 and its item id, so a log from another battery, or one missing items,
is refused. lm-eval logs no token counts, so `mean_margin_norm` is null.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ungrok.errors import UngrokError
from ungrok.jsonfile import iter_jsonl, read_json
from ungrok.probes.battery import Battery
from ungrok.probes.margins import MarginPrompts, MarginScore
from ungrok.probes.revisions import parse_step
from ungrok.probes.score import BatteryScores, GroupScore
from ungrok.probes.trajectories import TrajectoryStore

EXPORT_MANIFEST = "ungrok-lm-eval.json"
_SAMPLES = re.compile(r"samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[0-9.\-]+)\.jsonl")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")


def group_name(battery_path: str | Path) -> str:
    """`ungrok_<stem without dots>`: rvp3.1.jsonl -> ungrok_rvp31."""
    stem = Path(battery_path).name.removesuffix(".jsonl").replace(".", "")
    return f"ungrok_{_slug(stem)}"


def _task_yaml(task: str, data: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """One zero-shot two-choice task: summed log-prob per choice, `acc` only (never acc_norm)."""
    return {
        "task": task,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data.resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "prefix",
        "doc_to_choice": "choices",
        "doc_to_target": "label",
        "target_delimiter": "",
        "num_fewshot": 0,
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0, **meta},
    }


def _task(group: str, key: tuple[str, str, str]) -> str:
    fam, cond, split = key
    return f"{group}_{_slug(fam)}_{cond}_{split}"


def export_docs(battery: Battery, margins: Sequence[MarginPrompts], group: str) -> dict[str, list[dict]]:
    """Task name -> its docs: battery groups sorted by (family, condition, split), then one task per margin rule."""
    tasks: dict[str, list[dict]] = {_task(group, key): [] for key in battery.counts()}  # sorted keys
    if len(tasks) != len(battery.counts()):
        raise UngrokError("two battery families give the same lm-eval task name; rename one of them")
    for i, it in enumerate(battery.items):
        fam, cond, split = battery.group_key(i)
        doc = {"item_id": it["item_id"], "family": fam, "condition": cond, "split": split,
               "template_id": it["template_id"], "prefix": it["prefix"],
               "choices": [it["distractor"], it["correct"]], "label": 1,
               "battery_sha256": battery.sha256}
        tasks[_task(group, (fam, cond, split))].append(doc)
    for ps in margins:
        docs = tasks.setdefault(f"{group}_margin_{_slug(ps.rule)}", [])
        for kind, prompts in (("cm", ps.cm_prompts), ("pm", ps.neutral_prompts)):
            for k, x in enumerate(prompts):
                docs.append({"rule": ps.rule, "kind": kind, "index": k, "of": len(prompts), "prefix": x,
                             "choices": [ps.prior_target, ps.rule_target], "label": 1,
                             "prompts_sha256": ps.sha256, "battery_sha256": battery.sha256})
    return tasks


def export_lm_eval(
    battery: Battery,
    battery_path: str | Path,
    margins: Sequence[MarginPrompts],
    out: Path,
    force: bool = False,
) -> dict[str, Any]:
    """Write the task folder atomically (YAML per task, data/<task>.jsonl, the group, a manifest)."""
    import yaml

    from ungrok.atomic import atomic_dir

    group = group_name(battery_path)
    tasks = export_docs(battery, margins, group)
    manifest = {"group": group, "battery_sha256": battery.sha256, "battery": str(battery_path),
                "tasks": {t: len(d) for t, d in tasks.items()},
                "margin_rules": [ps.rule for ps in margins]}
    with atomic_dir(out, force=force) as tmp:
        (tmp / "data").mkdir()
        for task, docs in tasks.items():
            (tmp / "data" / f"{task}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), "utf-8")
            # data_files must name the final place, not the temporary folder being built
            cfg = _task_yaml(task, out / "data" / f"{task}.jsonl", {"battery_sha256": battery.sha256})
            (tmp / f"{task}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), "utf-8")
        grp = {
            "group": group,
            "task": list(tasks),
            "metadata": {"version": 1.0, "battery_sha256": battery.sha256},
        }
        (tmp / f"{group}.yaml").write_text(yaml.safe_dump(grp, sort_keys=False), "utf-8")
        (tmp / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return manifest


# --------------------------------------------------------------------------- import


@dataclass(frozen=True)
class ImportedRun:
    """One lm-eval run (one model revision) read back: battery scores and margins."""

    run: str
    step: int
    revision: str | None
    scores: BatteryScores
    groups: list[GroupScore]
    margins: list[MarginScore]
    source: Path  # the results json


def _model_args(config: dict[str, Any]) -> dict[str, str]:
    args = config.get("model_args") or {}
    if isinstance(args, dict):
        return {str(k): str(v) for k, v in args.items()}
    return dict(kv.split("=", 1) for kv in str(args).split(",") if "=" in kv)


def _choice_lls(sample: dict[str, Any], where: str) -> list[float]:
    """Per-choice log-likelihoods of one logged multiple_choice sample."""
    try:
        resps = sample["filtered_resps"]
        return [float(r[0]) if isinstance(r, list) else float(r) for r in resps]
    except (KeyError, TypeError, ValueError, IndexError):
        raise UngrokError(
            f"{where}: not an lm-eval multiple_choice sample (no per-choice log-likelihoods)"
        ) from None


def _read_samples(path: Path, sha: str) -> list[tuple[dict[str, Any], list[float]]]:
    out = []
    for where, sample in iter_jsonl(path.read_text("utf-8"), str(path)):
        doc = sample.get("doc") if isinstance(sample, dict) else None
        if not isinstance(doc, dict) or "battery_sha256" not in doc:
            raise UngrokError(f"{where}: not a sample of a task exported by `ungrok probes export`")
        if doc["battery_sha256"] != sha:
            raise UngrokError(f"{path}: exported from another battery (sha256 {doc['battery_sha256'][:12]}…, "
                              f"--battery has {sha[:12]}…)")
        lls = _choice_lls(sample, where)
        if len(lls) != len(doc.get("choices", ())) or len(lls) != 2:
            raise UngrokError(f"{where}: expected 2 choice log-likelihoods, got {len(lls)}")
        out.append((doc, lls))
    return out


def _battery_scores(battery: Battery, by_id: dict[str, list[float]], where: Path) -> BatteryScores:
    n = len(battery)
    missing = [it["item_id"] for it in battery.items if it["item_id"] not in by_id]
    if missing:
        raise UngrokError(f"{where}: the sample logs lack {len(missing)} of the battery's {n} items "
                          f"(first: {missing[0]!r}); run every task of the exported group")
    lls = np.array([by_id[it["item_id"]] for it in battery.items], dtype=np.float64).reshape(n, 2)
    ld, lc = lls[:, 0], lls[:, 1]  # choices were [distractor, correct]
    zeros = np.zeros(n, dtype=np.int64)  # lm-eval logs no token counts
    return BatteryScores(battery, lc, ld, zeros, zeros, np.zeros(n, dtype=bool))


def _margins(docs: list[tuple[dict[str, Any], list[float]]], where: Path) -> list[MarginScore]:
    """CM and PM per rule; a rule whose logs lack some of its prompts is an error, not a smaller mean."""
    per: dict[str, dict[str, Any]] = {}
    for doc, (ll_prior, ll_rule) in docs:
        m = per.setdefault(doc["rule"], {"cm": {}, "pm": {}, "sha": doc["prompts_sha256"], "of": {}})
        m[doc["kind"]][doc["index"]] = ll_rule - ll_prior if doc["kind"] == "cm" else ll_prior - ll_rule
        m["of"][doc["kind"]] = doc["of"]
    out = []
    for rule, m in per.items():
        for kind, n in m["of"].items():
            if len(m[kind]) != n:
                raise UngrokError(f"{where}: the sample logs lack {n - len(m[kind])} of rule {rule!r}'s "
                                  f"{n} {kind} margin prompts; run every task of the exported group")
        cm, pm = [m["cm"][k] for k in sorted(m["cm"])], [m["pm"][k] for k in sorted(m["pm"])]
        if not cm:
            continue
        out.append(MarginScore(rule, float(np.mean(cm)), float(np.mean(pm)) if pm else None,
                               len(cm), len(pm), m["sha"]))
    return sorted(out, key=lambda s: s.rule)


def _runs(results_dir: Path) -> list[tuple[Path, list[Path]]]:
    """(results json, its samples files) per lm-eval run; samples pair with results by date id."""
    samples = sorted(p for p in results_dir.rglob("samples_*.jsonl") if _SAMPLES.fullmatch(p.name))
    if not samples:
        raise UngrokError(f"{results_dir}: no lm-eval sample logs (samples_<task>_<date>.jsonl); "
                          "run lm_eval with --log_samples --output_path")
    runs: dict[Path, list[Path]] = {}
    for s in samples:
        date = _SAMPLES.fullmatch(s.name)["date"]  # type: ignore[index]
        res = s.with_name(f"results_{date}.json")
        if not res.is_file():
            raise UngrokError(f"{s}: no {res.name} beside it to name the model revision")
        runs.setdefault(res, []).append(s)
    return sorted(runs.items())


def _revision(res: Path) -> tuple[str, str | None]:
    """(model name, revision) of one lm-eval run, from its results json."""
    data = read_json(res, "lm-eval results file")
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise UngrokError(f"{res}: not an lm-eval results file (no 'config')")
    args = _model_args(config)
    name = args.get("pretrained") or str(config.get("model") or res.parent.name)
    return name, config.get("model_revision") or args.get("revision")


def import_lm_eval(
    results_dir: str | Path, battery: Battery, run_name: str | None = None, margins: bool = True
) -> list[ImportedRun]:
    """Every lm-eval run under results_dir scored as `ungrok score` would, sorted by (run, step)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise UngrokError(f"{root}: lm-eval results folder not found")
    out: list[ImportedRun] = []
    seen: dict[tuple[str, int], Path] = {}
    for res, files in _runs(root):
        name, revision = _revision(res)
        step = parse_step(revision or "")
        if step is None:
            raise UngrokError(f"{res}: revision {revision!r} names no training step (stepN); "
                              "evaluate hub revisions such as revision=step1000")
        run = run_name or name
        if (run, step) in seen:
            raise UngrokError(f"{res}: run {run!r} step {step} is also in {seen[(run, step)]}; "
                              "keep one lm-eval run per revision")
        seen[(run, step)] = res
        by_id: dict[str, list[float]] = {}
        margin_docs = []
        for f in files:
            for doc, lls in _read_samples(f, battery.sha256):
                if "item_id" in doc:
                    by_id[doc["item_id"]] = lls
                elif margins:
                    margin_docs.append((doc, lls))
        scores = _battery_scores(battery, by_id, res.parent)
        groups = [replace(g, mean_margin_norm=None) for g in scores.groups()]
        out.append(ImportedRun(run, step, revision, scores, groups, _margins(margin_docs, res.parent), res))
    return sorted(out, key=lambda r: (r.run, r.step))


def store_imported(store: TrajectoryStore, runs: Sequence[ImportedRun], battery: Battery) -> int:
    """Add imported runs to a TrajectoryStore, keeping rows already there; save once. Returns new checkpoints.

    The store's own rules hold: one battery per (run, group), one prompt set per (run, rule)."""
    for run in dict.fromkeys(r.run for r in runs):
        store.check_compatible(run, battery, ())
    added = 0
    for r in runs:
        for m in r.margins:
            store.check_prompts(r.run, m.rule, m.prompts_sha256)
        added += not store.has_scores(r.run, r.step, battery.sha256)
        store.add_scores(r.run, r.step, r.revision, battery.sha256, r.groups)
        store.add_items(r.run, r.step, r.revision, r.scores)
        store.add_margins(r.run, r.step, r.revision, r.margins)
    store.save()
    return added
