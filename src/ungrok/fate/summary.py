"""One record per (run, family): the verdict, its gate, onset, and the rule's margin if scored.

This is what `ungrok classify` prints and writes, and what reports and pre-registered
predictions read; keeping it in the library means every consumer sees the same fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ungrok.errors import UngrokError
from ungrok.fate.classify import Verdict, classify_table, letter, transient_signature
from ungrok.fate.config import DEFAULT_CONFIG, ClassifierConfig
from ungrok.fate.margins import cm_summary, timing_test

MARGIN_COLUMNS = ("run", "step", "rule", "cm", "pm")
# The numbers a record copies from its Verdict under the same names (cls and valid are written
# as fate and agree_gate); the evidence model and the prediction vocabulary read this list too.
VERDICT_MEASURES = tuple(k for k in Verdict.model_fields if k not in ("cls", "valid"))


def _margin_series(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict[int, tuple]]:
    out: dict[tuple[str, str], dict[int, tuple]] = {}
    for r in rows:
        missing = [c for c in MARGIN_COLUMNS if c not in r]
        if missing:
            raise UngrokError(f"margin table lacks column(s): {', '.join(missing)}")
        series = out.setdefault((str(r["run"]), r["rule"]), {})
        if r["step"] in series:
            raise UngrokError(f"margin table: run {r['run']} rule {r['rule']} step {r['step']} appears twice")
        series[int(r["step"])] = (r["cm"], r["pm"])
    return out


def _as_rows(table: Any) -> list[Mapping[str, Any]]:
    if table is None:
        return []
    return table.to_pylist() if hasattr(table, "to_pylist") else list(table)


def summarize(
    trajectories: Any, margins: Any = None, cfg: ClassifierConfig = DEFAULT_CONFIG
) -> list[dict[str, Any]]:
    """Classify every (run, family) and attach CM/PM processing where the margin table has the rule.

    `trajectories` and `margins` are pyarrow tables or lists of row dicts; margins has
    columns run, step, rule, cm, pm (pm may be None).
    """
    verdicts = classify_table(trajectories, cfg)
    margin = _margin_series(_as_rows(margins))
    records = []
    for (run, family), v in verdicts.items():
        rec: dict[str, Any] = {
            "run": str(run),
            "family": family,
            "fate": v.cls,
            "letter": letter(v),
            "agree_gate": "pass" if v.valid else "fail",
            "confirmatory": cfg.is_confirmatory(family),
            **{k: getattr(v, k) for k in VERDICT_MEASURES},
            "transient": transient_signature(v, cfg),
        }
        series = margin.get((str(run), family))
        if series:
            steps = sorted(series)
            pms = [series[s][1] for s in steps]
            has_pm = all(p is not None for p in pms)
            cm = cm_summary(steps, [series[s][0] for s in steps], cfg, pms if has_pm else None)
            rec.update(
                cm_final=cm.cm_final,
                cm_peak_step=cm.peak_step,
                cm_peak=cm.peak_value,
                cm_instrument_valid=cm.instrument_valid,
                cm_zero_crossing=cm.zero_crossing,
                pm_final=cm.pm_final,
                pm_at_peak=cm.pm_at_peak,
                timing=timing_test(cm.zero_crossing, v.onset, cfg.timing_lo, cfg.timing_hi),
            )
        records.append(rec)
    return records
