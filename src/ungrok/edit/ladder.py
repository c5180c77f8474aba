"""Dose ladders: every kill rate of a ladder from one pass over the source (docs/method.md §8.2).

Each chunk of the source is read once and written once per rate. The draws are
coupled: every site gets one uniform u (the same stream a single kill with this seed
draws) and flips at rate p when u < p, so a higher rate flips a superset of the sites
of a lower one, and each rung is byte-identical to `kill` at that rate and seed. The
dose-response is therefore monotone by construction in the data: post-edit support can
only fall as the rate rises, never by sampling luck.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ungrok.atomic import write_json
from ungrok.edit.kill import CHUNK_TOKENS, CueList, check_rates, finish_output, prepare_kill, run_pass
from ungrok.edit.outputs import new_folder
from ungrok.errors import UngrokError
from ungrok.limits import check_at_least, check_seed
from ungrok.outputs import guard_output
from ungrok.rules.spec import RuleSpec

LADDER_FILE = "ladder.json"
# What ladder.json repeats of each rung's provenance.
RUNG_KEYS = ("eligible_sites", "flipped_sites", "flip_rate", "support")


def rung_name(rate: float) -> str:
    """Folder of one rate: rate_0.5, rate_0.667, rate_1."""
    return f"rate_{rate:g}"


def parse_rates(text: str) -> list[float]:
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UngrokError(f"--rates {text!r}: expected comma-separated numbers, e.g. 0.5,0.667,1") from None
    if not rates:
        raise UngrokError("--rates names no rate")
    return rates


def build_ladder(
    src: str | Path,
    out_dir: str | Path,
    rule: str | RuleSpec,
    rates: list[float],
    seed: int = 0,
    *,
    cues: CueList | None = None,
    force: bool = False,
    workers: int = 1,
    chunk: int = CHUNK_TOKENS,
    rules_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write out_dir/rate_<p>/ for every rate (one corpus each) and out_dir/ladder.json, atomically."""
    rates = sorted(check_rates(list(rates)))
    if len({rung_name(p) for p in rates}) != len(rates):
        raise UngrokError("two rates print the same; give rates that differ in their first 6 digits")
    check_seed(seed)
    check_at_least(workers, 1, "--workers")
    guard_output(out_dir, inputs=[src], force=force, folder=True)
    setup = prepare_kill(src, rule, cues, workers, rules_dir)
    with new_folder(out_dir, force) as tmp:
        outs = [tmp / rung_name(p) for p in rates]
        for o in outs:
            o.mkdir()
        edit = run_pass(setup.corpus, setup.plan, rates, outs, seed, workers, chunk, progress)
        if edit.eligible() == 0:
            raise UngrokError(f"rule {setup.spec.name!r}: no eligible site in {src}; nothing to kill")
        if not all(s.nested for s in edit.shards):  # by construction; checked on the written flips
            raise UngrokError("ladder rates do not flip nested site sets; refusing the ladder")
        rungs = []
        for r, p in enumerate(rates):
            extra = {"ladder": {"rates": rates, "one_pass": True, "nested": True}}
            prov = finish_output(setup, edit, r, p, seed, outs[r], workers, rules_dir, extra)
            rungs.append({"rate": p, "dir": rung_name(p), **{k: prov[k] for k in RUNG_KEYS}})
        summary = {
            "format": "ungrok-ladder/1",
            "rule": setup.spec.name,
            "seed": seed,
            "rates": rates,
            "nested": True,
            "one_pass": True,
            "source": prov["source"],
            "rungs": rungs,
        }
        write_json(tmp / LADDER_FILE, summary)
    return summary
