"""The embedded demo experiment is valid as shipped: cells, training configs, battery, predictions."""

from __future__ import annotations

from importlib.resources import files

from ungrok.experiment.spec import load_experiment
from ungrok.probes.battery import build_battery, canonical_bytes


def test_embedded_demo_experiment_validates(tmp_path):
    (tmp_path / "demo.yaml").write_bytes(files("ungrok.experiment").joinpath("demo.yaml").read_bytes())
    (tmp_path / "battery.jsonl").write_bytes(canonical_bytes(build_battery().items))
    exp = load_experiment(tmp_path / "demo.yaml")
    assert set(exp.spec.cells) == {"high", "low", "kill_0.5", "kill_0.8", "kill_1.0", "rescue_1"}
    # edits come after their parents (and the rescue after the cell that gives its unit)
    order = list(exp.order)
    assert order.index("high") < order.index("kill_1.0") and order.index("low") < order.index("rescue_1")
    assert len(exp.spec.seeds) >= 2 and len(exp.spec.predictions) == 7
    assert exp.train_docs["kill_0.5"]["sampler"]["steps"] == 800
    # the mechanism stage reads the focal rule with every instrument; no prediction refers to it
    assert exp.spec.mech is not None and exp.spec.mech.rules == ["pronoun_gender_ref"]
    assert exp.spec.mech.instruments == ["decomp", "decode", "heads", "patch", "direction", "ngram"]
