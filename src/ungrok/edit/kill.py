"""KILL: flip a rule's eligible sites to the prior form at rate p, in place (docs/method.md §8.1-8.2).

One pass over the source, shard by shard and chunk by chunk (bounded memory): find the
sites, draw one uniform per site, and write every requested rate's output at once —
a site flips at rate p when its uniform is below p, so a higher rate flips a superset
of a lower one (the ladder's nesting) and a single kill equals that rate's rung.

Reproducibility: shard i draws from numpy `default_rng([seed, i])`, one uniform per
site in stream order, so the result depends on (source, rule, cue list, seed) only —
never on worker count or chunk size.

After writing, every output is checked against the source: same token count per shard,
and the positions that differ are exactly the flipped sites, each holding the flip of
the source token. Then the support counter re-measures the rule: its rule and prior
counts must equal S - F and C + F, where F is the number of counted rule events whose
target the edit flipped (the editor knows F exactly; see `sites.py`): equality, for
every plan whose flips change nothing else the counter scores (`KillPlan.inexact` is
None: every built-in kill). The registered formula (1-p)·S/(C+p·S) is that prediction
with F replaced by its expectation p·S.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ungrok.corpus.shards import Corpus, ShardInfo, write_manifest
from ungrok.corpus.tokenizer import load_tokenizer
from ungrok.edit.outputs import (
    new_folder,
    read_span,
    shard_starts,
    source_identity,
    write_corpus,
)
from ungrok.edit.seqmatch import Seq
from ungrok.edit.sites import KillPlan, build_kill_plan
from ungrok.errors import UngrokError
from ungrok.executor import make_executor, or_raise
from ungrok.limits import check_at_least, check_seed
from ungrok.outputs import guard_output
from ungrok.rules.registry import get_rule, lists_for
from ungrok.rules.spec import RuleSpec

CHUNK_TOKENS = 4_000_000
# Largest relative mismatch between the measured and the predicted post-edit ratio, for a plan
# whose prediction is inexact (KillPlan.inexact names the flip): there a flip also creates or
# destroys events the editor does not weigh (another cue's first target, a counted cue, an
# overlapping n-gram), and how many depends on the corpus's local contexts, which only the
# counter reads. An exact plan (every built-in kill) gets no tolerance: its counts must equal
# S - F and C + F.
TOLERANCE = 0.01
RNG_NOTE = "numpy default_rng([seed, shard index]); one uniform u per eligible site in stream order; flip if u < rate"


@dataclass
class CueList:
    """Kill cues that replace the rule's own cue classes (from a file or an empirical scan)."""

    sequences: list[Seq]
    source: dict[str, Any]


@dataclass
class ShardJob:
    corpus: str
    index: int
    starts: np.ndarray
    outs: list[str]
    rates: list[float]
    seed: int
    plan: KillPlan
    chunk: int


@dataclass
class ShardResult:
    index: int
    tokens: int
    eligible: np.ndarray  # [K] sites per channel
    flipped: np.ndarray  # [R, K]
    eligible_weight: int  # counted rule events at eligible sites
    flipped_weight: np.ndarray  # [R] counted rule events whose target flipped
    counted: int  # counted rule events the editor saw (cross-check with the counter's S)
    sha256: list[str]
    nested: bool  # each rate's flipped positions contain the lower rates'


@dataclass
class EditPass:
    """All shards of one pass, summed."""

    shards: list[ShardResult] = field(default_factory=list)

    def eligible(self) -> int:
        return int(sum(int(s.eligible.sum()) for s in self.shards))

    def flipped(self, r: int) -> int:
        return int(sum(int(s.flipped[r].sum()) for s in self.shards))


def edit_shard(job: ShardJob, progress: Callable[[int], None] | None = None) -> ShardResult:
    """Find, draw, flip and write one shard for every rate; then verify what was written."""
    c = Corpus(job.corpus, verify=False)  # the parent checked it when the pass began
    plan, starts = job.plan, job.starts
    a0, b0 = int(starts[job.index]), int(starts[job.index + 1])
    name = c.manifest.shards[job.index].file
    R, K = len(job.rates), len(plan.channels)
    rng = np.random.default_rng([job.seed, job.index])
    dst_ids = plan.dst_ids
    files = [open(Path(o) / name, "wb") for o in job.outs]  # noqa: SIM115 - closed below
    hashes = [hashlib.sha256() for _ in job.outs]
    eligible = np.zeros(K, dtype=np.int64)
    flipped = np.zeros((R, K), dtype=np.int64)
    flipped_w = np.zeros(R, dtype=np.int64)
    eligible_w = counted = 0
    flips: list[list[np.ndarray]] = [[] for _ in range(R)]
    try:
        for a in range(a0, b0, job.chunk):
            b = min(a + job.chunk, b0)
            lo = max(a - plan.before(), 0)
            toks = read_span(c, starts, lo, b + plan.after())
            sites = plan.sites(toks, a - lo, b - lo)
            u = rng.random(sites.pos.size)
            own = toks[a - lo : b - lo]
            rel = sites.pos - (a - lo)
            eligible += np.bincount(sites.channel, minlength=K)
            eligible_w += int(sites.weight.sum())
            counted += sites.counted
            for r, p in enumerate(job.rates):
                hit = u < p
                out = np.array(own, copy=True)
                out[rel[hit]] = dst_ids[sites.channel[hit]]
                raw = out.tobytes()
                files[r].write(raw)
                hashes[r].update(raw)
                flipped[r] += np.bincount(sites.channel[hit], minlength=K)
                flipped_w[r] += int(sites.weight[hit].sum())
                flips[r].append(rel[hit] + (a - a0))
            if progress:
                progress(b - a)
    finally:
        for f in files:
            f.close()
    flat = [np.concatenate(x) if x else np.zeros(0, dtype=np.int64) for x in flips]
    for r, o in enumerate(job.outs):
        verify_shard(c, job.index, Path(o) / name, flat[r], plan.flip_lut, job.chunk)
    order = np.argsort(job.rates)
    nested = all(np.isin(flat[order[i]], flat[order[i + 1]]).all() for i in range(R - 1))
    return ShardResult(job.index, b0 - a0, eligible, flipped, eligible_w, flipped_w, counted,
                       [h.hexdigest() for h in hashes], bool(nested))


def verify_shard(
    c: Corpus, index: int, path: Path, flipped: np.ndarray, flip_lut: np.ndarray, chunk: int
) -> None:
    """The written shard equals the source except exactly at `flipped`, where it holds the flip."""
    info = c.manifest.shards[index]
    size = path.stat().st_size
    if size != info.tokens * c.dtype.itemsize:
        raise UngrokError(f"{path}: wrote {size} bytes for {info.tokens} tokens; the token count changed")
    if info.tokens == 0:
        return
    src = c.shard(index)
    out = np.memmap(path, dtype=c.dtype, mode="r", shape=(info.tokens,))
    found = []
    for a in range(0, info.tokens, chunk):
        s, o = np.asarray(src[a : a + chunk]), np.asarray(out[a : a + chunk])
        diff = np.flatnonzero(s != o)
        if diff.size:
            if not np.array_equal(o[diff].astype(np.int64), flip_lut[s[diff].astype(np.int64)]):
                raise UngrokError(f"{path}: a changed token is not the kill flip of the source token")
            found.append(diff + a)
    got = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    if not np.array_equal(got, np.sort(flipped)):
        raise UngrokError(
            f"{path}: {got.size} tokens differ from the source but {flipped.size} sites were flipped; "
            "bytes outside the flipped sites must be identical"
        )
    del out


def run_pass(
    c: Corpus,
    plan: KillPlan,
    rates: list[float],
    outs: list[Path],
    seed: int,
    workers: int = 1,
    chunk: int = CHUNK_TOKENS,
    progress: Callable[[int], None] | None = None,
) -> EditPass:
    """Edit every shard for every rate (outs[r] receives rate r's shards); one read of the source."""
    starts = shard_starts(c)
    jobs = [
        ShardJob(str(c.path), i, starts, [str(o) for o in outs], list(rates), seed, plan, chunk)
        for i in range(len(c.manifest.shards))
    ]
    result = EditPass()
    ex = make_executor("local", max(1, min(workers, len(jobs))))
    # in this process the callback can follow every chunk; a worker reports once per shard
    fn = functools.partial(edit_shard, progress=progress) if ex.inline else edit_shard
    for _, r in or_raise(ex.map(fn, jobs)):
        result.shards.append(r)
        if progress and not ex.inline:
            progress(r.tokens)
    result.shards.sort(key=lambda r: r.index)  # completion order varies; provenance lists shards in order
    return result


# ---------------------------------------------------------------------- checks and provenance
def check_rates(rates: list[float]) -> list[float]:
    for p in rates:
        if not (isinstance(p, (int, float)) and math.isfinite(p) and 0.0 <= p <= 1.0):
            raise UngrokError(f"rate {p} is outside [0, 1]")
    if len(set(rates)) != len(rates):
        raise UngrokError("rates must be distinct")
    return [float(p) for p in rates]


def _ratio(rule: int, prior: int) -> float:
    return (rule + 1) / (prior + 1)


def support_check(rule: str, before: dict, after: dict, rate: float, F: int, counted: int,
                  inexact: str | None = None) -> dict[str, Any]:
    """Compare the measured post-edit support with the exact and the registered prediction.

    `inexact` None (the plan's flips change nothing else the counter scores): the measured
    rule and prior counts must equal S - F and C + F. Otherwise (`inexact` says which flip
    and why) the smoothed ratios must agree within TOLERANCE. Smoothing: the counter's
    ratio is (r+1)/(p+1), on both sides, so the mismatch is 0 when the counts agree and
    never divides by zero (p = 1 predicts zero rule events). The registered formula
    (1-p)·S/(C+p·S) is unsmoothed, as the paper states it; it is reported against the
    measured unsmoothed ratio, not gated (binomial noise moves it).
    """
    S, C = before["rule_events"], before["prior_events"]
    if counted != S:
        raise UngrokError(
            f"rule {rule!r}: the editor saw {counted:,} counted rule events but the support counter "
            f"{S:,}; the kill's site logic and the counter disagree, refusing the edit"
        )
    pred_rule, pred_prior = S - F, C + F
    meas_rule, meas_prior = after["rule_events"], after["prior_events"]
    pred, meas = _ratio(pred_rule, pred_prior), _ratio(meas_rule, meas_prior)
    mismatch = abs(meas - pred) / pred
    nominal = (1 - rate) * S / (C + rate * S) if C + rate * S > 0 else None
    realised = (S - F) / (C + F) if C + F > 0 else None
    raw = meas_rule / meas_prior if meas_prior > 0 else None
    out = {
        "before": {"rule_events": S, "prior_events": C, "ratio": _ratio(S, C)},
        "after": {"rule_events": meas_rule, "prior_events": meas_prior, "ratio": meas},
        "flipped_rule_events": F,
        "predicted_after": {"rule_events": pred_rule, "prior_events": pred_prior, "ratio": pred},
        "mismatch": mismatch,
        "exact": inexact is None,
        "inexact_reason": inexact,
        "tolerance": 0.0 if inexact is None else TOLERANCE,
        "passed": (meas_rule, meas_prior) == (pred_rule, pred_prior) if inexact is None else mismatch <= TOLERANCE,
        "formula": "(1-p)*S/(C+p*S), unsmoothed",
        "formula_nominal_p": nominal,
        "formula_realised_p": realised,
        "measured_unsmoothed": raw,
        "realised_event_fraction": F / S if S else None,
    }
    if not out["passed"] and inexact is None:
        raise UngrokError(
            f"rule {rule!r} at rate {rate:g}: the counter measured {meas_rule:,} rule / {meas_prior:,} prior "
            f"events after the edit, but the flips predict exactly {pred_rule:,} / {pred_prior:,} "
            f"(S - F, C + F with F = {F:,}); the edit is refused"
        )
    if not out["passed"]:
        raise UngrokError(
            f"rule {rule!r} at rate {rate:g}: post-edit ratio {meas:.4g} measured vs {pred:.4g} predicted "
            f"(mismatch {mismatch:.2%} > {TOLERANCE:.0%}, inexact because {inexact}); the edit is refused"
        )
    return out


def _measure(corpus: Path, spec: RuleSpec, workers: int, rules_dir: str | Path | None) -> dict:
    from ungrok.support.count import count

    table = count(corpus, [spec], workers=workers, rules_dir=rules_dir)
    if spec.name in table.skipped:
        raise UngrokError(f"rule {spec.name!r} cannot be counted on {corpus}: {table.skipped[spec.name]}")
    return table.rules[spec.name]


def flip_rate_report(rate: float, eligible: int, flipped: int) -> dict[str, Any]:
    """Expected vs realised flip rate, with the binomial standard deviation of the realised one."""
    realised = flipped / eligible if eligible else 0.0
    sd = math.sqrt(rate * (1 - rate) / eligible) if eligible else 0.0
    return {
        "expected": rate,
        "realised": realised,
        "binomial_sd": sd,
        "z": (realised - rate) / sd if sd > 0 else 0.0,
    }


@dataclass
class KillSetup:
    spec: RuleSpec
    corpus: Corpus
    plan: KillPlan
    before: dict


def prepare_kill(
    src: str | Path,
    rule: str | RuleSpec,
    cues: CueList | None,
    workers: int,
    rules_dir: str | Path | None,
) -> KillSetup:
    """Resolve the rule and compile its kill; measure the source's support (S, C)."""
    spec = rule if isinstance(rule, RuleSpec) else get_rule(rule, rules_dir)
    if spec.kill is None:
        raise UngrokError(f"rule {spec.name!r} has no kill spec; it cannot be killed")
    c = Corpus(src)
    tok = load_tokenizer(c.tokenizer_path)
    plan = build_kill_plan(
        spec,
        lists_for(spec, rules_dir),
        tok,
        c.manifest.vocab_size,
        cues=cues.sequences if cues else None,
        cue_source=cues.source if cues else None,
    )
    return KillSetup(spec, c, plan, _measure(c.path, spec, workers, rules_dir))


def finish_output(
    setup: KillSetup,
    edit: EditPass,
    r: int,
    rate: float,
    seed: int,
    out: Path,
    workers: int,
    rules_dir: str | Path | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Manifest, tokenizer and support check for rate r's output folder; returns its provenance."""
    c, plan = setup.corpus, setup.plan
    shards = [
        ShardInfo(file=c.manifest.shards[s.index].file, tokens=s.tokens, sha256=s.sha256[r])
        for s in edit.shards
    ]
    eligible, flipped = edit.eligible(), edit.flipped(r)
    per_channel = [
        {
            "from": ch.src_text,
            "to": ch.dst_text,
            "eligible": int(sum(int(s.eligible[k]) for s in edit.shards)),
            "flipped": int(sum(int(s.flipped[r, k]) for s in edit.shards)),
        }
        for k, ch in enumerate(plan.channels)
    ]
    total = sum(s.tokens for s in shards)
    prov: dict[str, Any] = {
        "edit": "kill",
        "rule": setup.spec.name,
        "rate": rate,
        "seed": seed,
        "rng": RNG_NOTE,
        "event": plan.kind,
        "cues": plan.cue_source,
        "eligible_sites": eligible,
        "flipped_sites": flipped,
        "eligible_rule_events": int(sum(s.eligible_weight for s in edit.shards)),
        "channels": per_channel,
        "flip_rate": flip_rate_report(rate, eligible, flipped),
        "invariants": {
            "source_tokens": c.manifest.total_tokens,
            "tokens": total,
            "token_count_identical": total == c.manifest.total_tokens,
            "bytes_outside_flipped_sites_identical": True,  # verify_shard raised otherwise
            "changed_tokens": flipped,
            "verified_shards": len(shards),
        },
        "source": source_identity(c),
        **(extra or {}),
    }
    if total != c.manifest.total_tokens:
        raise UngrokError(f"{out}: {total:,} tokens written but the source has {c.manifest.total_tokens:,}")
    manifest = write_corpus(out, c, shards, c.manifest.documents, prov)  # the support count reads a whole corpus
    after = _measure(out, setup.spec, workers, rules_dir)
    F = int(sum(int(s.flipped_weight[r]) for s in edit.shards))
    counted = int(sum(s.counted for s in edit.shards))
    prov["support"] = support_check(setup.spec.name, setup.before, after, rate, F, counted, plan.inexact)
    write_manifest(out, manifest.model_copy(update={"source": prov}))
    return prov


def kill_corpus(
    src: str | Path,
    dst: str | Path,
    rule: str | RuleSpec,
    rate: float,
    seed: int = 0,
    *,
    cues: CueList | None = None,
    force: bool = False,
    workers: int = 1,
    chunk: int = CHUNK_TOKENS,
    rules_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Kill `rule` in `src` at `rate`, writing `dst` atomically; returns the provenance recorded."""
    (rate,) = check_rates([rate])
    check_seed(seed)
    check_at_least(workers, 1, "--workers")
    guard_output(dst, inputs=[src], force=force, folder=True, corpus=True)
    setup = prepare_kill(src, rule, cues, workers, rules_dir)
    with new_folder(dst, force) as tmp:
        edit = run_pass(setup.corpus, setup.plan, [rate], [tmp], seed, workers, chunk, progress)
        if edit.eligible() == 0:
            raise UngrokError(f"rule {setup.spec.name!r}: no eligible site in {src}; nothing to kill")
        return finish_output(setup, edit, 0, rate, seed, tmp, workers, rules_dir)
