"""When a kill's predicted post-edit support is exact: every built-in kill, and the flips that break it."""

from __future__ import annotations

from importlib.resources import files

import pytest

from ungrok.corpus.storyworld import storyworld_tokenizer
from ungrok.edit.sites import build_kill_plan
from ungrok.rules.registry import get_rule, lists_for, load_rules


def _plan(name, rules_dir=None):  # noqa: ANN001, ANN202
    tok = storyworld_tokenizer()
    spec = get_rule(name, rules_dir)
    return build_kill_plan(spec, lists_for(spec, rules_dir), tok, tok.get_vocab_size())


def _user_rule(tmp_path, builtin: str, name: str, old: str, new: str):  # noqa: ANN001, ANN202
    """A copy of a built-in rule under another name, with one line of its YAML replaced."""
    text = files("ungrok.rules").joinpath("builtin", f"{builtin}.yaml").read_text(encoding="utf-8")
    assert old in text
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / f"{name}.yaml").write_text(text.replace(f"name: {builtin}\n", f"name: {name}\n").replace(old, new))
    return d


@pytest.mark.parametrize("name", sorted(n for n, s in load_rules().items() if s.kill is not None))
def test_every_builtin_kill_is_exact_under_the_storyworld_tokenizer(name):
    # the capitalised pronoun channel (" She" -> " He") is invisible to the lowercase counter: still exact
    assert _plan(name).inexact is None


@pytest.mark.parametrize(
    ("builtin", "old", "new", "why"),
    [
        # window: " She" is no counted rule target, but " he" is a counted prior target
        ("pronoun_gender_ref", 'flip: {" she": " he", " She": " He"}', 'flip: {" she": " he", " She": " he"}',
         "kill flip ' She' -> ' he': ' he' is a counted prior target but ' She' no counted rule target"),
        # lookahead: "An" -> " a" converts the event but changes whether the token before it counts
        ("det_an_choice", '"An": "A"}', '"An": " a"}', "changes whether the token before it counts"),
        # n-gram: " not want" would hold two flip sources
        ("negation_bare_verb", '    " want": " wanted"\n', '    " want": " wanted"\n    " not": " the"\n',
         "holds 2 kill sources"),
    ],
)
def test_a_flip_the_counter_sees_elsewhere_makes_the_plan_inexact(tmp_path, builtin, old, new, why):
    rules = _user_rule(tmp_path, builtin, "my_kill", old, new)
    plan = _plan("my_kill", rules)
    assert plan.inexact is not None and why in plan.inexact
