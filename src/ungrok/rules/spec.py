"""The rule spec: one declaration from which every instrument for a rule is derived.

A rule says what a cue is, what the rule predicts after it, what the competing
surface prior predicts, and how far apart they may stand. The support counter,
the probe battery, the margin prompts, the kill edit and the rescue generator all
read the same spec, so a rule added in YAML gets every instrument at once.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Split = Literal["train", "heldout"]
Condition = Literal["conflict", "agree"]
ListItem = str | dict[str, str]
# "@name" refers to a named list, "@name[a:b]" to a slice of one (the paper often uses
# "the first 4" of a list); a list is inline.
ListRef = str | list[ListItem]

_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\}")
_REF = re.compile(r"^@([A-Za-z_][A-Za-z0-9_]*)(?:\[(-?\d*):(-?\d*)\])?$")


class Strict(BaseModel):
    """Base for every spec model: an unknown field is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CueClass(Strict):
    """A class of cue words and which target counts as the rule winning after them.

    For the focal rule the girl-name class has rule " she" and prior " he"; the boy-name
    class has them the other way round (its agree control).
    """

    name: str
    words: ListRef
    rule: list[str] = Field(min_length=1)
    prior: list[str] = Field(min_length=1)
    role: Condition = "conflict"
    # Surface forms of each word that count as the cue: "Word" (document- or
    # quote-initial) and " Word" (after a space).
    variants: list[Literal["bare", "space"]] = ["bare", "space"]


class WindowEvent(Strict):
    """First target after a cue: a rule event if the rule target comes first within `window`."""

    kind: Literal["window"] = "window"
    window: int = Field(16, ge=1, le=4096)


class NgramEvent(Strict):
    """Exact token-sequence occurrences of patterns (derived from the probes unless listed).

    Derived patterns are the paper's bigram counter: " " + last word of the probe
    prefix + the continuation; rule patterns from `correct`, prior from `distractor`
    of the conflict items.
    """

    kind: Literal["ngram"] = "ngram"
    rule: list[str] = []
    prior: list[str] = []


class LookaheadEvent(Strict):
    """A target token followed by a token whose text matches `next_regex` (a/an allomorphy)."""

    kind: Literal["lookahead"] = "lookahead"
    rule: list[str] = Field(min_length=1)
    prior: list[str] = Field(min_length=1)
    next_regex: str

    @field_validator("next_regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:  # re.error is not a ValueError; pydantic must see one
            raise ValueError(f"next_regex {v!r} is not a valid regex ({e})") from None
        return v


Event = Annotated[WindowEvent | NgramEvent | LookaheadEvent, Field(discriminator="kind")]


class ProbeTemplate(Strict):
    """One probe frame; expands over the cartesian product of its slots.

    Strings may use `{slot}` or `{slot.field}` (for list items that are records, e.g.
    irregular verbs with base/past/over fields).
    """

    id: str
    split: Split
    condition: Condition
    prefix: str
    correct: str
    distractor: str
    slots: dict[str, ListRef] = {}

    @model_validator(mode="after")
    def _slots_used_exist(self) -> ProbeTemplate:
        for text in (self.id, self.prefix, self.correct, self.distractor):
            for slot, _ in _SLOT.findall(text):
                if slot not in self.slots:
                    raise ValueError(f"template {self.id!r} uses slot {{{slot}}} it does not declare")
        return self


class KillSpec(Strict):
    """Turn rule events into prior events: each `flip` key becomes its value at eligible sites."""

    flip: dict[str, str] = Field(min_length=1)
    cue_classes: list[str] = []  # window rules: which cue classes' sites are eligible


class RescueClass(Strict):
    names: ListRef
    pronoun: str


class RescueSpec(Strict):
    """Synthetic rule-supporting sentences: frames with {n} (name) and {p} (pronoun).

    `frames` may be a list reference ("@RESCUE_FRAMES") so several rules share the
    paper's 12 frames; referenced frames are checked when the rule file is loaded.
    """

    rule_class: RescueClass
    control_class: RescueClass | None = None
    frames: ListRef
    sentences_per_doc: int = Field(4, ge=1)

    @field_validator("frames")
    @classmethod
    def _frames_have_slots(cls, frames: ListRef) -> ListRef:
        if isinstance(frames, list):
            check_rescue_frames(frames)
        return frames


class MarginSpec(Strict):
    """Contrast margin CM on the rule's conflict prompts and prior pull PM on neutral ones."""

    rule: str
    prior: str
    split: Split = "heldout"  # CM prompts = unique conflict prefixes of this split
    neutral_subjects: ListRef = []  # may be "@NEUTRAL_SUBJECTS" (shared list)
    neutral_frames: list[str] = []  # with {n}


class StoryworldExpression(Strict):
    """How the storyworld generator writes the rule into its stories (docs/corpora.md).

    Each template is one sentence in storyworld's slot vocabulary ({N} a name, {P} its
    pronoun, {animal}, {place}, ...). Its {CHOICE} slot is filled with a pair's rule phrase
    at rate ratio / (1 + ratio), with the prior phrase otherwise; a template without one
    is the agree context. `weight` is the rule's share of story sentences next to
    storyworld's own categories; the corpus knob `ratios.<rule>` overrides `ratio`.
    """

    ratio: float = Field(20.0, ge=0.0, le=1e6, allow_inf_nan=False)
    weight: float = Field(gt=0.0, le=1.0)
    choices: list[tuple[str, str]] = Field(min_length=1)
    templates: list[str] = Field(min_length=1)

    @field_validator("templates")
    @classmethod
    def _choices_placed(cls, templates: list[str]) -> list[str]:
        counts = [t.split().count("{CHOICE}") for t in templates]
        if max(counts) > 1:
            raise ValueError("a storyworld template holds at most one {CHOICE} slot")
        if max(counts) == 0:
            raise ValueError("no storyworld template holds the {CHOICE} slot")
        return templates


class RuleSpec(Strict):
    """A rule, declared once."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    focal: bool = False
    exploratory: bool = False
    lists: dict[str, list[ListItem]] = {}
    cues: list[CueClass] = []
    event: Event
    probes: list[ProbeTemplate] = []
    kill: KillSpec | None = None
    rescue: RescueSpec | None = None
    margin: MarginSpec | None = None
    storyworld: StoryworldExpression | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RuleSpec:
        if isinstance(self.event, WindowEvent) and not self.cues:
            raise ValueError("a window rule needs at least one cue class")
        names = {c.name for c in self.cues}
        if len(names) != len(self.cues):
            raise ValueError("cue class names must be unique")
        if self.kill is not None:
            unknown = set(self.kill.cue_classes) - names
            if unknown:
                raise ValueError(f"kill names unknown cue classes: {sorted(unknown)}")
        return self


def check_rescue_frames(frames: list[Any]) -> None:
    """A rescue frame must place both the name and the pronoun."""
    if not frames:
        raise ValueError("rescue needs at least one frame")
    for f in frames:
        if not isinstance(f, str) or "{n}" not in f or "{p}" not in f:
            raise ValueError(f"rescue frame {f!r} needs both {{n}} and {{p}}")


def resolve_list(ref: ListRef, lists: dict[str, list[Any]]) -> list[Any]:
    """Return the items a list reference names ("@name", "@name[a:b]" or an inline list)."""
    if isinstance(ref, list):
        return list(ref)
    m = _REF.match(ref)
    if m is None:
        raise ValueError(f"list reference {ref!r} must be '@name', '@name[a:b]' or a list")
    key, start, stop = m.groups()
    if key not in lists:
        raise KeyError(f"unknown list '@{key}'")
    items = list(lists[key])
    if start is None:
        return items
    return items[int(start) if start else None : int(stop) if stop else None]


def fill(text: str, values: dict[str, Any]) -> str:
    """Substitute `{slot}` / `{slot.field}` in text from slot values."""

    def sub(m: re.Match[str]) -> str:
        v = values[m.group(1)]
        if m.group(2):
            if not isinstance(v, dict) or m.group(2) not in v:
                raise KeyError(f"slot {m.group(1)!r} has no field {m.group(2)!r}")
            return str(v[m.group(2)])
        if isinstance(v, dict):
            raise KeyError(f"slot {m.group(1)!r} is a record; name a field")
        return str(v)

    return _SLOT.sub(sub, text)
