"""Storyworld: an embedded synthetic story corpus whose rule support is set by knobs.

Short stories (a protagonist, 4-10 sentences, end-of-text) over a closed lexicon, with
many named characters of both genders. Each built-in rule's support is a knob given as
a rule:prior ratio: girl name -> " she" vs " he" outside and inside the probe frames,
how rare the probe-frame construction is, the neutral-subject " he" prior, and one ratio
per other family (reflexive, gender nouns, a/an, irregular past, negation, plural,
modal, comparative), and an optional possessive family ("Sue found her ball").

Token ids are produced directly, never by encoding text: every sentence template is
pre-tokenised into an id row with slot columns, and a chunk of ~8k documents is built
as one padded (sentences, width) matrix filled with numpy in bulk, flattened with the
padding dropped. Decoding the ids and re-encoding the text with the saved tokenizer
gives the same ids (the tokenizer is word-level with GPT-2-style splitting).

Every template carries its event metadata, so the generator reports the support it
emitted ("intended support") exactly as the paper's counters see it:

- window families (docs/method.md §6.1): every sentence holding a gendered cue (name or gender
  noun) has its pronoun slot within 16 tokens after its last cue, " she" / " he" occur
  only in pronoun slots, and " herself" / " himself" only in reflexive sentences whose
  cue-free opening keeps every earlier cue more than 16 tokens away; so the first
  pronoun after each cue is known from the template alone, for the first cue of a
  two-name sentence too ("<girl> met <boy> ..., and he ..." is a prior event for the girl);
- possessives (off unless possessive_rate > 0): " her" / " his" occur only at the {POSS}
  slot of a possessive sentence, right after its one name and behind the same long
  cue-free opening as the reflexives, so each is the first " her"/" his" within 16 tokens
  after its own name and after no other cue (checked when the templates are compiled);
  the windowed count "first of her/his after a name" therefore equals the possessive
  tokens per class of the sentence's name, exactly. " she"/" he" stay in the pronoun slot,
  so a pronoun kill leaves the possessives (gender evidence it does not touch) in place;
- a/an (docs/method.md §6.3): " an"/" a" followed by a vowel-initial token only at determiner
  slots whose next word is known;
- the other families: their rule and prior forms occur only at their choice slots, so
  the counts equal the bigram patterns' counts in the stream.

By default the corpus never holds a battery pronoun-frame prompt ("Sue cried because"),
a contrast-margin prompt ("The farmer cried because") or an rvp5 pronoun/reflexive
prompt as a token sequence: the probe-frame construction is built with non-battery
names and non-margin subjects. Battery names still appear as story characters (a
name->gender rule is learned only from names the model sees); rescue names (docs/method.md §8.3)
never do, so a later rescue stays disjoint.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tokenizers import Tokenizer, pre_tokenizers

from ungrok.atomic import atomic_dir
from ungrok.corpus.shards import (
    DEFAULT_SHARD_TOKENS,
    TOKENIZER,
    Manifest,
    ShardWriter,
    dtype_for_vocab,
    write_manifest,
)
from ungrok.corpus.tokenizer import EOT, build_word_tokenizer
from ungrok.errors import UngrokError
from ungrok.hashing import sha256_file
from ungrok.limits import check_disk_room
from ungrok.rules.registry import load_rules, load_shared_lists
from ungrok.rules.spec import RuleSpec, StoryworldExpression

__all__ = [  # the upper-case lists are read from the rule registry on first use (module __getattr__)
    "BATTERY_BOYS", "BATTERY_GIRLS", "BOY_NAMES", "FEM_NOUNS", "GIRL_NAMES", "MARGIN_FRAMES",  # noqa: F822
    "MARGIN_SUBJECTS", "MASC_NOUNS", "PROBE_FRAMES", "RESCUE_BOYS", "RESCUE_GIRLS",  # noqa: F822
    "StoryworldConfig",
    "StoryworldReport",
    "build_storyworld",
    "expressed_rules",
    "forbidden_prompts",
    "storyworld_tokenizer",
    "storyworld_words",
]


def _w(text: str) -> list[str]:
    """Words of a space-separated list (keeps the long word tables readable)."""
    return text.split()


def _phr(text: str) -> list[str]:
    """Phrases of a "|"-separated list."""
    return [p.strip() for p in text.split("|")]


WINDOW = 16  # docs/method.md §6.1: the cue's window
DOCS_PER_CHUNK = 8192  # ~0.6M tokens a chunk: bounded memory, ~70 chunks for 50M tokens
P_PROTAGONIST = 0.5  # a sentence's first name is the story's protagonist this often

# --------------------------------------------------------------------------- word lists
# Story characters beyond the battery (none is a rescue name or a homograph).
OTHER_GIRLS = _w(
    "Alice Hannah Chloe Julia Olivia Sophie Ava Leah Maya Isla Freya Poppy Holly Megan Laura "
    "Helen Abby Bella Cara Dora Fiona Gina Heidi Iris Jenny Kelly Lana Mila Nell Paula Rita "
    "Sally Tina Vera Zara Becky Cindy Elsie Greta Lena Mabel Nancy Peggy Rachel Susan Tara "
    "Violet Amber Gemma Millie Nadia Phoebe Lola"
)
OTHER_BOYS = _w(
    "Bob Dan Ed Frank George Harry Ian Jim Ken Luke Matt Ned Oliver Peter Ray Rob Steve Ted "
    "Walt Arthur Bert Colin Dylan Ethan Gary Gus Hank Jason Kevin Larry Mike Nathan Otto Phil "
    "Ralph Roy Scott Toby Victor Wayne Zack Andy Bruce Derek Edgar Glen Jeff Kyle Lewis Neil "
    "Percy Seth Troy Vince Archie Bobby Ernie"
)
# Neutral subjects used in the probe-frame construction (never a margin subject).
OTHER_SUBJECTS = _w(
    "cook driver baker painter pilot singer dancer clerk guard coach writer builder gardener "
    "sailor visitor stranger runner artist shopper rider helper player"
)
# rvp5 (docs/method.md §12): out-of-distribution pronoun and reflexive frames, also kept out.
OOD_FRAMES = [
    "{n} sat by the window until",
    "{n} liked the song, but",
    "{n} kept smiling even though",
    "Did {n} find the key? Yes,",
    '"Where is {n}?" the kids asked. "I think',
    'The kids could not find {n} and said, "Maybe',
    "If {n} wins the game,",
    "{n} stayed inside since",
    "{n} promised that",
    "{n} got on the bus, and soon",
    "Once {n} found the map,",
    "{n} hid the toy. Later",
    "{n} built the tower all by",
    "{n} finished the race and felt proud of",
    "{n} talked quietly to",
    "{n} drew a funny picture of",
    "{n} wrapped the warm blanket around",
    "{n} took a deep breath and told",
    "While Mom was away, {n} looked after",
    "{n} made a sandwich just for",
]

# Every word of the paper's batteries (v1, rvp3.1, rvp4.1, rvp5 prefixes and
# continuations), so each battery item encodes without the unknown token.
BATTERY_WORDS = _w(
    """
Adam After All Amy Anna Ben Beth Billy Both By Dad Daisy Did Ella Emma Every Finn Fred Grace
I If In It Jack Jake Jane Joe John Kate Last Later Leo Let Lily Lucy Mark Max Maybe Mia
Molly Mom Nick Nobody Once One Paul Pete Rose Ruby Sam Sara She Soon Sue The There They This
Three Tim Tom Tomorrow Where While Yes Yesterday Zoe a acorn after afternoon all already
always am an and ant apple apples around asked at ate aunt away ball balloon balloons barn
beach beautiful beautifuler because before big bigger bird birds blanket block blocks blue
book bought box boy boys brave breath brother brown built bus but by cake called came can
careful carefuler cat cats chair chased children comed could counted crayon crayons cried
cup cups dad day deep did dog dogs door dressed drew duck ducks eat eated eats egg eight
elephant end enjoyed even ever falled fast faster fell felt find finds finished five flew
for forest found four frog frogs fun funny game garden gave girl girls gived go goed goes
got grandma grandpa green had happily happy he held help helped her herself hid himself his
home house huge hugged hurt in inside is jump jumped jumps just kept key kids kind king
kitchen last laughed like liked little lived look looked lost lunch made maked makes man map
mat might mom more morning must named napped near never night nine not of often old on once
one open opened orange over owl painted park picture play played plays pretty prince
princess promised proud queen quietly race rain raining ran reach reached read red round run
runned runs sad safe said sandwich sat saw school sees seven she shelf shiny shoe shoes
should since sing sings sister six sleep sleeps small smaller smiled smiling sock socks song
soon sound splashed spoon star stars stayed stone stop stoped stopped store story stronger
surprised swim swims table taked talked tall taller taught teacher telled ten than that the
themselves then there they think though three time tiny to told took tower toy toys tree
turned twins two umbrella uncle under until upon usually walk walked walks wall want wanted
warm was washed week went were when will window wins with woman words would wrapped yard
yellow
"""
)
# Punctuation pieces of the batteries (GPT-2 splitting keeps runs like '."' together).
BATTERY_PUNCT = [' "', '"', '",', '".', "'s", ",", ',"', ".", '."', ":", "?", '?"']

# Plain slot lists: a phrase per entry, words separated by spaces.
# fmt: off
_VNOUN = "apple orange egg ant owl umbrella elephant acorn octopus eagle otter anchor arrow onion igloo insect"
_CNOUN = ("ball dog cat book toy cake bird frog kite box hat cup duck fish bag shoe sock star bed drum "
          "doll bike boat cookie")
LISTS: dict[str, list[str]] = {
    "place": _w("park garden beach lake forest store school farm zoo yard river hill pond market library"),
    "cnoun": _w(_CNOUN),
    "vnoun": _w(_VNOUN),
    "anynoun": _w(_CNOUN) + _w(_VNOUN),
    "food": _w("apple orange egg onion cake cookie banana sandwich pie muffin pear plum"),
    "animal": _w("dog cat bird frog duck rabbit horse cow pig fox bear mouse puppy kitten"),
    "toy": _w("ball kite doll drum train truck puzzle"),
    "make": _w("cake kite hat boat card pie"),
    "vp_past": _phr(
        "played with a ball | looked at the sky | walked to the store | laughed a lot | "
        "helped a friend | jumped up and down | smiled at the dog | waved at the bus | "
        "picked a flower | painted a picture | danced in the rain | climbed a tree | hugged the cat | "
        "cleaned the room | kicked the ball | baked a cake | planted a seed | opened a box | "
        "called a friend | stayed in bed | rested on the grass | listened to the music | "
        "filled a bucket | fixed the bike | pulled the wagon | sang a song | drew a picture | "
        "found a shell | read a book | slept for a while"
    ),
    "vp_pres": _phr("is happy | likes it | is very proud | wants to try again | has fun"),
    "frest": _phr(
        "was tired | saw a big dog | wanted to play | had a good day | missed the bus | "
        "heard a loud noise | got a new toy | lost the game | felt very tired | was alone | "
        "broke a cup | saw the rain | heard the news | got home | found a coin | dropped the cake"
    ),
    # Cue-free openings of 12+ tokens: they keep every earlier cue more than 16 tokens
    # from the reflexive or possessive (checked when the templates are compiled).
    "rintro": [
        "After a long and busy day at the park with all the other kids",
        "On a cold and windy morning in the middle of the long winter",
        "Late in the evening , when the sun was low and the sky was red",
        "Before the big party at the house down the road from the school",
        "At the end of a long and happy day at the farm by the river",
        "During the summer , when the days were warm and the nights were short",
    ],
    "rverb": _w("hurt washed dressed enjoyed splashed surprised taught saw dried cleaned covered "
                "pushed scared"),
    "dverb": _w("saw found had got held wanted"),
    "dverb2": _w("saw found had got"),
    "reg_ed": _w("played jumped walked looked helped laughed waved danced"),
    "v3s": _phr("plays outside | jumps high | runs fast | sleeps all day | sings a song | "
                "swims in the lake | eats the cake | walks to school"),
    "adv": _w("always often usually never"),
    "daytime": _w("day afternoon morning night"),
    "modal": _w("can must should might"),
    "plrest": _phr("happy | very happy | hungry | tired | in the garden | on the table | "
                   "near the pond | all wet | so loud"),
    "sing": _w("dog cat bird frog toy duck ball cup"),
    "cmpsubj": _w("dog cat tree house ball box horse boat"),
    "good_adj": _w("beautiful careful"),
}

# fmt: on


@functools.cache
def _registry_lists() -> dict[str, Any]:
    """The lists the rules already declare (rules/builtin/_lists.yaml and the focal rule's
    frames), so storyworld holds no second copy of them; read on first use, not at import."""
    shared, rules = load_shared_lists(), load_rules()
    irregulars = {v["base"]: (v["past"], v["over"]) for v in shared["IRREGULARS"]}
    return {
        "BATTERY_GIRLS": shared["GIRLS_V2"],  # docs/method.md §3.2: the battery cue inventories
        "BATTERY_BOYS": shared["BOYS_V2"],
        "GIRL_NAMES": shared["GIRLS_V2"] + OTHER_GIRLS,
        "BOY_NAMES": shared["BOYS_V2"] + OTHER_BOYS,
        "FEM_NOUNS": shared["FEM_NOUNS"],
        "MASC_NOUNS": shared["MASC_NOUNS"],
        # docs/method.md §8.3: kept out of the generated text so a rescue injection stays disjoint.
        "RESCUE_GIRLS": shared["RESCUE_GIRLS"],
        "RESCUE_BOYS": shared["RESCUE_BOYS"],
        "RESCUE_FRAMES": shared["RESCUE_FRAMES"],
        # Irregular verbs (docs/method.md §3.2): base -> (past, over-regularised).
        "IRREGULARS": irregulars,
        "MARGIN_SUBJECTS": [s.removeprefix("The ") for s in shared["NEUTRAL_SUBJECTS"]],
        # The focal probe frames (rvp3.1, then rvp4's additions) and the contrast-margin frames
        # (docs/method.md §5.1).
        "PROBE_FRAMES": list(dict.fromkeys(
            f["text"] for name in ("pronoun_gender_ref", "pronoun_gender_ref_v2")
            for probe in rules[name].probes if probe.condition == "conflict" for f in probe.slots["f"]
        )),
        "MARGIN_FRAMES": [f.removeprefix("{n} ") for f in rules["pronoun_gender_ref"].margin.neutral_frames],
        # Choice slots storyworld fills itself: (rule phrase, prior phrase) per item, and the family
        # they support. A rule's own {CHOICE} slot comes from its YAML `storyworld:` block.
        "CHOICES": {
            "AN_OLD": ("a_an_adjective", [("an old", "a old")]),
            **{f"IRR:{b}": ("irregular_past", [(p, o)]) for b, (p, o) in irregulars.items()},
        },
    }


def __getattr__(name: str) -> Any:
    """The registry's lists as module attributes (BATTERY_GIRLS, PROBE_FRAMES, ...)."""
    lists = {} if name.startswith("_") else _registry_lists()  # dunder probes load nothing
    if name not in lists:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return lists[name]


# Templates by category. Slots: {N} name (often the protagonist), {N2} a second name,
# {FN} frame name, {P} pronoun for the nearest subject before it, {R} reflexive for the
# name before it, {POSS} possessive her/his for the name before it, {GN} gender noun,
# {OCC}/{FOCC} neutral subject, {CAPP} She/He for the protagonist, {DET} a/an for the
# next word, CHOICES keys, LISTS keys. The "frame" sentences are built from PROBE_FRAMES
# (`_own_templates`).
TEMPLATES: dict[str, list[str]] = {
    "intro": [
        "Once upon a time , there was a kid named {N} , and {P} lived in a little house .",
        "Once upon a time , {N} lived in a small town , and {P} loved to play .",
        "There was a kid called {N} , and {P} liked to play in the {place} .",
        "One day , {N} woke up early , and {P} {vp_past} .",
        "{N} was a happy kid , and {P} {vp_past} every day .",
    ],
    "name": [
        "{N} {IRR:go} to the {place} , and then {P} {vp_past} .",
        "{N} had a {cnoun} , and {P} {vp_past} .",
        "{N} looked at the {animal} , and {P} {vp_past} .",
        "In the morning , {N} woke up and {P} {vp_past} .",
        "{N} wanted to play , so {P} {vp_past} .",
        "When {N} saw the {animal} , {P} {vp_past} .",
        "{N} felt happy , so {P} {vp_past} .",
        "After lunch , {N} {reg_ed} , and then {P} {IRR:take} a nap .",
        "{N} smiled and {reg_ed} , and {P} {vp_past} .",
        "{N} had just {reg_ed} , so {P} was happy .",
        "By then {N} had {reg_ed} , and {P} {vp_past} .",
    ],
    "two_name": [
        "{N} met {N2} at the {place} , and {P} {vp_past} .",
        "{N} played with {N2} , and then {P} {vp_past} .",
        "{N} saw {N2} in the {place} , and {P} waved .",
        "{N} {IRR:give} {N2} a {cnoun} , and {P} {vp_past} .",
        "{N} called {N2} , and {P} {IRR:come} to the {place} .",
        "{N} and {N2} {IRR:go} to the {place} , and {P} {vp_past} .",
    ],
    "noun": [
        "The {GN} {IRR:go} to the {place} , and {P} {vp_past} .",
        "The {GN} had a {cnoun} , and {P} {vp_past} .",
        "The {GN} looked at the {animal} , and then {P} {vp_past} .",
        "One day , the {GN} woke up , and {P} {vp_past} .",
        "The {GN} wanted to play , so {P} {vp_past} .",
    ],
    "neutral": [
        "The {OCC} {IRR:go} to the {place} , and {P} {vp_past} .",
        "The {OCC} had a {cnoun} , and {P} {vp_past} .",
        "The {OCC} looked at the {animal} , and then {P} {vp_past} .",
        "One day , the {OCC} woke up , and {P} {vp_past} .",
    ],
    "reflexive": [
        "{rintro} , {N} {rverb} {R} , and {P} {vp_past} .",
        "{rintro} , {N} {rverb} {R} , so {P} {vp_past} .",
    ],
    "det_an": [
        "{N} {dverb} {DET} {anynoun} , and {P} {vp_past} .",
        "One day , {N} saw {DET} {anynoun} in the {place} , and {P} {vp_past} .",
        "{N} {IRR:eat} {DET} {food} , and {P} {vp_past} .",
        "There was {DET} {anynoun} in the {place} .",
        "The {animal} found {DET} {anynoun} near the {place} .",
        "It was {DET} {anynoun} .",
    ],
    "a_an_adjective": [
        "{N} {dverb2} {AN_OLD} {cnoun} , and {P} {vp_past} .",
        "There was {AN_OLD} {cnoun} in the {place} .",
        "{N} {dverb2} a big {vnoun} , and {P} {vp_past} .",
        "The {animal} found a big {vnoun} .",
    ],
    "irregular_past": [
        "Yesterday , {N} {IRR:go} to the {place} , and {P} {vp_past} .",
        "Last night , {N} {IRR:come} home late , and {P} {vp_past} .",
        "One day , {N} {IRR:run} to the {place} , and {P} {vp_past} .",
        "{N} {IRR:fall} down in the {place} , but {P} {vp_past} .",
        "{N} {IRR:make} a {make} , and {P} {vp_past} .",
        "{N} {IRR:take} the {toy} home , and {P} {vp_past} .",
        "{N} {IRR:tell} a funny story , and {P} {vp_past} .",
        "The {animal} {IRR:run} to the {place} .",
        "The {animal} {IRR:eat} the {food} .",
        "The {OCC} {IRR:give} the {animal} some food .",
        "Yesterday , {N} {reg_ed} in the {place} , and {P} {vp_past} .",
        "Last night , {N} {reg_ed} with a {toy} , and {P} {vp_past} .",
    ],
    "filler": [
        "It was a sunny day .",
        "The sun was warm and bright .",
        "The {animal} played in the {place} .",
        "They played with a {cnoun} all day .",
        "Everyone was happy .",
        "The {animal} jumped over a {cnoun} .",
        "They walked to the {place} together .",
        "{CAPP} was very happy .",
        "{CAPP} {vp_past} .",
        "The wind was cold , so they stayed inside .",
        "It started to rain .",
        "Then they all {IRR:go} home .",
        "They had a lot of fun .",
    ],
    # Bridges: the probe frames' connectives (" because", " when") after a named subject,
    # with verbs no probe frame uses. They follow global_ratio, so the general name->pronoun
    # rule has a supported route into "<name> <verb> because" before the frames' own prior
    # is learned (docs/transient.md). Off unless bridge_rate > 0.
    "bridge": [
        "{N} played outside because {P} {frest} .",
        "{N} danced when {P} {frest} .",
        "{N} walked home because {P} {frest} .",
        "{N} waved because {P} {frest} .",
        "{N} sang a song when {P} {frest} .",
        "{N} stayed inside because {P} {frest} .",
    ],
    # Possessives: gender evidence after a name that the pronoun kill does not touch
    # (" her"/" his" are not " she"/" he"). The cue-free opening keeps every earlier
    # sentence's cue more than 16 tokens from {POSS}, so each possessive is the first
    # her/his after its own name only. Off unless possessive_rate > 0; last in this table,
    # so the other templates keep their indices and default corpora stay byte-identical.
    "possessive": [
        "{rintro} , {N} found {POSS} {toy} , and {P} {vp_past} .",
        "{rintro} , {N} played with {POSS} {cnoun} , so {P} {vp_past} .",
        "{rintro} , {N} hugged {POSS} {animal} , and then {P} {vp_past} .",
        "{rintro} , {N} lost {POSS} {toy} , so {P} was sad .",
    ],
}


def _own_templates() -> dict[str, list[str]]:
    """TEMPLATES with the probe-frame construction over the focal rule's frames."""
    frames = _registry_lists()["PROBE_FRAMES"]
    named = [f"{{FN}} {f} {{P}} {{frest}} ." for f in frames]
    return {**TEMPLATES, "frame": named + [f"The {{FOCC}} {f} {{P}} {{frest}} ." for f in frames]}


# Share of the non-opening sentences per category, before the frame and two-name
# sentences (set by knobs) take their part; None: the rule's own `storyworld.weight`.
# fmt: off
CATEGORY_WEIGHTS: dict[str, float | None] = {
    "name": 0.16, "noun": 0.06, "neutral": 0.05, "reflexive": 0.04, "det_an": 0.09,
    "a_an_adjective": 0.05, "irregular_past": 0.08, "negation_bare_verb": None, "plural_was_were": None,
    "modal_agreement": None, "comparative_er": None, "filler": 0.14,
}
# fmt: on
# Where the built-in rules' sentences stand among storyworld's own (the template order is
# part of what a seed generates, so it is fixed); other rules' sentences follow, by name.
_TEMPLATE_ORDER = (
    "intro", "name", "two_name", "noun", "neutral", "frame", "reflexive", "det_an", "a_an_adjective",
    "irregular_past", "negation_bare_verb", "modal_agreement", "plural_was_were", "comparative_er",
    "filler", "bridge", "possessive",
)
PUNCT = {",", "."}
# One-token slots: subjects drawn from the engine's pools (slot -> kind), and word pairs
# (slot -> (kind, (the word written when the slot's draw is true, the other))).
_SUBJECT_SLOTS = {"N": "name", "N2": "name", "FN": "name", "GN": "gnoun", "OCC": "occ", "FOCC": "occ"}
_CUE_SLOTS = {"N", "N2", "FN", "GN"}
_PAIR_SLOTS = {
    "P": ("pron", ("she", "he")),
    "R": ("refl", ("herself", "himself")),
    "POSS": ("poss", ("her", "his")),
    "CAPP": ("capp", ("She", "He")),
    "DET": ("det", ("an", "a")),
}

# --------------------------------------------------------------------------- config
Ratio = Annotated[float, Field(ge=0.0, le=1e6, allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class StoryworldConfig(BaseModel):
    """Knobs of the storyworld generator.

    Ratios are rule:prior (0.05 ... 20 and beyond) and are realised in expectation. One
    limit: a two-name sentence always gives one of its names a prior event, so with
    two_name_rate > 0 the realisable global_ratio (and boy_ratio) is capped (about 40
    at the defaults); lower two_name_rate for more extreme ratios. The report states
    the counts actually emitted either way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Size: the corpus ends at the first document end at or after `tokens` (EOT included).
    tokens: int = Field(10_000_000, ge=1, description="target total tokens")
    seed: int = Field(0, ge=0)
    shard_tokens: int = Field(DEFAULT_SHARD_TOKENS, ge=1)
    # Focal rule (pronoun_gender_ref).
    global_ratio: Ratio = Field(8.0, description="girl name -> first pronoun she:he outside the probe frames")
    frame_ratio: Ratio = Field(
        8.0, description="girl name -> she:he in the probe-frame construction ('<name> cried because')"
    )
    frame_rate: float = Field(
        0.02, ge=0.0, le=0.5, description="fraction of sentences that are probe-frame constructions"
    )
    neutral_he_ratio: Ratio = Field(
        4.0, description="neutral subject ('The cook') -> he:she, in and outside the frames"
    )
    boy_ratio: Ratio = Field(20.0, description="boy name / masculine noun -> he:she and himself:herself")
    frame_neutral_share: Share = Field(
        0.3, description="share of probe-frame sentences with a neutral subject (rest: names)"
    )
    bridge_rate: float = Field(
        0.0,
        ge=0.0,
        le=0.3,
        description="fraction of sentences '<name> <other verb> because|when <pronoun>' (global_ratio)",
    )
    possessive_rate: float = Field(
        0.0,
        ge=0.0,
        le=0.3,
        description="fraction of sentences '<opening> , <name> found her|his <toy> , and <pronoun> ...'",
    )
    possessive_ratio: Ratio = Field(
        20.0, description="girl name -> her:his in the possessive sentences (boys: boy_ratio his:her)"
    )
    two_name_rate: float = Field(
        0.03,
        ge=0.0,
        le=0.2,
        description="fraction of sentences '<name> met <name> ..., and <pronoun of the second>'",
    )
    # Other families: rule form : prior form.
    noun_ratio: Ratio = Field(20.0, description="feminine noun -> she:he")
    reflexive_ratio: Ratio = Field(20.0, description="girl name -> herself:himself")
    det_an_ratio: Ratio = Field(20.0, description="' an':' a' before vowel-initial nouns")
    a_an_adjective_ratio: Ratio = Field(20.0, description="' an old':' a old'")
    irregular_past_ratio: Ratio = Field(20.0, description="went:goed, ran:runned, ...")
    ratios: dict[str, Ratio] = Field(
        default_factory=dict,
        description="rule name -> rule:prior ratio, for every rule with a storyworld expression "
        "(negation_bare_verb, modal_agreement, plural_was_were, comparative_er, yours); "
        "default: the rule's own",
    )
    # Story shape: sentences per document, uniform.
    min_sentences: int = Field(4, ge=2, le=64)
    max_sentences: int = Field(10, ge=2, le=64)
    # Disjointness.
    allow_probe_prompts: bool = Field(
        False, description="battery names and margin subjects in the probe frames too"
    )
    holdout_battery_names: bool = Field(False, description="no battery name anywhere in the text")

    @model_validator(mode="after")
    def _consistent(self) -> StoryworldConfig:
        if self.min_sentences > self.max_sentences:
            raise ValueError("min_sentences must not exceed max_sentences")
        mean = (self.min_sentences + self.max_sentences) / 2
        rates = self.frame_rate + self.two_name_rate + self.bridge_rate + self.possessive_rate
        body = rates * mean / (mean - 1)
        if body > 0.9:
            raise ValueError(
                "frame_rate + two_name_rate + bridge_rate + possessive_rate leave too few other "
                "sentences for this story length"
            )
        return self


# --------------------------------------------------------------------------- report
class StoryworldReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    out_dir: str
    total_tokens: int
    documents: int
    sentences: int
    frame_sentences: int
    vocab_size: int
    dtype: str
    shards: int
    notes: list[str] = []
    support: dict[str, dict[str, Any]]  # the kernel's count per rule (`ungrok support --json` rows)


# --------------------------------------------------------------------------- lexicon
def expressed_rules(rules: dict[str, RuleSpec] | None = None) -> dict[str, StoryworldExpression]:
    """The rules storyworld writes from their YAML `storyworld:` block, by name (default: the
    built-in registry)."""
    rules = load_rules() if rules is None else rules
    return {name: spec.storyworld for name, spec in sorted(rules.items()) if spec.storyworld is not None}


def _templates(expressed: dict[str, StoryworldExpression]) -> list[tuple[str, str]]:
    """(category, template) in generation order: storyworld's own and the built-in rules'
    at their fixed places, then any other rule's."""
    order = list(_TEMPLATE_ORDER) + [r for r in expressed if r not in _TEMPLATE_ORDER]
    own = _own_templates()
    out: list[tuple[str, str]] = []
    for cat in order:
        texts = own.get(cat) or (expressed[cat].templates if cat in expressed else [])
        out += [(cat, t) for t in texts]
    return out


def _weights(expressed: dict[str, StoryworldExpression]) -> dict[str, float]:
    """Category weights: storyworld's own, the expressed rules' from their YAML."""
    out = {c: w if w is not None else expressed[c].weight for c, w in CATEGORY_WEIGHTS.items() if w or c in expressed}
    out.update({r: e.weight for r, e in expressed.items() if r not in out})
    return out


def _words(texts: list[str]) -> set[str]:
    """The literal words of templates and phrases (slots left out)."""
    return {w for t in texts for w in t.split() if not (w.startswith("{") and w.endswith("}"))}


def _expression_words(expressed: dict[str, StoryworldExpression]) -> tuple[str, ...]:
    """Words the rules' storyworld expressions write; each must be a plain word or , ."""
    words: set[str] = set()
    for name, e in expressed.items():
        ws = _words(e.templates + [x for pair in e.choices for x in pair])
        bad = sorted(w for w in ws - PUNCT if not w.isalpha())
        if bad:
            raise UngrokError(
                f"{name}: storyworld writes plain words and ' , ' / ' . ' only; {bad[0]!r} is neither"
            )
        words |= ws
    return tuple(sorted(words - PUNCT))


@functools.lru_cache(maxsize=4)
def storyworld_words(extra: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(words, punctuation) of the closed lexicon: all the generator can emit (with the
    built-in rules' expressions and `extra`), every battery word, the rescue names and
    frames and the margin subjects."""
    lx = _registry_lists()
    own = [t for texts in _own_templates().values() for t in texts] + [p for ps in LISTS.values() for p in ps]
    own += [x for _, items in lx["CHOICES"].values() for pair in items for x in pair]
    words = _words(own) - PUNCT
    words |= set(_expression_words(expressed_rules())) | set(extra)
    for key in ("GIRL_NAMES", "BOY_NAMES", "RESCUE_GIRLS", "RESCUE_BOYS", "FEM_NOUNS", "MASC_NOUNS"):
        words |= set(lx[key])
    words |= set(lx["MARGIN_SUBJECTS"] + OTHER_SUBJECTS + BATTERY_WORDS)
    words |= {"she", "he", "herself", "himself", "She", "He", "a", "an", "A", "An"}
    for f in lx["RESCUE_FRAMES"]:
        words |= {w.strip(",.") for w in f.replace("{n}", "").replace("{p}", "").split()}
    words.discard("")
    punct = sorted(set(BATTERY_PUNCT) | PUNCT)
    return sorted(words), punct


@functools.lru_cache(maxsize=4)
def _tokenizer_json(extra: tuple[str, ...] = ()) -> str:
    words, punct = storyworld_words(extra)
    return build_word_tokenizer(words, punct).to_str()


def storyworld_tokenizer() -> Tokenizer:
    """The word-level tokenizer every storyworld corpus uses (same lexicon -> same ids)."""
    return Tokenizer.from_str(_tokenizer_json())


def forbidden_prompts(names: list[str] | None = None) -> list[str]:
    """Prompts the default corpus never holds as a token sequence: the battery pronoun-frame
    prompts (names and gender nouns), the contrast-margin prompts and the rvp5 pronoun and
    reflexive prompts."""
    lx = _registry_lists()
    names = list(lx["BATTERY_GIRLS"] + lx["BATTERY_BOYS"]) if names is None else names
    out = [f"{n} {f}" for n in names for f in lx["PROBE_FRAMES"]]
    out += [f"The {x} {f}" for x in lx["FEM_NOUNS"] + lx["MASC_NOUNS"] for f in lx["MARGIN_FRAMES"]]
    out += [f"The {s} {f}" for s in lx["MARGIN_SUBJECTS"] for f in lx["MARGIN_FRAMES"]]
    out += [fr.format(n=n) for n in names for fr in OOD_FRAMES]
    return out


def _words_of(text: str) -> tuple[str, ...]:
    pt = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tuple(p.replace("Ġ", "") for p, _ in pt.pre_tokenize_str(text))


# --------------------------------------------------------------------------- compiled templates
PAD = -1


def _padded(rows: list[Any], width: int) -> np.ndarray:
    """Id rows in one int32 matrix, each padded with PAD to `width`."""
    mat = np.full((len(rows), width), PAD, dtype=np.int32)
    for i, r in enumerate(rows):
        mat[i, : len(r)] = r
    return mat


@dataclass
class _Slot:
    name: str  # slot text without braces
    kind: str  # name pron refl poss capp gnoun occ det list choice
    col: int
    width: int
    min_width: int
    mat: np.ndarray | None = None  # list phrases (n, width)
    vowel: np.ndarray | None = None  # list phrases: first token vowel-initial
    rule: np.ndarray | None = None  # choice: rule phrases (n, width)
    prior: np.ndarray | None = None
    family: str = ""
    ref: int = -1  # pron/refl/poss: referent slot; det: the next slot; N2: the N slot
    alts: list[tuple[str, ...]] = field(default_factory=list)  # word-level alternatives


@dataclass
class _Template:
    cat: str
    text: str
    base: np.ndarray
    slots: list[_Slot]
    cue_links: list[tuple[int, int]]  # (subject slot, its pronoun slot)
    refl_links: list[tuple[int, int]]
    poss_links: list[tuple[int, int]]  # (name slot, its possessive slot)
    two_name: bool
    n_single: int  # name slots in a one-name construction (the compensated pronoun)


class _Engine:
    """Templates compiled against the tokenizer for one config."""

    def __init__(self, cfg: StoryworldConfig, rules: dict[str, RuleSpec] | None = None):
        self.cfg = cfg
        self.expressed = expressed_rules(rules)
        unknown = sorted(set(cfg.ratios) - set(self.expressed))
        if unknown:
            raise UngrokError(
                f"storyworld ratios name {', '.join(unknown)}, which no storyworld expression writes; "
                f"rules with one: {', '.join(self.expressed)}"
            )
        self.tokenizer_json = _tokenizer_json(_expression_words(self.expressed))
        self.tok = Tokenizer.from_str(self.tokenizer_json)
        self.vocab_size = self.tok.get_vocab_size()
        self.eot = self.tok.token_to_id(EOT)
        v = self.tok.get_vocab()
        self.bare = np.arange(self.vocab_size, dtype=np.int32)
        self.vowel_tok = np.zeros(self.vocab_size, dtype=bool)
        for piece, i in v.items():
            if piece.startswith("Ġ") and len(piece) > 1:
                w = piece[1:]
                if w in v:
                    self.bare[i] = v[w]
                self.vowel_tok[i] = w[0] in "aeiouAEIOU"
        self.pair = {kind: (self.sid(a), self.sid(b)) for kind, (a, b) in _PAIR_SLOTS.values()}

        lx = _registry_lists()
        hold = cfg.holdout_battery_names
        girls = OTHER_GIRLS if hold else lx["GIRL_NAMES"]
        boys = OTHER_BOYS if hold else lx["BOY_NAMES"]
        frame_girls = girls if cfg.allow_probe_prompts else OTHER_GIRLS
        frame_boys = boys if cfg.allow_probe_prompts else OTHER_BOYS
        self.girls = self.ids(girls)
        self.boys = self.ids(boys)
        self.frame_girls = self.ids(frame_girls)
        self.frame_boys = self.ids(frame_boys)
        self.in_frame_pool = np.zeros(self.vocab_size, dtype=bool)
        self.in_frame_pool[np.concatenate([self.frame_girls, self.frame_boys])] = True
        self.fem, self.masc = self.ids(lx["FEM_NOUNS"]), self.ids(lx["MASC_NOUNS"])
        occ = lx["MARGIN_SUBJECTS"] + OTHER_SUBJECTS
        focc = occ if cfg.allow_probe_prompts else OTHER_SUBJECTS
        self.occ, self.focc = self.ids(occ), self.ids(focc)
        self.name_words = {
            "N": girls + boys,
            "N2": girls + boys,
            "FN": frame_girls + frame_boys,
            "GN": lx["FEM_NOUNS"] + lx["MASC_NOUNS"],
            "OCC": occ,
            "FOCC": focc,
        }
        self.templates = [self._compile(cat, text) for cat, text in _templates(self.expressed)]
        self.is_frame = np.array([t.cat == "frame" for t in self.templates])
        self.width = max(t.base.size for t in self.templates)
        self.base = _padded([t.base for t in self.templates], self.width + 1)
        self._check_windows()
        if not cfg.allow_probe_prompts:
            self._check_forbidden()
        self._probabilities()

    # ---- ids
    def sid(self, word: str) -> int:
        """Id of a word as it appears after a space (punctuation: as it is)."""
        piece = word if word in PUNCT else "Ġ" + word
        i = self.tok.token_to_id(piece)
        if i is None:
            raise UngrokError(f"storyworld word {word!r} is not in the lexicon")
        return int(i)

    def ids(self, words: list[str]) -> np.ndarray:
        return np.array([self.sid(w) for w in words], dtype=np.int32)

    def _phrases(self, phrases: list[str]) -> tuple[np.ndarray, int, list[tuple[str, ...]]]:
        """Phrases as a PAD-padded id matrix, the shortest one's length, and their words."""
        words = [tuple(p.split()) for p in phrases]
        rows = [[self.sid(w) for w in ws] for ws in words]
        return _padded(rows, max(map(len, rows))), min(map(len, rows)), words

    # ---- compile
    def _compile(self, cat: str, text: str) -> _Template:
        base: list[int] = []
        slots: list[_Slot] = []
        for item in text.split():
            col = len(base)
            if not (item.startswith("{") and item.endswith("}")):
                base.append(self.sid(item))
                continue
            slot = self._slot(item[1:-1], col, cat)
            slots.append(slot)
            base.extend([PAD] * slot.width)
        # Links: a pronoun refers to the nearest subject before it; a reflexive to the name.
        cue_links: list[tuple[int, int]] = []
        refl_links: list[tuple[int, int]] = []
        poss_links: list[tuple[int, int]] = []
        subj = -1
        for i, s in enumerate(slots):
            if s.name in _SUBJECT_SLOTS:
                subj = i
            elif s.kind in ("pron", "refl", "poss"):
                if subj < 0:
                    raise UngrokError(f"storyworld template {text!r}: {{{s.name}}} has no subject before it")
                s.ref = subj
                if s.kind == "refl":
                    refl_links.append((subj, i))
                if s.kind == "poss":
                    if slots[subj].name != "N":
                        raise UngrokError(f"storyworld template {text!r}: a possessive refers to a {{N}} name")
                    poss_links.append((subj, i))
            elif s.kind == "det":
                s.ref = i + 1
        for i, s in enumerate(slots):
            # A cue's event is the first pronoun after it (for the first name of a two-name
            # sentence: the second name's pronoun). Neutral subjects are no cue; their
            # pronoun is tallied for the report only.
            nxt = next((j for j in range(i + 1, len(slots)) if slots[j].kind == "pron"), -1)
            if s.name in _CUE_SLOTS:
                if nxt < 0:
                    raise UngrokError(f"storyworld template {text!r}: cue {{{s.name}}} has no {{P}} after it")
                cue_links.append((i, nxt))
            elif s.kind == "occ" and nxt >= 0 and slots[nxt].ref == i:
                cue_links.append((i, nxt))
            if s.name == "N2":
                s.ref = next(j for j in range(i) if slots[j].name == "N")
        two = any(s.name == "N2" for s in slots)
        n_single = 0 if two else sum(s.name == "N" for s in slots)
        return _Template(
            cat, text, np.array(base, dtype=np.int32), slots, cue_links, refl_links, poss_links, two, n_single
        )

    def _slot(self, name: str, col: int, cat: str) -> _Slot:
        if name in _SUBJECT_SLOTS:
            return _Slot(name, _SUBJECT_SLOTS[name], col, 1, 1, alts=[(w,) for w in self.name_words[name]])
        if name in _PAIR_SLOTS:
            kind, words = _PAIR_SLOTS[name]
            return _Slot(name, kind, col, 1, 1, alts=[(w,) for w in words])
        choices = _registry_lists()["CHOICES"]
        if name in choices or (name == "CHOICE" and cat in self.expressed):
            fam, items = choices[name] if name in choices else (cat, self.expressed[cat].choices)
            # Rule and prior phrases in one matrix, so both get the same width.
            mat, mn, alts = self._phrases([r for r, _ in items] + [p for _, p in items])
            n = len(items)
            return _Slot(
                name, "choice", col, mat.shape[1], mn, rule=mat[:n], prior=mat[n:], family=fam, alts=alts
            )
        if name in LISTS:
            mat, mn, alts = self._phrases(LISTS[name])
            vowel = self.vowel_tok[mat[:, 0]]
            return _Slot(name, "list", col, mat.shape[1], mn, mat=mat, vowel=vowel, alts=alts)
        raise UngrokError(f"storyworld template of {cat}: unknown slot {{{name}}}")

    # ---- checks (programming errors in the tables, not user errors)
    def _check_windows(self) -> None:
        """Every cue sees its own pronoun within the window; reflexives and possessives are
        out of reach of earlier sentences' cues, and " her"/" his" occur only at possessive
        slots (so the windowed counts are exact)."""
        tails: list[int] = []  # tokens after a cue up to and including its sentence's "."
        pre_r: list[int] = []  # tokens before a reflexive or a possessive in its sentence
        for t in self.templates:
            # A slot's col is its offset with every slot before it at its widest.
            starts, length = self._shortest(t)
            for c, p in t.cue_links:
                d = t.slots[p].col - t.slots[c].col
                if d > WINDOW:
                    raise UngrokError(f"storyworld template {t.text!r}: pronoun up to {d} tokens after its cue")
                if t.slots[c].kind in ("name", "gnoun"):
                    tails.append(length - starts[c] - 1)
            for what, links in (("reflexive", t.refl_links), ("possessive", t.poss_links)):
                for _n, r in links:
                    pre_r.append(starts[r])
                    cues = [k for k, s in enumerate(t.slots[:r]) if s.kind in ("name", "gnoun")]
                    if len(cues) != 1:
                        raise UngrokError(f"storyworld template {t.text!r}: a {what} needs exactly one cue before it")
                    if t.slots[r].col - starts[cues[0]] > WINDOW:
                        raise UngrokError(f"storyworld template {t.text!r}: {what} beyond the window of its cue")
            if len(t.poss_links) > 1:
                raise UngrokError(f"storyworld template {t.text!r}: at most one possessive a sentence")
            written = [t.base] + [m.ravel() for s in t.slots for m in (s.mat, s.rule, s.prior) if m is not None]
            if np.isin(self.pair["poss"], np.concatenate(written)).any():
                raise UngrokError(f"storyworld template {t.text!r}: ' her'/' his' outside a possessive slot")
        # A cue c sentences before a reflexive or possessive is tail(c) + pre(R) + 1 tokens
        # away (more with an end-of-text between): keep that beyond the window.
        if pre_r and min(tails) + min(pre_r) + 1 <= WINDOW:
            raise UngrokError("storyworld: reflexive/possessive openings are too short for exact windows")

    @staticmethod
    def _shortest(t: _Template) -> tuple[list[int], int]:
        """Each slot's token offset, and the sentence's length, with every slot at its shortest."""
        starts: list[int] = []
        slack = 0  # columns the slots so far leave unused at their shortest
        for s in t.slots:
            starts.append(s.col - slack)
            slack += s.width - s.min_width
        return starts, t.base.size - slack

    def _check_forbidden(self) -> None:
        trie: dict[str, Any] = {}
        for p in forbidden_prompts():
            node = trie
            for w in _words_of(p):
                node = node.setdefault(w, {})
            node["\0"] = True
        for t in self.templates:
            slots = iter(t.slots)  # each word of the template: its alternatives
            items = [next(slots).alts if w.startswith("{") else [(w,)] for w in t.text.split()]
            for i, alts in enumerate(items):
                for ph in alts:
                    for j in range(len(ph)):
                        if ph[j] in trie and _walk(items, i, ph, j, trie):
                            raise UngrokError(f"storyworld template {t.text!r} can emit a forbidden probe prompt")

    # ---- probabilities
    def _probabilities(self) -> None:
        cfg = self.cfg

        def q(r: float) -> float:
            return r / (1.0 + r)

        cats: dict[str, list[int]] = {}
        for i, t in enumerate(self.templates):
            cats.setdefault(t.cat, []).append(i)
        mean = (cfg.min_sentences + cfg.max_sentences) / 2
        scale = mean / (mean - 1)
        f, tw, br = cfg.frame_rate * scale, cfg.two_name_rate * scale, cfg.bridge_rate * scale
        po = cfg.possessive_rate * scale
        p = np.zeros(len(self.templates))
        rest = 1.0 - f - tw - br - po  # po = 0 leaves every default probability bit-identical
        weights = _weights(self.expressed)
        total_w = sum(weights.values())
        for cat, ws in weights.items():
            p[cats[cat]] = rest * ws / total_w / len(cats[cat])
        for cat, rate in (("two_name", tw), ("bridge", br), ("possessive", po)):
            p[cats[cat]] = rate / len(cats[cat])
        half = len(_registry_lists()["PROBE_FRAMES"])
        for k, i in enumerate(cats["frame"]):
            share = (1 - cfg.frame_neutral_share) if k < half else cfg.frame_neutral_share
            p[i] = f * share / half
        self.intro_ids = np.array(cats["intro"])
        self.body_ids = np.nonzero(p > 0)[0]
        self.body_p = p[self.body_ids] / p[self.body_ids].sum()
        # Compensate the one-name pronoun so that, with the two-name sentences' side
        # events (the first name sees the second name's pronoun), every girl-name cue
        # outside the frames sees " she" at rate q(global_ratio) in expectation.
        single = sum(self.templates[i].n_single for i in self.intro_ids) / len(self.intro_ids)
        single += (mean - 1) * sum(p[i] * t.n_single for i, t in enumerate(self.templates))
        two = (mean - 1) * sum(p[i] for i, t in enumerate(self.templates) if t.two_name)
        qg, qb = q(cfg.global_ratio), q(cfg.boy_ratio)
        c = 0.5 * two / single if single else 0.0
        self.q_girl = qg
        self.q_boy = qb
        self.a_girl = float(np.clip(qg + c * (qg + qb - 1), 0, 1))
        self.a_boy = float(np.clip(qb + c * (qb + qg - 1), 0, 1))
        # Where the compensation had to be clipped, say what to expect instead.
        self.notes: list[str] = []
        n_s, n_c, n_x = 0.5 * single, 0.75 * two, 0.25 * two
        for knob, want, a, other in (
            ("global_ratio", qg, self.a_girl, qb),
            ("boy_ratio", qb, self.a_boy, qg),
        ):
            got = (n_s * a + n_c * want + n_x * (1 - other)) / (n_s + n_c + n_x)
            if abs(got - want) > 1e-9:
                self.notes.append(
                    f"{knob} is beyond what two_name_rate={cfg.two_name_rate} allows: "
                    f"expect about {got / (1 - got) if got < 1 else math.inf:.3g}"
                )
        self.q_frame = q(cfg.frame_ratio)
        self.q_neutral_he = q(cfg.neutral_he_ratio)
        self.q_noun = q(cfg.noun_ratio)
        self.q_refl = q(cfg.reflexive_ratio)
        self.q_poss = q(cfg.possessive_ratio)
        self.q_family = {
            "det_an_choice": q(cfg.det_an_ratio),
            "a_an_adjective": q(cfg.a_an_adjective_ratio),
            "irregular_past": q(cfg.irregular_past_ratio),
            **{name: q(cfg.ratios.get(name, e.ratio)) for name, e in self.expressed.items()},
        }

    # ---- generation
    def chunk(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One chunk: (id matrix (S, width+1) with PAD, which sentences are probe-frame
        constructions, sentences per doc, first sentence of each doc). Depends only on the
        config and the index."""
        cfg = self.cfg
        rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(index,)))
        D = DOCS_PER_CHUNK
        nsent = rng.integers(cfg.min_sentences, cfg.max_sentences + 1, D)
        S = int(nsent.sum())
        starts = np.cumsum(nsent) - nsent
        doc = np.repeat(np.arange(D), nsent)
        first = np.zeros(S, dtype=bool)
        first[starts] = True
        last = np.zeros(S, dtype=bool)
        last[starts + nsent - 1] = True
        pg = rng.random(D) < 0.5
        gi = rng.integers(0, self.girls.size, D)
        bi = rng.integers(0, self.boys.size, D)
        prot_tok = np.where(pg, self.girls[gi], self.boys[bi])[doc]
        prot_girl = pg[doc]
        tid = np.empty(S, dtype=np.int64)
        tid[first] = self.intro_ids[rng.integers(0, self.intro_ids.size, D)]
        tid[~first] = self.body_ids[rng.choice(self.body_ids.size, S - D, p=self.body_p)]
        M = self.base[tid]
        M[last, -1] = self.eot
        counts = np.bincount(tid, minlength=len(self.templates))
        by_template = np.split(np.argsort(tid, kind="stable"), np.cumsum(counts)[:-1])
        for t, rows in zip(self.templates, by_template, strict=True):
            if rows.size:
                self._fill(t, rows, M, prot_tok[rows], prot_girl[rows], rng)
        M[first, 0] = self.bare[M[first, 0]]
        return M, self.is_frame[tid], nsent, starts

    def _fill(
        self,
        t: _Template,
        rows: np.ndarray,
        M: np.ndarray,
        prot_tok: np.ndarray,
        prot_girl: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        n = rows.size
        st: list[dict[str, np.ndarray]] = [{} for _ in t.slots]
        for i, s in enumerate(t.slots):
            k = s.kind
            if k == "name":
                if s.name == "N2":
                    girl = rng.random(n) < 0.5
                    gi = rng.integers(0, self.girls.size, n)
                    bi = rng.integers(0, self.boys.size, n)
                    other = st[s.ref]["tok"]
                    gi = np.where(girl & (self.girls[gi] == other), (gi + 1) % self.girls.size, gi)
                    bi = np.where(~girl & (self.boys[bi] == other), (bi + 1) % self.boys.size, bi)
                    tok = np.where(girl, self.girls[gi], self.boys[bi])
                else:
                    girls, boys = (
                        (self.frame_girls, self.frame_boys) if s.name == "FN" else (self.girls, self.boys)
                    )
                    use = rng.random(n) < P_PROTAGONIST
                    if s.name == "FN":
                        use &= self.in_frame_pool[prot_tok]
                    girl = np.where(use, prot_girl, rng.random(n) < 0.5)
                    gi = rng.integers(0, girls.size, n)
                    bi = rng.integers(0, boys.size, n)
                    tok = np.where(use, prot_tok, np.where(girl, girls[gi], boys[bi]))
                st[i] = {"tok": tok, "girl": girl}
                M[rows, s.col] = tok
            elif k == "gnoun":
                fem = rng.random(n) < 0.5
                fi = rng.integers(0, self.fem.size, n)
                mi = rng.integers(0, self.masc.size, n)
                tok = np.where(fem, self.fem[fi], self.masc[mi])
                st[i] = {"tok": tok, "girl": fem}
                M[rows, s.col] = tok
            elif k == "occ":
                pool = self.focc if s.name == "FOCC" else self.occ
                M[rows, s.col] = pool[rng.integers(0, pool.size, n)]
            elif k == "pron":
                ref = t.slots[s.ref]
                if ref.kind == "occ":
                    p_she = np.full(n, 1.0 - self.q_neutral_he)
                else:
                    q_f = {"N": self.a_girl, "N2": self.q_girl, "FN": self.q_frame, "GN": self.q_noun}[
                        ref.name
                    ]
                    q_m = self.a_boy if ref.name == "N" else self.q_boy
                    p_she = np.where(st[s.ref]["girl"], q_f, 1.0 - q_m)
                M[rows, s.col] = np.where(rng.random(n) < p_she, *self.pair[k])
            elif k in ("refl", "poss"):
                q_her = self.q_refl if k == "refl" else self.q_poss
                her = rng.random(n) < np.where(st[s.ref]["girl"], q_her, 1.0 - self.q_boy)
                M[rows, s.col] = np.where(her, *self.pair[k])
            elif k == "capp":
                M[rows, s.col] = np.where(prot_girl, *self.pair[k])
            elif k == "list":
                idx = rng.integers(0, s.mat.shape[0], n)
                M[rows, s.col : s.col + s.width] = s.mat[idx]
                st[i] = {"vowel": s.vowel[idx]}
            elif k == "choice":
                idx = rng.integers(0, s.rule.shape[0], n)
                bit = rng.random(n) < self.q_family[s.family]
                M[rows, s.col : s.col + s.width] = np.where(bit[:, None], s.rule[idx], s.prior[idx])
                first_tok = np.where(bit, s.rule[idx, 0], s.prior[idx, 0])
                st[i] = {"vowel": self.vowel_tok[first_tok]}
        for s in t.slots:
            if s.kind == "det":
                vowel = st[s.ref]["vowel"]
                an = vowel & (rng.random(n) < self.q_family["det_an_choice"])
                M[rows, s.col] = np.where(an, *self.pair["det"])


def _walk(
    items: list[list[tuple[str, ...]]], i: int, ph: tuple[str, ...], j: int, node: dict[str, Any]
) -> bool:
    """Can a forbidden word sequence (trie) start at word j of phrase ph of item i?"""
    while j < len(ph):
        node = node.get(ph[j])  # type: ignore[assignment]
        if node is None:
            return False
        if "\0" in node:
            return True
        j += 1
    if i + 1 >= len(items):
        return False
    return any(_walk(items, i + 1, nxt, 0, node) for nxt in items[i + 1])


# --------------------------------------------------------------------------- build
def _generate(eng: _Engine) -> Iterator[tuple[np.ndarray, int, int, int]]:
    """Chunks until cfg.tokens, each (token ids with documents ended by EOT, documents, sentences,
    frame sentences); the last one ends at the first document end at or after cfg.tokens."""
    need = eng.cfg.tokens
    index = 0
    while need > 0:
        M, frame, nsent, starts = eng.chunk(index)
        index += 1
        lens = (M[:, :-1] != PAD).sum(axis=1)
        cum = np.cumsum(np.add.reduceat(lens, starts) + 1)
        docs = nsent.size
        if cum[-1] >= need:
            docs = int(np.searchsorted(cum, need)) + 1
            keep = int(starts[docs - 1] + nsent[docs - 1])
            M, frame = M[:keep], frame[:keep]
        ids = M[M != PAD]
        need -= ids.size
        yield ids, docs, int(M.shape[0]), int(frame.sum())


def build_storyworld(
    out_dir: Path,
    cfg: StoryworldConfig,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    rules_dir: str | Path | None = None,
) -> StoryworldReport:
    """Generate the corpus into out_dir (shards, tokenizer.json, manifest.json), atomically.

    The rules of `rules_dir` that carry a `storyworld:` block are written too. The manifest's
    intended support is the support kernel's count of what was written, for every rule.
    `progress(n)` is called after each chunk with the tokens just written. An existing
    out_dir is refused unless force, and then replaced only once the new one is complete.
    """
    from ungrok.support.count import count  # the kernel sits above the corpus layer

    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise UngrokError(f"{out_dir} already exists; use --force to replace it")
    rules = load_rules(rules_dir)
    eng = _Engine(cfg, rules)
    dtype = dtype_for_vocab(eng.vocab_size)
    check_disk_room(out_dir, cfg.tokens * np.dtype(dtype).itemsize, f"--tokens {cfg.tokens:,}")
    sentences = frames = 0
    try:
        with atomic_dir(out_dir, force) as tmp:
            tok_path = tmp / TOKENIZER
            tok_path.write_text(eng.tokenizer_json, encoding="utf-8")
            writer = ShardWriter(tmp, dtype, cfg.shard_tokens)
            for ids, documents, chunk_sentences, chunk_frames in _generate(eng):
                writer.write(ids, documents=documents)
                sentences += chunk_sentences
                frames += chunk_frames
                if progress is not None:
                    progress(int(ids.size))
            shards = writer.finish()
            source: dict[str, Any] = {
                "generator": "storyworld",
                "config": cfg.model_dump(),
                "expressed_rules": list(eng.expressed),
                "sentences": sentences,
                "frame_sentences": frames,
                "notes": eng.notes,
            }
            manifest = Manifest(
                dtype=dtype,
                vocab_size=eng.vocab_size,
                eot_id=eng.eot,
                tokenizer_sha256=sha256_file(tok_path),
                total_tokens=sum(s.tokens for s in shards),
                documents=writer.documents,
                shards=shards,
                source=source,
            )
            write_manifest(tmp, manifest)
            support = count(tmp, list(rules.values()), rules_dir=rules_dir).rules
            manifest = manifest.model_copy(update={"source": {**source, "intended_support": support}})
            write_manifest(tmp, manifest)
    except FileExistsError:  # appeared while we were generating
        raise UngrokError(f"{out_dir} already exists; use --force to replace it") from None
    return StoryworldReport(
        out_dir=str(out_dir),
        total_tokens=manifest.total_tokens,
        documents=manifest.documents,
        sentences=sentences,
        frame_sentences=frames,
        vocab_size=eng.vocab_size,
        dtype=dtype,
        shards=len(shards),
        notes=eng.notes,
        support=support,
    )
