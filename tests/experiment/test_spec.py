"""The experiment schema: a good file loads with every cell's training resolved; each kind of
bad input is one line naming the problem, and exit code 2 through the CLI."""

from __future__ import annotations

import pytest
import yaml

from conftest import FAMILIES, tiny_doc, write_experiment
from ungrok.errors import UngrokError
from ungrok.experiment.run import parse_sets
from ungrok.experiment.spec import deep_merge, load_experiment


def cli(argv, capsys):
    """`ungrok ARGS` with the run command registered (cli.py may not do it yet)."""
    from ungrok import cli as ungrok_cli
    from ungrok.commands import experiment

    if not any(c.name == "run" for c in ungrok_cli.app.registered_commands):
        experiment.register(ungrok_cli.app)
    code = 0
    try:
        ungrok_cli.main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr()


def test_a_good_file_loads_with_build_order_and_merged_training(tmp_path, battery):
    doc = tiny_doc()
    doc["cells"] = {  # an edit listed before its parent still builds after it
        "kill": {"kill": {"parent": "high", "rule": "pronoun_gender_ref", "rate": 0.5}},
        "resc": {"rescue": {"parent": "low", "rule": "pronoun_gender_ref", "dose": 1, "unit_from": "high",
                            "window": "0:12"}},
        "high": {"storyworld": {"tokens": 1000}, "train": {"optimizer": {"arm": "web"}}},
        "low": {"storyworld": {"tokens": 1000}, "train": {"sampler": {"max_tokens": 900}}},
    }
    exp = load_experiment(write_experiment(tmp_path, battery, doc))
    assert exp.order == ("high", "kill", "low", "resc")
    assert exp.families == tuple(FAMILIES) and exp.rules == ("pronoun_gender_ref",)
    assert exp.monitor_rules == ("pronoun_gender_ref",)
    # edits train like their parent: the kill inherits high's optimizer arm, the rescue low's budget
    assert exp.train_docs["kill"]["optimizer"] == {"arm": "web"}
    assert exp.train_docs["resc"]["sampler"] == {
        "context": 32,
        "batch_size": 8,
        "steps": 24,
        "max_tokens": 900,
    }
    assert exp.cells["resc"].rescue.gate_kind == "timing" and exp.cells["kill"].kill.gate == "kill"
    assert exp.needs_registry and exp.classifier.min_step == 0


def test_rules_default_to_the_battery_families_and_monitor_can_be_off(tmp_path, battery):
    doc = tiny_doc()
    del doc["rules"]
    doc["monitor"] = False
    exp = load_experiment(write_experiment(tmp_path, battery, doc))
    assert exp.rules == tuple(FAMILIES) and exp.monitor_rules == ()


def _change(doc, path, value):
    node = doc
    for k in path[:-1]:
        node = node[k]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


BAD = [
    (("cells", "high", "storywrld"), {}, "unknown key cells.high.storywrld"),
    (("colour",), "red", "unknown key colour"),
    (("cells", "kill", "kill", "parent"), "nowhere", "cells.kill.kill.parent: no cell named 'nowhere'"),
    (("cells", "kill", "kill", "rule"), "irregular_past", "rule 'irregular_past' has no kill spec"),
    (("cells", "kill", "kill", "rate"), 1.5, "cells.kill.kill.rate: Input should be less than or equal to 1"),
    (("batteries", "main"), "missing.jsonl", "batteries.main: .*missing.jsonl not found"),
    (("batteries", "main"), "../elsewhere.jsonl", "leaves the experiment's folder"),
    (
        ("cells", "low", "corpus"),
        "no/such/corpus",
        "a cell needs exactly one of storyworld, corpus, kill or rescue",
    ),
    (("train", "seed"), 5, "train.seed: give seeds at the top level"),
    (("train", "sampler", "contxt"), 32, "cells.high.train: unknown field sampler.contxt"),
    (("quarantined_seeds",), [2], r"seed\(s\) \[2\] are both governed"),
    (("rules",), ["no_such_rule"], "rules: unknown rule 'no_such_rule'"),
    (
        ("predictions", 0, "expr"),
        "pronoun_gender_ref is RECOVERED in all seeds of cell nowhere",
        "prediction P1",
    ),
    (("classifier", "smooth_k"), 2, "classifier: smooth_k: .*odd"),
    (("seeds",), KeyError, "seeds: required key missing"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[m[:40] for _, _, m in BAD])
def test_bad_input_is_one_line(tmp_path, battery, path, value, message):
    exp = write_experiment(tmp_path, battery, _change(tiny_doc(), path, value))
    with pytest.raises(UngrokError, match=message) as e:
        load_experiment(exp)
    assert "\n" not in str(e.value) and str(exp) in str(e.value)


def test_a_missing_built_corpus_and_a_cycle_are_one_line(tmp_path, battery):
    doc = tiny_doc()
    doc["cells"]["low"] = {"corpus": "no/such/corpus"}
    with pytest.raises(UngrokError, match=r"cells.low.corpus: .*no/such/corpus is not a corpus folder"):
        load_experiment(write_experiment(tmp_path, battery, doc))
    doc = tiny_doc()
    doc["cells"]["high"] = {"kill": {"parent": "kill", "rule": "pronoun_gender_ref", "rate": 0.5}}
    with pytest.raises(UngrokError, match="cells form a cycle: high -> kill -> high"):
        load_experiment(write_experiment(tmp_path, battery, doc))


def test_a_gate_whose_controls_the_battery_lacks_is_refused(tmp_path, battery):
    from ungrok.probes.battery import build_battery, save_battery

    small = tmp_path / "small.jsonl"
    save_battery(build_battery(["pronoun_gender_ref", "det_an_choice"]), small)
    exp = write_experiment(tmp_path, small)
    with pytest.raises(UngrokError, match="the kill gate needs the control families a_an_adjective, "
                                          "irregular_past, negation_bare_verb in a battery"):
        load_experiment(exp)
    doc = tiny_doc()
    doc["cells"]["kill"]["kill"]["gate"] = "none"
    doc["predictions"] = doc["predictions"][:1]
    assert load_experiment(write_experiment(tmp_path, small, doc)).cells["kill"].kill.gate == "none"


def test_cli_prints_one_error_line_and_exits_2(tmp_path, battery, capsys):
    exp = write_experiment(tmp_path, battery, _change(tiny_doc(), ("cells", "high", "tokens"), 5))
    code, cap = cli(["run", str(exp), "--out", str(tmp_path / "run")], capsys)
    lines = [ln for ln in cap.err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in cap.err
    assert lines[0].startswith("error:") and "unknown key cells.high.tokens" in lines[0]
    assert not (tmp_path / "run").exists()  # nothing is written before the file validates
    code, cap = cli(["run", str(exp), "--out", str(tmp_path / "run"), "--executor", "spark"], capsys)
    assert code == 2 and "--executor 'spark': use local or ray" in cap.err
    code, cap = cli(["run", str(exp), "--out", str(tmp_path / "run"), "--set", "oops"], capsys)
    assert code == 2 and "expected KEY=VALUE" in cap.err


def test_overrides_deep_merge_and_delete(tmp_path, battery):
    over = parse_sets(["train.sampler.steps=6", "cells.low=null", "predictions=[]", "name=small run"])
    assert over == {"train": {"sampler": {"steps": 6}}, "cells": {"low": None}, "predictions": [],
                    "name": "small run"}
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": None, "e": 4}, "d": {"x": 1}}) == {
        "a": {"c": 2, "e": 4}, "d": {"x": 1}}
    exp = load_experiment(write_experiment(tmp_path, battery), over)
    assert list(exp.cells) == ["high", "kill"] and exp.train_docs["kill"]["sampler"]["steps"] == 6
    assert not exp.has_predictions and exp.needs_registry  # the quarantine still needs a registry
    assert yaml.safe_load(exp.text)["cells"].keys() == {"high", "kill"}  # the run folder keeps what ran
