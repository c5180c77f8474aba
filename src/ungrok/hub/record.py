"""OUT/suite.json: what the suite did per (model, revision), kept in step with the store.

    {"battery": path, "battery_sha256": sha,
     "models": {model: {"n_params": int | null, "size_rank": int | null (1 = smallest),
                        "revisions": [{"revision", "step", "status": scored|skipped|failed, "why",
                                       "seconds", "peak_rss_mib", "rss_after_mib", "peak_gpu_mib"}],
                        "notes": [str, ...]}},
     "skipped": [{"model", "revision" (null: the whole model), "why"}]}

A rerun keeps what was scored (its rows are in the store) and decides everything
else again: a revision skipped last time because it was not cached is retried. Size
ranks use the competition ranking (equal sizes share the lower rank). The file is
rewritten atomically after every task, right after the store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ungrok.atomic import write_json
from ungrok.errors import UngrokError

SUITE_JSON = "suite.json"
STATUSES = ("scored", "skipped", "failed")


class SuiteRecord:
    """suite.json in memory; `save()` writes it whole."""

    def __init__(self, out: Path, battery: str, battery_sha256: str):
        self.path = Path(out) / SUITE_JSON
        self.battery, self.battery_sha256 = battery, battery_sha256
        self.models: dict[str, dict[str, Any]] = {}
        self.unknown: dict[str, str] = {}  # model -> why it could not be planned (revision null)
        old = read_suite(out) if self.path.exists() else None
        if old is None:
            return
        if old.get("battery_sha256") != battery_sha256:
            raise UngrokError(
                f"{out} holds a suite scored with another battery (sha256 {str(old.get('battery_sha256'))[:12]}…, "
                f"this one {battery_sha256[:12]}…); choose another --out"
            )
        for model, m in old.get("models", {}).items():
            kept = [r for r in m.get("revisions", []) if r.get("status") == "scored"]
            if kept:
                self.models[model] = {"n_params": m.get("n_params"), "notes": list(m.get("notes", [])),
                                      "revisions": {r["revision"]: r for r in kept}}

    def _model(self, model: str) -> dict[str, Any]:
        return self.models.setdefault(model, {"n_params": None, "notes": [], "revisions": {}})

    def has_scored(self, model: str, revision: str) -> bool:
        r = self.models.get(model, {}).get("revisions", {}).get(revision)
        return r is not None and r["status"] == "scored"

    def set_revision(self, model: str, revision: str, step: int | None, status: str, why: str | None = None,
                     **measures: float | None) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        entry = {"revision": revision, "step": step, "status": status, "why": why, "seconds": None,
                 "peak_rss_mib": None, "rss_after_mib": None, "peak_gpu_mib": None}
        entry.update(measures)
        self._model(model)["revisions"][revision] = entry

    def set_params(self, model: str, n_params: int) -> None:
        self._model(model)["n_params"] = int(n_params)

    def add_notes(self, model: str, notes: list[str]) -> None:
        have = self._model(model)["notes"]
        have.extend(n for n in notes if n not in have)

    def set_unknown(self, model: str, why: str) -> None:
        """The model could not be planned at all (unknown id; no revisions to list).

        What an earlier call scored of it stays listed: its rows are still in the store."""
        self.unknown[model] = why

    def size_ranks(self) -> dict[str, int]:
        sizes = {m: v["n_params"] for m, v in self.models.items() if v["n_params"] is not None}
        return {m: 1 + sum(1 for s in sizes.values() if s < n) for m, n in sizes.items()}

    def to_json(self) -> dict[str, Any]:
        ranks = self.size_ranks()
        models, skipped = {}, []
        for model in sorted(self.models):
            m = self.models[model]
            revs = sorted(
                m["revisions"].values(), key=lambda r: (r["step"] is None, r["step"] or 0, r["revision"])
            )
            models[model] = {"n_params": m["n_params"], "size_rank": ranks.get(model), "revisions": revs,
                             "notes": list(m["notes"])}
            skipped += [{"model": model, "revision": r["revision"], "why": r["why"]}
                        for r in revs if r["status"] != "scored"]
        skipped += [{"model": m, "revision": None, "why": why} for m, why in sorted(self.unknown.items())]
        return {"battery": self.battery, "battery_sha256": self.battery_sha256, "models": models,
                "skipped": skipped}

    def save(self) -> None:
        write_json(self.path, self.to_json())


def read_suite(out: str | Path) -> dict[str, Any]:
    """suite.json of a suite folder (one error line if it is missing or unreadable)."""
    path = Path(out) / SUITE_JSON
    if not path.is_file():
        raise UngrokError(f"{out}: not a hub suite folder (no {SUITE_JSON}; run `ungrok hub score` first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UngrokError(f"{path}: unreadable ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise UngrokError(f"{path}: not a suite record (no 'models' mapping)")
    return data
