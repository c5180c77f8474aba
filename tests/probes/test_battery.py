"""Batteries: the paper's frozen files load as they are, build→save→load is stable, bad lines fail."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from ungrok.errors import UngrokError
from ungrok.probes.battery import (
    battery_families,
    build_battery,
    canonical_bytes,
    load_battery,
    parse_battery,
    save_battery,
)

RVP3 = [
    "pronoun_gender_ref", "reflexive_gender", "det_an_choice", "a_an_adjective", "irregular_past",
    "plural_was_were", "negation_bare_verb", "comparative_er", "modal_agreement", "modal_agreement_v2",
    "irregular_past_v2", "negation_bare_verb_v2",
]
RVP4 = RVP3 + ["pronoun_gender_ref_v2", "reflexive_gender_v2", "pronoun_gender_noun"]
KEY = ("prefix", "correct", "distractor", "family", "condition", "split", "template_id")

RVP3_SHA = "17f539b620e0380fa7f6e493698f3544e00a30174380880e2a0eeab117fc77bb"
RVP4_MD5 = "de1954a95e7ee4e4cd6cd8f34712ca8e"  # docs/method.md §3.4, the registered hash
RVP5_SHA = "88643dd504ef9c0074162eca4146fbc91232ea7fc8bf1b970488f36ce10828b6"
V1_SHA = "0b13cefbc58cc841e210e896f68c1cc2a5ad7c71ef3ca7da44acc0fc61d7d765"


def _keys(items) -> Counter:  # noqa: ANN001
    return Counter(tuple(it[k] for k in KEY) for it in items)


def test_reference_batteries_load_and_their_canonical_hash_is_the_published_one(reference):
    b3 = load_battery(reference / "batteries/rvp3/battery.jsonl")
    assert len(b3) == 2516 and b3.sha256 == RVP3_SHA == b3.file_sha256
    b4 = load_battery(reference / "batteries/rvp4/battery.jsonl")
    assert len(b4) == 3156 and hashlib.md5(canonical_bytes(b4.items)).hexdigest() == RVP4_MD5
    b5 = load_battery(reference / "batteries/rvp5/battery.jsonl")
    assert len(b5) == 864 and b5.sha256 == RVP5_SHA
    # docs/method.md §3.3 counts: focal held-out conflict = 12 items; det_an_choice 96 per cell
    counts = b3.counts()
    assert counts[("pronoun_gender_ref", "conflict", "heldout")] == 12
    assert counts[("det_an_choice", "agree", "train")] == 96
    assert len(b3.families) == 12


def test_legacy_v1_loads_grouped_by_probe_and_reports_both_hashes(reference):
    v1 = load_battery(reference / "batteries/v1/battery.jsonl")
    assert len(v1) == 1074
    assert v1.file_sha256 == V1_SHA
    assert v1.sha256 != v1.file_sha256  # its keys are in another order than the canonical one
    assert ("pronoun_gender", "legacy", "train") in v1.counts()
    assert len(v1.families) == 14


def test_battery_families_in_order_and_legacy_refused(reference):
    """`support --battery` and the registry pick rules from a battery through the one loader."""
    path = reference / "batteries/rvp3/battery.jsonl"
    assert battery_families(path) == load_battery(path).families
    assert set(battery_families(path)) == set(RVP3)
    with pytest.raises(UngrokError, match="legacy items without a 'family' field"):
        battery_families(reference / "batteries/v1/battery.jsonl")


@pytest.mark.parametrize(("version", "families"), [("rvp3", RVP3), ("rvp4", RVP4)])
def test_build_save_load_reproduces_the_reference_item_set(reference, tmp_path, version, families):
    built = build_battery(families)
    path = tmp_path / "b.jsonl"
    save_battery(built, path)
    loaded = load_battery(path)
    ref = load_battery(reference / f"batteries/{version}/battery.jsonl")
    assert _keys(loaded.items) == _keys(ref.items)
    assert loaded.items == built.items
    assert loaded.sha256 == built.sha256 == loaded.file_sha256  # saved bytes are canonical
    save_battery(loaded, tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == path.read_bytes()


def test_build_is_deterministic_and_default_is_every_rule_sorted():
    a, b = build_battery(), build_battery()
    assert a.sha256 == b.sha256
    assert a.families == sorted(a.families)
    assert build_battery(["reflexive_gender", "det_an_choice"]).families == [
        "reflexive_gender",
        "det_an_choice",
    ]


def test_unknown_rule_is_an_error():
    with pytest.raises(UngrokError, match="unknown rule 'nope'"):
        build_battery(["nope"])


def test_hash_ignores_key_order_but_not_content(battery):
    lines = [json.dumps(dict(reversed(list(it.items())))) for it in battery.items]
    shuffled = parse_battery("\n".join(lines).encode(), "x.jsonl")
    assert shuffled.sha256 == battery.sha256 and shuffled.file_sha256 != battery.sha256
    changed = [dict(it) for it in battery.items]
    changed[0]["correct"] = " her"
    assert parse_battery(canonical_bytes(changed), "y").sha256 != battery.sha256


def test_save_refuses_to_overwrite_without_force(tmp_path, battery):
    path = tmp_path / "b.jsonl"
    save_battery(battery, path)
    with pytest.raises(UngrokError, match="already exists; use --force"):
        save_battery(battery, path)
    save_battery(battery, path, force=True)


GOOD = {
    "family": "f", "condition": "conflict", "probe": "f.conflict", "category": "rule_vs_prior",
    "template_id": "t", "split": "heldout", "prefix": "Lily cried because", "correct": " she",
    "distractor": " he", "chance": 0.5, "item_id": "f.conflict/heldout/0000",
}


def _without(key):  # noqa: ANN001, ANN202
    return json.dumps({k: v for k, v in GOOD.items() if k != key})


def _with(**kw):  # noqa: ANN003, ANN202
    return json.dumps({**GOOD, **kw})


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (_without("correct"), "missing field 'correct'"),
        (_without("condition"), "missing field 'condition'"),
        (_with(condition="neutral"), "field 'condition' must be 'conflict' or 'agree'"),
        (_with(split="test"), "field 'split' must be 'train' or 'heldout'"),
        (_with(prefix=3), "field 'prefix' must be a string"),
        (_with(chance="half"), "field 'chance' must be a number"),
        (_with(probe="g.agree"), "field 'probe' must be 'family.condition'"),
        (_with(extra=1), "unknown field 'extra'"),
    ],
)
def test_bad_line_names_file_line_and_field(tmp_path, line, needle):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({**GOOD, "item_id": "ok/0"}) + "\n\n" + line + "\n")
    with pytest.raises(UngrokError) as e:
        load_battery(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:3: ") and needle in msg and "\n" not in msg


def test_repeated_item_id_and_empty_file(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    with pytest.raises(UngrokError, match=r"dup.jsonl:2: field 'item_id' .* repeats line 1"):
        load_battery(path)
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(UngrokError, match="no items"):
        load_battery(tmp_path / "e.jsonl")
    with pytest.raises(UngrokError, match="not found"):
        load_battery(tmp_path / "missing.jsonl")
