"""Which revisions of a public model to score, and the training step each one names.

- Pythia (EleutherAI) publishes 154 revisions per model: step0; steps 1, 2, 4, …, 512;
  then every 1,000 steps to 143,000. `auto` is that whole grid. `thinned` is the
  paper code's 41-revision grid: step0, the powers of two, then 1,000, 6,000, 11,000,
  …, 141,000 (every 5,000) and 143,000 — 33 of them at step >= 100, where the
  classifier reads (docs/method.md §10).
- OLMo names its branches `stepN-tokensM` (OLMo-2: `stage1-stepN-tokensM`); `auto`
  lists the repository's branches (or, offline, the refs in the local cache) and keeps
  those whose name gives a step, in step order (the first name per step).
- Anything else needs an explicit list (`step1000,step2000`).

A revision's step is the N of its `stepN` part (`ungrok.probes.revisions.parse_step`); a revision without one
(e.g. "main") has no place on a trajectory's step axis, so the suite skips it and
says why instead of inventing a step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ungrok.errors import UngrokError
from ungrok.probes.revisions import parse_step

KEYWORDS = ("auto", "thinned")
PYTHIA_LAST_STEP = 143_000


@dataclass(frozen=True)
class Revision:
    name: str
    step: int


def pythia_grid(thinned: bool = False) -> list[str]:
    """Pythia's published revisions (154), or the paper code's thinned grid (41)."""
    early = [0] + [2**k for k in range(10)]  # 0, 1, 2, 4, ..., 512
    if thinned:
        late = [*range(1000, 141_001, 5000), PYTHIA_LAST_STEP]
    else:
        late = list(range(1000, PYTHIA_LAST_STEP + 1, 1000))
    return [f"step{s}" for s in early + late]


def family_of(model: str) -> str | None:
    """'pythia' or 'olmo' from the repository name; None for a model without a known grid."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith("pythia-"):
        return "pythia"
    if name.startswith("olmo"):
        return "olmo"
    return None


def parse_revision_spec(revisions: str | Sequence[str]) -> str | list[str]:
    """'auto' / 'thinned', or the list of revision names (a comma-separated string or a list)."""
    if isinstance(revisions, str):
        text = revisions.strip()
        if text in KEYWORDS:
            return text
        names = [r.strip() for r in text.split(",")]
    else:
        names = [str(r).strip() for r in revisions]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise UngrokError("--revisions is empty: give auto, thinned or a comma-separated list")
    for n in names:
        if n in KEYWORDS:
            raise UngrokError(f"--revisions: {n!r} is a keyword on its own, not an item of a list")
    return names


def resolve_revisions(model: str, spec: str | list[str], refs: Iterable[str] | None = None) -> list[str]:
    """The revision names to score for `model`.

    `refs` are the repository's refs (hub branches, or the local cache's refs offline);
    only OLMo's `auto` needs them. An unknown family under a keyword is an error, raised
    before any model is loaded.
    """
    if isinstance(spec, list):
        return list(spec)
    family = family_of(model)
    if family == "pythia":
        return pythia_grid(thinned=spec == "thinned")
    if family == "olmo":
        if spec == "thinned":
            raise UngrokError(f"--revisions thinned is Pythia's grid; give auto or a list for {model}")
        if refs is None:
            raise UngrokError(f"{model}: cannot list its branches for --revisions auto; give a list")
        stepped, _ = plan_steps(sorted(refs))  # the first name per step, in step order
        if not stepped:
            raise UngrokError(f"{model}: no stepN-tokensM branches found for --revisions auto")
        return [r.name for r in stepped]
    raise UngrokError(
        f"--revisions {spec}: no known revision grid for {model} (auto knows EleutherAI Pythia and "
        "AllenAI OLMo); give a comma-separated list"
    )


def plan_steps(names: Sequence[str]) -> tuple[list[Revision], list[tuple[str, str]]]:
    """Revisions with their steps, in step order, and (name, why) for those set aside."""
    kept: dict[int, Revision] = {}
    aside: list[tuple[str, str]] = []
    for name in names:
        step = parse_step(name)
        if step is None:
            aside.append(
                (name, f"revision {name!r} names no training step (expected stepN or stepN-tokensM)")
            )
        elif step in kept:
            aside.append((name, f"revision {name!r} is step {step}, like {kept[step].name!r}"))
        else:
            kept[step] = Revision(name, step)
    return [kept[s] for s in sorted(kept)], aside


def check_grids(models: list[str], spec: str | list[str]) -> None:
    """A keyword grid needs a known family: refuse before anything is asked or loaded."""
    if isinstance(spec, list):
        return
    for m in models:
        family = family_of(m)
        if family is None or (family == "olmo" and spec == "thinned"):
            resolve_revisions(m, spec, ())  # raises the one-line error for this model
