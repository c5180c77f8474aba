"""The embedded demo experiment is valid as shipped: cells, training configs, battery, predictions."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ungrok.experiment.spec import load_experiment
from ungrok.probes.battery import build_battery, canonical_bytes


def test_embedded_demo_experiment_validates(tmp_path):
    for name in ("demo.yaml", "demo-pilot.json"):
        (tmp_path / name).write_bytes(files("ungrok.experiment").joinpath(name).read_bytes())
    (tmp_path / "battery.jsonl").write_bytes(canonical_bytes(build_battery().items))
    exp = load_experiment(tmp_path / "demo.yaml")
    kills = ["kill_0.25", "kill_0.5", "kill_0.75", "kill_1"]
    assert list(exp.spec.cells) == ["frame_ratio_8", "frame_ratio_0.03", *kills, "rescue_1", "rescue_3"]
    # the supported and the web-like cell differ in one knob only
    hi, web = exp.spec.cells["frame_ratio_8"].storyworld, exp.spec.cells["frame_ratio_0.03"].storyworld
    assert hi.model_dump(exclude={"frame_ratio"}) == web.model_dump(exclude={"frame_ratio"})
    assert (hi.frame_ratio, web.frame_ratio, hi.bridge_rate) == (8.0, 0.03, 0.04)
    # edits come after their parents (and the rescue after the cell that gives its unit)
    order = list(exp.order)
    assert all(order.index("frame_ratio_8") < order.index(k) for k in kills)
    assert order.index("frame_ratio_0.03") < order.index("rescue_1") and order.index("frame_ratio_8") < order.index("rescue_3")
    # three confirmatory seeds in every cell that carries a prediction, none of them a pilot seed
    assert exp.spec.seeds == [301, 302, 303] and not set(exp.spec.seeds) & set(exp.spec.pilot_seeds)
    assert len(exp.spec.predictions) == 9 and exp.train_docs["kill_0.5"]["sampler"]["steps"] == 1600
    # registration 2 trains in bf16 with a compiled step, the LR constant to the end (docs/transient.md)
    train = exp.train_docs["frame_ratio_0.03"]
    assert (train["precision"], train["compile"], train["optimizer"]["warmdown_start"]) == ("bf16", True, 1.0)
    assert exp.focal == "pronoun_gender_ref_v2"
    # the mechanism stage reads the focal rule with every instrument; no prediction refers to it
    assert exp.spec.mech is not None and exp.spec.mech.rules == ["pronoun_gender_ref_v2"]
    assert exp.spec.mech.cells == ["frame_ratio_0.03"]
    assert exp.spec.mech.instruments == ["decomp", "decode", "heads", "patch", "direction", "ngram"]


def test_shipped_pilot_record_uses_only_pilot_seeds_and_validates():
    """The pilot bound into the demo's registry: its seeds are the declared pilot seeds."""
    from ungrok.prereg.pilot import load_pilot_record

    path = files("ungrok.experiment").joinpath("demo-pilot.json")
    rec = load_pilot_record(Path(str(path)))
    assert rec.seeds == [101, 102, 103, 104, 105, 106, 107, 108] and len(rec.entries) == 900
    assert {e.cell.split("/")[0] for e in rec.entries} == {f"wave{i}" for i in (1, 3, "3b", 4, 5, 6, 7, 9, 10, 11)}
