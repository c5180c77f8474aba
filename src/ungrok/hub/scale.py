"""Verdicts per model and the depth-by-scale statistic of a suite folder (OUT/hub_fates.json).

Verdicts: the frozen classifier (`ungrok.fate.summarize`) on each model's rows, whose
steps are the revisions' steps, so MIN_STEP (100) drops early revisions before
smoothing and the final window is max(3, round(0.1 n)) of the kept revisions, as for
training runs (docs/method.md §10). A model the classifier cannot read (too few revisions at
step >= 100, a missing agree condition) is listed under "unclassified" with the reason.

Depth by scale (the paper's PUB3): Spearman's rho between model size (n_params; ties
share average ranks, so it is the rho of the size ranks) and each model's final
held-out conflict accuracy of one family, the classifier's `conflict_final`.

Its bootstrap CI resamples ITEMS, not models. Per replicate and per model, the
family's held-out conflict items are drawn with replacement within their template
strata (each stratum keeps its size; the draw order of `ungrok.fate.stats`); the one
draw is applied to every revision of that model, because the final window averages
several revisions scored on the same items. Accuracies per revision are recomputed
from traj.items.parquet, smoothed and windowed as the classifier does, and rho is
recomputed against the fixed sizes. Models draw from one seeded stream in size order
(n_params, then id). The interval is the 95% percentile interval over replicates
where rho is defined (a replicate in which every final ties has none; such
replicates are dropped and counted in the note). It reflects item sampling only: the
models, their sizes and the revision grid are held fixed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ungrok.atomic import write_json
from ungrok.errors import UngrokError
from ungrok.fate._series import window_mean
from ungrok.fate.classify import final_window, smooth
from ungrok.fate.config import DEFAULT_CONFIG, ClassifierConfig
from ungrok.fate.stats import (  # same strata and draw order as bootstrap_ci
    spearman,
    stratified_draws,
    template_strata,
)
from ungrok.fate.summary import summarize
from ungrok.hub.record import read_suite

HUB_FATES = "hub_fates.json"
LEVEL = 0.95


def _table_rows(path: Path, what: str, filters: list | None = None) -> list[dict[str, Any]]:
    """Rows of a suite table (none if the file is absent); one error line if it is unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.exists():
        return []
    try:
        return pq.read_table(path, filters=filters).to_pylist()
    except (pa.ArrowInvalid, OSError, KeyError) as e:
        raise UngrokError(f"{path}: not a readable {what} ({e})") from None


def _suite_models(suite: dict[str, Any]) -> list[dict[str, Any]]:
    """Models of the suite in size order (unknown sizes last), with n_params and size_rank."""
    models = [{"model": m, "n_params": v.get("n_params"), "size_rank": v.get("size_rank")}
              for m, v in suite["models"].items()]
    return sorted(models, key=lambda e: (e["n_params"] is None, e["n_params"] or 0, e["model"]))


def _pick_family(
    family: str | None, families: set[str], cfg: ClassifierConfig, out: Path
) -> tuple[str, str | None]:
    if family is not None:
        if family not in families:
            raise UngrokError(
                f"family {family!r} was not scored in {out} (it has {', '.join(sorted(families))})"
            )
        return family, None
    if cfg.anchor_family in families:
        return cfg.anchor_family, None
    chosen = sorted(families)[0]
    return chosen, f"the anchor family {cfg.anchor_family} was not scored; the statistic uses {chosen}"


def _final(acc: np.ndarray, cfg: ClassifierConfig) -> float:
    """The classifier's final value of one kept-step accuracy series."""
    s = smooth(acc.tolist(), cfg.smooth_k)
    return window_mean(s, final_window(len(s), cfg))


def item_matrix(items: list[dict[str, Any]], model: str, family: str, cfg: ClassifierConfig
                ) -> tuple[list[int], np.ndarray, list[str]] | None:
    """(kept steps, correct[step, item], template per item) of a model's held-out conflict items.

    Items skipped at any kept step are left out, so every column is one item across all
    revisions. None when there is nothing to resample.
    """
    rows = [r for r in items if r["run"] == model and r["family"] == family and r["condition"] == "conflict"
            and r["split"] == "heldout" and r["step"] >= cfg.min_step]
    if not rows:
        return None
    steps = sorted({r["step"] for r in rows})
    order = list(dict.fromkeys(r["item_id"] for r in rows))
    bad = {r["item_id"] for r in rows if r["skipped"]}
    ids = [i for i in order if i not in bad]
    if not ids:
        return None
    col = {i: k for k, i in enumerate(ids)}
    srow = {s: k for k, s in enumerate(steps)}
    mat = np.full((len(steps), len(ids)), np.nan)
    template: dict[str, str] = {}
    for r in rows:
        if r["item_id"] in col:
            mat[srow[r["step"]], col[r["item_id"]]] = float(r["correct"])
            template[r["item_id"]] = r["template_id"]
    if np.isnan(mat).any():
        return None  # an item missing at some revision: no consistent resample
    return steps, mat, [template[i] for i in ids]


def rank_rho(x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Spearman rho of x against each row of ys (average ranks); nan where a row is constant."""
    from scipy.stats import rankdata

    rx = rankdata(x)
    rx = rx - rx.mean()
    ry = rankdata(ys, axis=1)
    ry = ry - ry.mean(axis=1, keepdims=True)
    den = np.sqrt((ry**2).sum(axis=1) * float(rx @ rx))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ry @ rx) / np.where(den > 0, den, 1.0), np.nan)


def bootstrap_rho(sizes: list[float], mats: list[tuple[np.ndarray, list[str]]], cfg: ClassifierConfig,
                  n_boot: int, seed: int) -> np.ndarray:
    """rho per replicate (nan where undefined); see the module docstring for what is resampled."""
    rng = np.random.default_rng(seed)
    finals = np.empty((n_boot, len(mats)))
    for j, (mat, templates) in enumerate(mats):
        idx = stratified_draws(template_strata(templates), n_boot, rng)  # [n_boot, n_items]
        acc = mat[:, idx].mean(axis=2)  # [steps, n_boot]
        for b in range(n_boot):
            finals[b, j] = _final(acc[:, b], cfg)
    return rank_rho(np.asarray(sizes, dtype=float), finals)


def depth_by_scale(models: list[dict[str, Any]], finals: dict[str, float], items: list[dict[str, Any]],
                   family: str, cfg: ClassifierConfig = DEFAULT_CONFIG, n_boot: int = 1000,
                   seed: int = 0) -> dict[str, Any]:
    """The "scale" section of hub_fates.json: rho of size vs final conflict accuracy, with its CI."""
    if n_boot < 1:
        raise UngrokError(f"number of bootstrap resamples must be >= 1, got {n_boot}")
    entries = [{**m, "final_accuracy": finals.get(m["model"])} for m in models if m["n_params"] is not None]
    scale: dict[str, Any] = {"family": family, "condition": "conflict", "split": "heldout", "models": entries,
                             "rho": None, "ci": None, "n_boot": n_boot, "seed": seed, "note": None}
    pts = [e for e in entries if e["final_accuracy"] is not None]
    if len(pts) < 3:
        scale["note"] = (
            f"rho needs at least 3 models with a final {family} accuracy; this suite has {len(pts)}"
        )
        return scale
    sizes = [float(e["n_params"]) for e in pts]
    res = spearman(sizes, [e["final_accuracy"] for e in pts])
    if res.p is None:
        scale["note"] = "rho is undefined: every model (or every size) is tied"
        return scale
    scale["rho"] = res.rho
    mats = []
    for e in pts:
        m = item_matrix(items, e["model"], family, cfg)
        if m is None:
            scale["note"] = f"no per-item rows for {e['model']} in traj.items.parquet: no CI"
            return scale
        steps, mat, templates = m
        if abs(_final(mat.mean(axis=1), cfg) - e["final_accuracy"]) > 1e-9:
            scale["note"] = f"{e['model']}: item rows do not reproduce its final accuracy: no CI"
            return scale
        mats.append((mat, templates))
    boot = bootstrap_rho(sizes, mats, cfg, n_boot, seed)
    defined = boot[~np.isnan(boot)]
    dropped = int(boot.size - defined.size)
    if defined.size:
        a = (1 - LEVEL) / 2 * 100
        lo, hi = np.percentile(defined, [a, 100 - a])
        scale["ci"] = [float(lo), float(hi)]
    if dropped:
        scale["note"] = f"{dropped} of {n_boot} replicates tied every final (rho undefined) and were dropped"
    return scale


def classify_suite(out: Path, cfg: ClassifierConfig = DEFAULT_CONFIG, family: str | None = None,
                   n_boot: int = 1000, seed: int = 0,
                   scale_models: Sequence[str] | None = None) -> dict[str, Any]:
    """Classify every model of the suite folder `out` and compute the scale statistic.

    Writes (replacing: it is derived from the folder's tables) and returns OUT/hub_fates.json:
    {"classifier_sha256", "records": summarize() records, "scale": {...}, "unclassified": [...]}.
    """
    out = Path(out)
    suite = read_suite(out)
    rows = _table_rows(out / "traj.parquet", "trajectory table")
    if not rows:
        raise UngrokError(f"{out}: no scored revisions yet (traj.parquet is missing or empty)")
    margin_rows = _table_rows(out / "traj.margins.parquet", "margin table")
    models = _suite_models(suite)
    records: list[dict[str, Any]] = []
    unclassified: list[dict[str, str]] = []
    for m in models:
        name = m["model"]
        mine = [r for r in rows if r["run"] == name]
        if not mine:
            unclassified.append({"model": name, "why": "no scored revision"})
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                records += summarize(mine, [r for r in margin_rows if r["run"] == name], cfg)
        except UngrokError as e:
            unclassified.append({"model": name, "why": str(e)})
    fam, note = _pick_family(family, {r["family"] for r in rows}, cfg, out)
    finals = {r["run"]: r["conflict_final"] for r in records if r["family"] == fam}
    wanted = [("family", "=", fam), ("condition", "=", "conflict"), ("split", "=", "heldout")]
    items = _table_rows(out / "traj.items.parquet", "item table", wanted)
    ranked = models
    if scale_models is not None:  # e.g. the paper's rho over the five Pythia sizes, not OLMo
        unknown = [m for m in scale_models if m not in suite["models"]]
        if unknown:
            raise UngrokError(f"scale models: {unknown[0]!r} is not a model of the suite in {out}")
        ranked = [m for m in models if m["model"] in set(scale_models)]
    scale = depth_by_scale(ranked, finals, items, fam, cfg, n_boot, seed)
    if note:
        scale["note"] = note if scale["note"] is None else f"{note}; {scale['note']}"
    result = {
        "classifier_sha256": cfg.sha256(),
        "records": records,
        "scale": scale,
        "unclassified": unclassified,
    }
    write_json(out / HUB_FATES, result)
    return result
