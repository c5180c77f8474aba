"""Loading rules from a user dir, overriding built-ins, and one-line errors for bad input."""

from __future__ import annotations

import pytest

from ungrok.errors import UngrokError
from ungrok.rules import expand_probes, get_rule, lists_for, load_rule_file, load_rules, load_shared_lists

TOY = """\
name: {name}
description: A toy rule for tests.
cues:
  - name: girls
    words: "@GIRLS"
    rule: [" she"]
    prior: [" he"]
event: {{kind: window, window: 8}}
probes:
  - id: "{{n}}"
    split: heldout
    condition: conflict
    prefix: "{{n}} sang because"
    correct: " she"
    distractor: " he"
    slots: {{n: "@GIRLS[:2]"}}
"""


def _error(fn, *args) -> str:
    with pytest.raises(UngrokError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def test_user_dir_adds_a_rule(write_rule):
    path = write_rule("toy.yaml", TOY.format(name="toy_rule"))
    rules = load_rules(path.parent)
    assert "toy_rule" in rules and "det_an_choice" in rules
    spec = get_rule("toy_rule", path.parent)
    prefixes = [it["prefix"] for it in expand_probes(spec, lists_for(spec))]
    assert prefixes == ["Lily sang because", "Mia sang because"]
    assert "toy_rule" not in load_rules()  # built-ins alone are untouched


def test_user_rule_overrides_builtin(write_rule):
    path = write_rule("mine.yaml", TOY.format(name="pronoun_gender_ref"))
    spec = get_rule("pronoun_gender_ref", path.parent)
    assert spec.description == "A toy rule for tests." and spec.event.window == 8
    assert get_rule("pronoun_gender_ref").focal  # the built-in itself is unchanged


def test_user_lists_file_overrides_shared_lists(write_rule):
    write_rule("_lists.yaml", "GIRLS: [Xena, Yara]\nEXTRA: [q]\n")
    path = write_rule("toy.yaml", TOY.format(name="toy_rule"))
    lists = load_shared_lists(path.parent)
    assert lists["GIRLS"] == ["Xena", "Yara"] and lists["EXTRA"] == ["q"]
    assert lists["BOYS"][0] == "Tom"
    spec = get_rule("toy_rule", path.parent)
    prefixes = [it["prefix"] for it in expand_probes(spec, lists_for(spec, path.parent))]
    assert prefixes == ["Xena sang because", "Yara sang because"]


def test_rule_own_lists_override_shared(write_rule):
    text = TOY.format(name="toy_rule") + "lists:\n  GIRLS: [Una]\n"
    spec = load_rule_file(write_rule("toy.yaml", text), load_shared_lists())
    assert lists_for(spec)["GIRLS"] == ["Una"]
    assert [it["prefix"] for it in expand_probes(spec, lists_for(spec))] == ["Una sang because"]


def test_unknown_rule_name_lists_known_rules():
    msg = _error(get_rule, "no_such_rule")
    assert "unknown rule 'no_such_rule'" in msg
    assert "pronoun_gender_ref" in msg and "comparative_er" in msg


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            TOY.format(name="t").replace("    words:", "    cuez: 1\n    words:"),
            "unknown field 'cuez' at cues.0",
        ),
        (TOY.format(name="t").replace('"@GIRLS"', '"@NOPE"'), "unknown list '@NOPE' at cues.0.words"),
        (TOY.format(name="t").replace('words: "@GIRLS"', 'words: "GIRLS"'), "list reference 'GIRLS' must be"),
        (
            TOY.format(name="t").replace('slots: {n: "@GIRLS[:2]"}', "slots: {m: [a]}"),
            "uses slot {n} it does not declare",
        ),
        (TOY.format(name="t").replace("window: 8}", "window: 8, size: 3}"), "unknown field 'size' at event"),
        (TOY.format(name="t").replace("split: heldout", "split: test"), "at probes.0.split"),
        (TOY.format(name="t").replace("name: t\n", ""), "missing field 'name'"),
        (TOY.format(name="t").replace('"@GIRLS[:2]"', '"@GIRLS[5:5]"'), "is empty at probes.0.slots.n"),
        (TOY.format(name="t") + "description: twice\n", "duplicate key 'description'"),
        ("name: t\n  event: [unclosed\n", "malformed YAML at line"),
        ("", "expected a mapping at the top level, got empty"),
        ("- just\n- a list\n", "expected a mapping at the top level, got list"),
        (
            "name: t\nevent: {kind: lookahead, rule: [a], prior: [b], next_regex: '['}\n",
            "is not a valid regex",
        ),
        ("name: t\nevent: {kind: sliding}\n", "does not match any of the expected tags"),
        ("name: t\nevent: {kind: window}\n", "a window rule needs at least one cue class"),
        ("name: t\nevent: {kind: ngram}\nlists: {X: [1]}\n", "valid string at lists.X.0"),
        (
            "name: t\nevent: {kind: ngram}\nmargin: {rule: a, prior: b}\n",
            "margin split 'heldout' has no conflict probes",
        ),
    ],
)
def test_bad_rule_files_give_one_line_errors(write_rule, text, expected):
    path = write_rule("bad.yaml", text)
    msg = _error(load_rule_file, path, load_shared_lists())
    assert msg.startswith(f"{path}: "), msg
    assert expected in msg, msg
    assert _error(load_rules, path.parent) == msg  # the same error through the dir loader


def test_record_field_errors_name_the_template(write_rule):
    text = TOY.format(name="t").replace('prefix: "{n} sang because"', 'prefix: "{n.first} sang"')
    msg = _error(load_rule_file, write_rule("bad.yaml", text), load_shared_lists())
    assert "template '{n}'" in msg and "no field 'first'" in msg


def test_bad_rescue_frame_in_shared_list(write_rule):
    write_rule("_lists.yaml", 'FR: ["{n} went home."]\n')
    text = TOY.format(name="t") + (
        'rescue:\n  rule_class: {names: "@RESCUE_GIRLS", pronoun: she}\n  frames: "@FR"\n'
    )
    path = write_rule("bad.yaml", text)
    msg = _error(load_rules, path.parent)
    assert "needs both {n} and {p}" in msg


def test_duplicate_rule_names_in_user_dir(write_rule):
    write_rule("a.yaml", TOY.format(name="twin"))
    path = write_rule("b.yaml", TOY.format(name="twin"))
    assert "also defined in" in _error(load_rules, path.parent)


def test_missing_rules_dir(tmp_path):
    assert "rules directory not found" in _error(load_rules, tmp_path / "nope")


def test_missing_rule_file(tmp_path):
    assert "cannot read rule file" in _error(load_rule_file, tmp_path / "x.yaml", {})


def test_shared_lists_are_copies():
    load_shared_lists()["GIRLS"].append("Mallory")
    assert "Mallory" not in load_shared_lists()["GIRLS"]
