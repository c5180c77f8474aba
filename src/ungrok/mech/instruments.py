"""The instrument registry: every instrument `ungrok mech` runs, by name, and where it runs.

An instrument is one function of a `Ctx` (one rule's prompts at one loaded checkpoint)
returning a result whose `.rows(run, step, rule, prompts_sha256)` are the store's long-format
rows, plus where it runs: at EVERY checkpoint, or at the PAIR, the CM peak and the final
checkpoint (docs/method.md §5.2, §11.4). `mech_run` dispatches on this table and the store
and `--only` take their names from it, so adding an instrument is one function and one entry
here (docs/mechanism.md "Adding an instrument"). Imports stay inside the functions: the
experiment spec reads the names without loading torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

Where = Literal["every", "pair", "run"]
EVERY: Where = "every"  # each checkpoint, one unit each
PAIR: Where = "pair"  # the CM peak and the final checkpoint, one unit each
RUN: Where = "run"  # once per run, into its own file (not the mechanism store)


class Result(Protocol):
    def rows(self, run: str, step: int, rule: str, prompts_sha256: str) -> list[dict[str, Any]]: ...


@dataclass
class Ctx:
    """One rule at one loaded checkpoint, as an instrument sees it.

    `memo` is shared by the instruments at this (checkpoint, rule), so one reuses another's
    work (heads reads decomp's decomposition and the CM); `run_memo` by the whole `mech_run`.
    """

    model: Any  # GPT
    prompts: Any  # MechPrompts
    step: int
    run_dir: Path
    tokenizer: Any  # TokenizerFile
    memo: dict[str, Any] = field(default_factory=dict)
    run_memo: dict[str, Any] = field(default_factory=dict)
    pair: tuple[int, int] | None = None  # (peak, final), for PAIR instruments
    load: Callable[[int], Any] | None = None  # any checkpoint's model, by step

    def once(self, key: str, make: Callable[[], Any], shared: bool = False) -> Any:
        """make() the first time `key` is asked for at this (checkpoint, rule), or in this run if shared."""
        memo = self.run_memo if shared else self.memo
        if key not in memo:
            memo[key] = make()
        return memo[key]

    def decomposition(self) -> Any:
        from ungrok.mech.decompose import decompose_gap

        return self.once("decomp", lambda: decompose_gap(self.model, self.prompts))

    def cm(self) -> float:
        """The raw contrast margin (post-softcap), as `probes.margins` defines it."""
        from ungrok.mech.trace import contrast_margin

        return self.once("cm", lambda: contrast_margin(self.model, self.prompts))

    def other(self) -> Any:
        """The model at the pair's other checkpoint."""
        assert self.pair is not None and self.load is not None
        peak, final = self.pair
        return self.load(peak if self.step == final else final)


@dataclass(frozen=True)
class Instrument:
    """`fn` gives one unit's result (EVERY, PAIR), or for RUN writes its own file and returns its path.

    partnered: a unit's rows depend on the other checkpoint of the pair, so the pair's two
    units are computed, skipped and replaced together, and a run peaking at its final
    checkpoint has none. `same_pair` tells whether stored rows of both steps are this pair's.
    """

    name: str
    where: Where
    fn: Callable[[Any], Any]
    partnered: bool = False
    same_pair: Callable[[list[dict[str, Any]], int, int], bool] | None = None


# --------------------------------------------------------------------------- the instruments
def _decomp(c: Ctx) -> Result:
    return c.decomposition()


def _decode(c: Ctx) -> Result:
    from ungrok.mech import decode

    return decode.cue_decodability(c.model, c.prompts)


def _heads(c: Ctx) -> Result:
    from ungrok.mech.heads import head_report

    return head_report(c.model, c.prompts, c.decomposition(), cm=c.cm())


PATCH_METRICS = {"final": "recovery_peak_to_final", "peak": "recovery_final_to_peak"}


def _patch(c: Ctx) -> Result:
    """Source = the other checkpoint of the pair, destination = this one (its rows' step)."""
    from ungrok.mech.patching import patch_components

    assert c.pair is not None
    label = "peak_to_final" if c.step == c.pair[1] else "final_to_peak"
    return patch_components(c.other(), c.model, c.prompts, label)


def _patch_metrics_match(rows: list[dict[str, Any]], peak: int, final: int) -> bool:
    """Each step holds its own direction's metric (the final step the peak -> final recovery)."""
    want = {(final, PATCH_METRICS["final"]), (peak, PATCH_METRICS["peak"])}
    return {(r["step"], r["metric"]) for r in rows} == want


def _direction(c: Ctx) -> Result:
    from ungrok.mech.direction import direction_specificity, training_windows

    make = lambda: training_windows(c.run_dir, c.model, c.tokenizer)  # noqa: E731 - once per run
    windows, bpt = c.once("bpb_windows", make, shared=True)
    return direction_specificity(c.model, c.prompts, windows, bpt)


@dataclass
class RunCtx:
    """What a RUN instrument gets: the run, not a checkpoint."""

    run_dir: Path
    battery: Any
    run: str
    force: bool
    progress: bool


def _ngram(c: RunCtx) -> Path:
    from ungrok.mech.ngram import ngram_table

    return ngram_table(c.run_dir, c.battery, c.run, c.force, c.progress)


REGISTRY: dict[str, Instrument] = {
    i.name: i
    for i in (
        Instrument("decomp", EVERY, _decomp),
        Instrument("decode", EVERY, _decode),
        Instrument("heads", EVERY, _heads),
        Instrument("patch", PAIR, _patch, partnered=True, same_pair=_patch_metrics_match),
        Instrument("direction", PAIR, _direction),
        Instrument("ngram", RUN, _ngram),  # RUN/traj.ngram.parquet, not the mechanism store
    )
}
