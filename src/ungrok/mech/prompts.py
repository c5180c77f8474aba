"""The prompt sets every mechanism instrument reads, tokenized once per run (docs/method.md §11).

- CM prompts: the rule's margin prompts (`margin_prompt_set`), read at the last position
  against single-token rule / prior targets. The decomposition splits the logit gap of
  two vocabulary rows, so a target that spans several tokens has no such gap: it is an
  error here, although the margin itself accepts it.
- Class prompts: the battery's held-out conflict prefixes of the rule (class "cue") and
  its held-out agree prefixes (class "control"), each with its frame (template_id), for
  cue decodability and the class direction.
- Other families: the battery's held-out conflict items of every other family, for the
  direction's non-target effect. Versions of the same rule (`R_v2` beside `R`) share its
  cue and targets, so they are not "other".
- Cue tokens: the single-token forms of the rule's conflict cue words, for OV alignment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from ungrok.errors import UngrokError
from ungrok.hashing import sha256_json_spaced
from ungrok.probes.battery import Battery
from ungrok.probes.score import BatteryPlan, TextTokenizer

CUE, CONTROL = "cue", "control"
_VERSION = re.compile(r"_v\d+$")


@dataclass(frozen=True)
class MechPrompts:
    """One rule's mechanism prompts for one tokenizer; `sha256` identifies the texts."""

    rule: str
    rule_target: str
    prior_target: str
    rule_id: int
    prior_id: int
    cm_prompts: tuple[str, ...]
    cm_ids: tuple[tuple[int, ...], ...]
    class_prompts: tuple[str, ...]
    class_ids: tuple[tuple[int, ...], ...]
    class_labels: tuple[str, ...]  # CUE or CONTROL
    class_frames: tuple[str, ...]  # template_id
    cue_words: tuple[str, ...]  # the single-token surface forms used for OV
    cue_ids: tuple[int, ...]
    other_battery: Battery | None
    tokenizer: TextTokenizer = field(repr=False, compare=False)
    prepend: tuple[int, ...] = ()

    @property
    def sha256(self) -> str:
        body = {
            "rule": self.rule,
            "rule_target": self.rule_target,
            "prior_target": self.prior_target,
            "cm_prompts": list(self.cm_prompts),
            "class_prompts": [
                [p, c, f]
                for p, c, f in zip(self.class_prompts, self.class_labels, self.class_frames, strict=True)
            ],
            "cue_words": list(self.cue_words),
            "other_battery": self.other_battery.sha256 if self.other_battery is not None else None,
        }
        return sha256_json_spaced(body)

    @cached_property
    def other_plan(self) -> BatteryPlan | None:
        """The other families' items planned once for this tokenizer (None if there are none)."""
        if self.other_battery is None:
            return None
        return BatteryPlan(self.other_battery, self.tokenizer, self.prepend)

    def cm_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return pad(self.cm_ids)

    def class_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return pad(self.class_ids)


def pad(seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, T] and each row's last real position [B].

    Right padding is safe: the model is causal, so the positions read never see the pads.
    """
    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    last = torch.tensor([len(s) - 1 for s in seqs], dtype=torch.long)
    return ids, last


def _single_token(tokenizer: TextTokenizer, text: str, what: str) -> int:
    ids = tokenizer.encode(text)
    if len(ids) != 1:
        raise UngrokError(
            f"{what} {text!r} is {len(ids)} tokens under this tokenizer; the logit-gap instruments need one"
        )
    return int(ids[0])


def _encode_prompt(
    tokenizer: TextTokenizer, text: str, prepend: tuple[int, ...], rule: str
) -> tuple[int, ...]:
    ids = tuple(int(i) for i in tokenizer.encode(text))
    unk = getattr(tokenizer, "unk_id", None)
    if not ids or (unk is not None and unk in ids):
        raise UngrokError(f"rule {rule!r}: prompt {text!r} encodes to nothing (or to the unknown token)")
    return prepend + ids


def same_rule(a: str, b: str) -> bool:
    """True for a rule and its versions (`pronoun_gender_ref`, `pronoun_gender_ref_v2`)."""
    return _VERSION.sub("", a) == _VERSION.sub("", b)


def _class_prompts(battery: Battery, rule: str) -> tuple[list[str], list[str], list[str]]:
    """Unique held-out prefixes of the rule: conflict -> cue, agree -> control (first frame wins)."""
    seen: dict[str, tuple[str, str]] = {}
    for i, it in enumerate(battery.items):
        fam, cond, split = battery.group_key(i)
        if fam == rule and split == "heldout" and cond in ("conflict", "agree"):
            seen.setdefault(it["prefix"], (CUE if cond == "conflict" else CONTROL, it["template_id"]))
    labels = [c for c, _ in seen.values()]
    if CUE not in labels or CONTROL not in labels:
        raise UngrokError(
            f"battery has no held-out {'conflict' if CUE not in labels else 'agree'} items of rule {rule!r}"
        )
    return list(seen), labels, [f for _, f in seen.values()]


def _cue_tokens(spec, lists, tokenizer: TextTokenizer) -> tuple[list[str], list[int]]:  # noqa: ANN001
    """Single-token surface forms ("Word" / " Word" per the cue class's variants) of conflict cues."""
    from ungrok.rules.spec import resolve_list

    words: list[str] = []
    ids: list[int] = []
    for cue in spec.cues:
        if cue.role != "conflict":
            continue
        for w in resolve_list(cue.words, lists):
            for form in (w if v == "bare" else " " + w for v in cue.variants):
                enc = tokenizer.encode(form)
                if len(enc) == 1 and int(enc[0]) not in ids:
                    words.append(form)
                    ids.append(int(enc[0]))
    return words, ids


def build_prompts(
    rule: str,
    battery: Battery,
    tokenizer: TextTokenizer,
    rules_dir: str | Path | None = None,
    prepend: Sequence[int] = (),
) -> MechPrompts:
    """Every prompt set of the mechanism instruments for `rule`, tokenized for `tokenizer`."""
    from ungrok.probes.margins import margin_prompt_set
    from ungrok.rules.registry import get_rule, lists_for

    spec = get_rule(rule, rules_dir)
    margin = margin_prompt_set(spec, rules_dir)
    head = tuple(int(i) for i in prepend)
    rule_id = _single_token(tokenizer, margin.rule_target, f"rule {rule!r}: rule target")
    prior_id = _single_token(tokenizer, margin.prior_target, f"rule {rule!r}: prior target")
    cm_ids = tuple(_encode_prompt(tokenizer, p, head, rule) for p in margin.cm_prompts)
    class_prompts, labels, frames = _class_prompts(battery, rule)
    class_ids = tuple(_encode_prompt(tokenizer, p, head, rule) for p in class_prompts)
    other = tuple(
        it
        for i, it in enumerate(battery.items)
        if battery.group_key(i)[1:] == ("conflict", "heldout")
        and not same_rule(battery.group_key(i)[0], rule)
    )
    cue_words, cue_ids = _cue_tokens(spec, lists_for(spec, rules_dir), tokenizer)
    return MechPrompts(
        rule=rule,
        rule_target=margin.rule_target,
        prior_target=margin.prior_target,
        rule_id=rule_id,
        prior_id=prior_id,
        cm_prompts=margin.cm_prompts,
        cm_ids=cm_ids,
        class_prompts=tuple(class_prompts),
        class_ids=class_ids,
        class_labels=tuple(labels),
        class_frames=tuple(frames),
        cue_words=tuple(cue_words),
        cue_ids=tuple(cue_ids),
        other_battery=Battery(other) if other else None,
        tokenizer=tokenizer,
        prepend=head,
    )
