"""Which rule the report leads with: the experiment's focal rule, picked in one place.

The experiment decides it (`Experiment.focal`, experiment/spec.py: the first mechanism
rule, else the classifier's anchor family when a battery probes it, else the family the
first prediction reads). `ungrok run` records it in experiment.json as ``focal.rule``
when the experiment has sweeps; for any other run folder the report asks the same
function again through RUN_DIR/experiment.yaml, the copy `ungrok run` keeps. Only when
neither answers, or the named rule has no verdict and no trajectory in this run, does the
report fall back to its own first family (the anchor first, see facts.families), and it
says so. Every section that singles out one rule (the lead, the phase diagram) asks
`focal_rule`, so they never disagree.
"""

from __future__ import annotations

from pathlib import Path

from ungrok.errors import UngrokError
from ungrok.report.data import ReportData
from ungrok.report.facts import families


def _from_spec(run_dir: Path) -> str | None:
    """Experiment.focal of the run folder's experiment.yaml; None when it is absent or no longer
    loads (a moved rules_dir, an older schema): the report still renders, on its own pick."""
    path = run_dir / "experiment.yaml"
    if not path.is_file():
        return None
    from ungrok.experiment.spec import load_experiment

    try:
        return load_experiment(path).focal
    except (UngrokError, OSError, ValueError, TypeError, KeyError):
        return None


def load_focal(data: ReportData, run_dir: Path) -> str | None:
    """The focal rule the run folder names: experiment.json's focal.rule as `ungrok run` records it
    (cheap, as run; ignored when malformed), else experiment.yaml."""
    focal = data.experiment.get("focal")
    rule = focal.get("rule") if isinstance(focal, dict) else None
    return (rule if isinstance(rule, str) else None) or _from_spec(run_dir)


def focal_rule(data: ReportData) -> tuple[str | None, str]:
    """The rule the report leads with, and why: the experiment's focal rule when this run has
    verdicts or trajectories for it (or none at all), else the report's first family."""
    named, fams = data.focal, families(data)
    if named is not None and (named in fams or not fams):
        return named, "the experiment's focal rule"
    if fams:
        why = "the anchor rule" if fams[0] == data.classifier.anchor_family else "the report's first rule"
        return fams[0], why + (f" ({named} has no verdicts)" if named else "")
    return None, "no rule has a verdict"
