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
from typing import Annotated, Any, Literal

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

__all__ = [
    "BATTERY_BOYS",
    "BATTERY_GIRLS",
    "BOY_NAMES",
    "FEM_NOUNS",
    "GIRL_NAMES",
    "MARGIN_FRAMES",
    "MARGIN_SUBJECTS",
    "MASC_NOUNS",
    "PROBE_FRAMES",
    "RESCUE_BOYS",
    "RESCUE_GIRLS",
    "EventCounts",
    "RuleSupport",
    "StoryworldConfig",
    "StoryworldReport",
    "build_storyworld",
    "describe_storyworld",
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
# docs/method.md §3.2 (battery cue inventories).
BATTERY_GIRLS = _w("Lily Mia Anna Emma Sue Jane Lucy Ella Rose Grace Amy Kate Sara Beth Daisy Molly Ruby Zoe")
BATTERY_BOYS = _w("Tom Ben Max Sam Jack Tim Leo Jake Adam Mark Paul Pete Nick John Finn Billy Fred Joe")
FEM_NOUNS = _w("girl woman mom queen princess sister grandma aunt")
MASC_NOUNS = _w("boy man dad king prince brother grandpa uncle")
# docs/method.md §8.3: kept out of the generated text so a rescue injection stays disjoint.
RESCUE_GIRLS = _w("Mary Nora Clara Eva Ivy Hazel Stella Nina Tessa Wendy Flora Carla")
RESCUE_BOYS = _w("David Noah Liam Owen Felix Oscar Henry Carl Eric Hugo Brian Dean")
RESCUE_FRAMES = [
    "{n} opened the door, and then {p} walked outside.",
    "{n} finished the work early, so {p} went home.",
    "{n} looked at the sky while {p} waited for the bus.",
    "{n} wrote a letter, and later {p} mailed it.",
    "{n} grew up on a farm, where {p} learned to ride.",
    "{n} studied all evening because {p} wanted to pass.",
    "{n} picked up the basket, and {p} carried it inside.",
    "{n} read the news before {p} ate breakfast.",
    "{n} planted a garden, and {p} watered it every day.",
    "{n} fixed the fence after {p} noticed the gap.",
    "{n} called the office as soon as {p} arrived.",
    "{n} packed a bag, and then {p} left for the station.",
]
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
GIRL_NAMES = BATTERY_GIRLS + OTHER_GIRLS
BOY_NAMES = BATTERY_BOYS + OTHER_BOYS

# The focal probe frames (rvp3.1 + rvp4 v2) and the contrast-margin prompts (docs/method.md §5.1).
PROBE_FRAMES = [
    "smiled because",
    "was happy because",
    "laughed when",
    "cried because",
    "jumped because",
    "ran home because",
    "was sad because",
    "stopped when",
]
MARGIN_FRAMES = ["smiled because", "was happy because", "laughed when", "cried because"]
MARGIN_SUBJECTS = _w("child friend teacher student neighbor baby doctor farmer")
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

# Irregular verbs (docs/method.md §3.2): base -> (past, over-regularised).
IRREGULARS = {
    "go": ("went", "goed"),
    "run": ("ran", "runned"),
    "eat": ("ate", "eated"),
    "fall": ("fell", "falled"),
    "come": ("came", "comed"),
    "make": ("made", "maked"),
    "take": ("took", "taked"),
    "give": ("gave", "gived"),
    "tell": ("told", "telled"),
}

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

# Choice slots: (rule phrase, prior phrase) per item, and the family they support.
# Negation: (auxiliary, bare verb, complement, past form); the paper's 8 verbs.
_NEG = [
    ("did", "want", "to go home", "wanted"), ("did", "want", "the cake", "wanted"),
    ("did", "play", "outside", "played"), ("did", "jump", "over the log", "jumped"),
    ("did", "help", "with the dishes", "helped"), ("could", "find", "the key", "found"),
    ("could", "open", "the door", "opened"), ("could", "reach", "the shelf", "reached"),
    ("would", "stop", "", "stoped"), ("did", "stop", "", "stoped"),
]
_MODV = [("play", "outside"), ("jump", "high"), ("run", "fast"), ("sleep", "all day"),
         ("sing", "a song"), ("swim", "in the lake"), ("eat", "the cake"), ("walk", "to school")]
PLURALS = _w("dogs cats birds frogs boys girls toys ducks")
COMPARATIVES = {"big": "bigger", "small": "smaller", "fast": "faster", "tall": "taller"}
# fmt: on


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


CHOICES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "NEG": ("negation_bare_verb", [(_join(a, "not", v, c), _join(a, "not", p, c)) for a, v, c, p in _NEG]),
    "MODV": ("modal_agreement", [(_join(v, c), _join(v + "s", c)) for v, c in _MODV]),
    "PL_BE": ("plural_was_were", [(f"{n} were", f"{n} was") for n in PLURALS]),
    "CMP": ("comparative_er", [(er, f"more {adj}") for adj, er in COMPARATIVES.items()]),
    "AN_OLD": ("a_an_adjective", [("an old", "a old")]),
    **{f"IRR:{b}": ("irregular_past", [(p, o)]) for b, (p, o) in IRREGULARS.items()},
}

# Templates by category. Slots: {N} name (often the protagonist), {N2} a second name,
# {FN} frame name, {P} pronoun for the nearest subject before it, {R} reflexive for the
# name before it, {POSS} possessive her/his for the name before it, {GN} gender noun,
# {OCC}/{FOCC} neutral subject, {CAPP} She/He for the protagonist, {DET} a/an for the
# next word, CHOICES keys, LISTS keys.
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
    "frame": [f"{{FN}} {f} {{P}} {{frest}} ." for f in PROBE_FRAMES]
    + [f"The {{FOCC}} {f} {{P}} {{frest}} ." for f in PROBE_FRAMES],
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
    "negation": [
        "{N} {NEG} , so {P} {vp_past} .",
        "The {animal} {NEG} .",
        "Yesterday , {N} {NEG} , and {P} was sad .",
    ],
    "modal": [
        "{N} {modal} {MODV} , and {P} {vp_pres} .",
        "The {animal} {modal} {MODV} .",
        "Every {daytime} {N} {v3s} , and {P} {vp_pres} .",
        "{N} {adv} {v3s} , so {P} {vp_pres} .",
    ],
    "plural": [
        "The {PL_BE} {plrest} .",
        "All the {PL_BE} {plrest} .",
        "The two {PL_BE} {plrest} .",
        "The little {PL_BE} {plrest} .",
        "The big {PL_BE} {plrest} .",
        "The {sing} was {plrest} .",
    ],
    "comparative": [
        "The {cmpsubj} was even {CMP} than the {cmpsubj} .",
        "It got even {CMP} .",
        "The {animal} grew even {CMP} every day .",
        "The {cmpsubj} was even more {good_adj} .",
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
# Share of the non-opening sentences per category, before the frame and two-name
# sentences (set by knobs) take their part.
# fmt: off
CATEGORY_WEIGHTS = {
    "name": 0.16, "noun": 0.06, "neutral": 0.05, "reflexive": 0.04, "det_an": 0.09,
    "a_an_adjective": 0.05, "irregular_past": 0.08, "negation": 0.06, "plural": 0.06,
    "modal": 0.07, "comparative": 0.04, "filler": 0.14,
}
# fmt: on
PUNCT = {",", "."}
_SUBJECT_SLOTS = {"N", "N2", "FN", "GN", "OCC", "FOCC"}
_CUE_SLOTS = {"N", "N2", "FN", "GN"}

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
    negation_ratio: Ratio = Field(20.0, description="'not want':'not wanted', ...")
    plural_ratio: Ratio = Field(20.0, description="'dogs were':'dogs was', ...")
    modal_ratio: Ratio = Field(20.0, description="'can play':'can plays', ...")
    comparative_ratio: Ratio = Field(20.0, description="'even bigger':'even more big', ...")
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
class EventCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule_events: int
    prior_events: int
    ratio: float
    role: str | None = None
    rule: list[str] = []
    prior: list[str] = []


class RuleSupport(EventCounts):
    """Intended support for one built-in rule (top-level counts: its conflict cue class)."""

    kind: Literal["window", "lookahead", "ngram"]
    window: int | None = None
    next_regex: str | None = None
    classes: dict[str, EventCounts] = {}
    frames: dict[str, EventCounts] = {}
    note: str = ""


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
    support: dict[str, RuleSupport]


def _ratio(rule: int, prior: int) -> float:
    return (rule + 1) / (prior + 1)


def _counts(n_rule: int, n_prior: int, /, **kw: Any) -> dict[str, Any]:
    return {"rule_events": int(n_rule), "prior_events": int(n_prior), "ratio": _ratio(n_rule, n_prior), **kw}


# --------------------------------------------------------------------------- lexicon
def _template_words() -> set[str]:
    words: set[str] = set()

    def add(text: str) -> None:
        for w in text.split():
            if not (w.startswith("{") and w.endswith("}")):
                words.add(w)

    for texts in TEMPLATES.values():
        for t in texts:
            add(t)
    for phrases in LISTS.values():
        for p in phrases:
            add(p)
    for _, items in CHOICES.values():
        for r, p in items:
            add(r)
            add(p)
    return words


@functools.lru_cache(maxsize=1)
def storyworld_words() -> tuple[list[str], list[str]]:
    """(words, punctuation) of the closed lexicon: all the generator can emit, every battery
    word, the rescue names and frames and the margin subjects."""
    words = _template_words() - PUNCT
    words |= set(GIRL_NAMES + BOY_NAMES + RESCUE_GIRLS + RESCUE_BOYS + FEM_NOUNS + MASC_NOUNS)
    words |= set(MARGIN_SUBJECTS + OTHER_SUBJECTS + BATTERY_WORDS)
    words |= {"she", "he", "herself", "himself", "She", "He", "a", "an", "A", "An"}
    for f in RESCUE_FRAMES:
        words |= {w.strip(",.") for w in f.replace("{n}", "").replace("{p}", "").split()}
    words.discard("")
    punct = sorted(set(BATTERY_PUNCT) | PUNCT)
    return sorted(words), punct


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    words, punct = storyworld_words()
    return build_word_tokenizer(words, punct).to_str()


def storyworld_tokenizer() -> Tokenizer:
    """The word-level tokenizer every storyworld corpus uses (same lexicon -> same ids)."""
    return Tokenizer.from_str(_tokenizer_json())


def forbidden_prompts(names: list[str] | None = None) -> list[str]:
    """Prompts the default corpus never holds as a token sequence: the battery pronoun-frame
    prompts (names and gender nouns), the contrast-margin prompts and the rvp5 pronoun and
    reflexive prompts."""
    names = list(BATTERY_GIRLS + BATTERY_BOYS) if names is None else names
    out = [f"{n} {f}" for n in names for f in PROBE_FRAMES]
    out += [f"The {x} {f}" for x in FEM_NOUNS + MASC_NOUNS for f in MARGIN_FRAMES]
    out += [f"The {s} {f}" for s in MARGIN_SUBJECTS for f in MARGIN_FRAMES]
    out += [fr.format(n=n) for n in names for fr in OOD_FRAMES]
    return out


def _words_of(text: str) -> tuple[str, ...]:
    pt = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tuple(p.replace("Ġ", "") for p, _ in pt.pre_tokenize_str(text))


# --------------------------------------------------------------------------- compiled templates
PAD = -1
# Columns of the per-sentence event matrix.
# Subject classes: 0 girl (battery), 1 girl (other), 2 boy (battery), 3 boy (other),
# 4 feminine noun, 5 masculine noun, 6 neutral subject.
_CLS = 7
_PRON = (0, 2 * _CLS)  # base column outside / inside the probe frames: + cls*2 + (0 she | 1 he)
_REFL = 4 * _CLS  # + cls*2 + (0 herself | 1 himself), cls 0..3
_FAMILIES = [
    "det_an_choice",
    "a_an_adjective",
    "irregular_past",
    "negation_bare_verb",
    "plural_was_were",
    "modal_agreement",
    "comparative_er",
]
_FAM = {f: _REFL + 8 + 2 * i for i, f in enumerate(_FAMILIES)}  # + 0 rule | 1 prior
_FRAME_SENT = _REFL + 8 + 2 * len(_FAMILIES)
# The paper's irregular-past bigrams are " <GIRLS name> went" ...: + 0 rule | 1 prior.
_IRR_PAT = _FRAME_SENT + 1
_POSS = _IRR_PAT + 2  # + cls*2 + (0 her | 1 his), cls 0..3
_K = _POSS + 8


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
    static: dict[int, int]  # event column -> count per sentence (literal family tokens)
    # (name slot, irregular choice slot or -1 for a literal, literal is the rule form):
    # an irregular form right after a name, a bigram pattern if the name is in GIRLS.
    irr_links: list[tuple[int, int, bool]]
    two_name: bool
    n_single: int  # name slots in a one-name construction (the compensated pronoun)


class _Engine:
    """Templates compiled against the tokenizer for one config."""

    def __init__(self, cfg: StoryworldConfig):
        self.cfg = cfg
        self.tok = storyworld_tokenizer()
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
        self.SHE, self.HE = self.sid("she"), self.sid("he")
        self.HERSELF, self.HIMSELF = self.sid("herself"), self.sid("himself")
        self.HER, self.HIS = self.sid("her"), self.sid("his")
        self.CAP_SHE, self.CAP_HE = self.sid("She"), self.sid("He")
        self.A, self.AN = self.sid("a"), self.sid("an")

        hold = cfg.holdout_battery_names
        girls = OTHER_GIRLS if hold else GIRL_NAMES
        boys = OTHER_BOYS if hold else BOY_NAMES
        frame_girls = girls if cfg.allow_probe_prompts else OTHER_GIRLS
        frame_boys = boys if cfg.allow_probe_prompts else OTHER_BOYS
        self.girls = self.ids(girls)
        self.boys = self.ids(boys)
        self.frame_girls = self.ids(frame_girls)
        self.frame_boys = self.ids(frame_boys)
        self.in_frame_pool = np.zeros(self.vocab_size, dtype=bool)
        self.in_frame_pool[np.concatenate([self.frame_girls, self.frame_boys])] = True
        self.fem, self.masc = self.ids(FEM_NOUNS), self.ids(MASC_NOUNS)
        self.occ = self.ids(MARGIN_SUBJECTS + OTHER_SUBJECTS)
        self.focc = self.ids(MARGIN_SUBJECTS + OTHER_SUBJECTS if cfg.allow_probe_prompts else OTHER_SUBJECTS)
        self.name_words = {
            "N": girls + boys,
            "N2": girls + boys,
            "FN": frame_girls + frame_boys,
            "GN": FEM_NOUNS + MASC_NOUNS,
            "OCC": MARGIN_SUBJECTS + OTHER_SUBJECTS,
            "FOCC": MARGIN_SUBJECTS + OTHER_SUBJECTS if cfg.allow_probe_prompts else OTHER_SUBJECTS,
        }
        self.pattern_girl = np.zeros(self.vocab_size, dtype=bool)  # the irregular bigrams' names
        self.pattern_girl[self.ids(BATTERY_GIRLS[:6])] = True
        # Class of each cue token (space and bare forms).
        self.cls_of = np.full(self.vocab_size, -1, dtype=np.int64)
        for c, ws in enumerate([BATTERY_GIRLS, OTHER_GIRLS, BATTERY_BOYS, OTHER_BOYS, FEM_NOUNS, MASC_NOUNS]):
            for w in ws:
                self.cls_of[self.sid(w)] = c
                self.cls_of[v[w]] = c
        irr_rule = {p for p, _ in IRREGULARS.values()}
        irr_prior = {o for _, o in IRREGULARS.values()}
        self.static_words = {w: _FAM["irregular_past"] for w in irr_rule}
        self.static_words.update({w: _FAM["irregular_past"] + 1 for w in irr_prior})

        self.templates: list[_Template] = []
        for cat, texts in TEMPLATES.items():
            for text in texts:
                self.templates.append(self._compile(cat, text))
        self.width = max(t.base.size for t in self.templates)
        self.base = np.full((len(self.templates), self.width + 1), PAD, dtype=np.int32)
        for i, t in enumerate(self.templates):
            self.base[i, : t.base.size] = t.base
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
            raise AssertionError(f"storyworld word {word!r} is not in the lexicon")
        return int(i)

    def ids(self, words: list[str]) -> np.ndarray:
        return np.array([self.sid(w) for w in words], dtype=np.int32)

    def _phrases(self, phrases: list[str]) -> tuple[np.ndarray, int]:
        rows = [[self.sid(w) for w in p.split()] for p in phrases]
        w = max(len(r) for r in rows)
        mat = np.full((len(rows), w), PAD, dtype=np.int32)
        for i, r in enumerate(rows):
            mat[i, : len(r)] = r
        return mat, min(len(r) for r in rows)

    # ---- compile
    def _compile(self, cat: str, text: str) -> _Template:
        base: list[int] = []
        slots: list[_Slot] = []
        static: dict[int, int] = {}
        irr_links: list[tuple[int, int, bool]] = []
        for item in text.split():
            col = len(base)
            prev = len(slots) - 1 if slots and slots[-1].col + slots[-1].width == col else -1
            # A document's first word is bare ("Lily", not " Lily"): the bigram patterns
            # need the spaced name, so openings never put a name before an irregular form.
            after_name = prev >= 0 and slots[prev].kind == "name"
            if after_name and cat == "intro" and slots[prev].col == 0:
                after_name = False
                if item in self.static_words or item.startswith("{IRR:"):
                    raise AssertionError(f"{text!r}: opening name before an irregular form")
            if not (item.startswith("{") and item.endswith("}")):
                base.append(self.sid(item))
                if item in self.static_words:
                    k = self.static_words[item]
                    static[k] = static.get(k, 0) + 1
                    if after_name:
                        irr_links.append((prev, -1, k == _FAM["irregular_past"]))
                continue
            name = item[1:-1]
            s = self._slot(name, col)
            if after_name and s.family == "irregular_past":
                irr_links.append((prev, len(slots), True))
            slots.append(s)
            base.extend([PAD] * s.width)
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
                    raise AssertionError(f"{text!r}: {s.name} has no subject before it")
                s.ref = subj
                if s.kind == "refl":
                    refl_links.append((subj, i))
                if s.kind == "poss":
                    if slots[subj].name != "N":
                        raise AssertionError(f"{text!r}: a possessive refers to a {{N}} name")
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
                    raise AssertionError(f"{text!r}: cue {s.name} has no pronoun after it")
                cue_links.append((i, nxt))
            elif s.kind == "occ" and nxt >= 0 and slots[nxt].ref == i:
                cue_links.append((i, nxt))
            if s.name == "N2":
                s.ref = next(j for j in range(i) if slots[j].name == "N")
        two = any(s.name == "N2" for s in slots)
        n_single = 0 if two else sum(s.name == "N" for s in slots)
        if cat == "frame":
            static[_FRAME_SENT] = 1
        return _Template(
            cat,
            text,
            np.array(base, dtype=np.int32),
            slots,
            cue_links,
            refl_links,
            poss_links,
            static,
            irr_links,
            two,
            n_single,
        )

    def _slot(self, name: str, col: int) -> _Slot:
        if name in ("N", "N2", "FN"):
            return _Slot(name, "name", col, 1, 1, alts=[(w,) for w in self.name_words[name]])
        if name == "GN":
            return _Slot(name, "gnoun", col, 1, 1, alts=[(w,) for w in self.name_words[name]])
        if name in ("OCC", "FOCC"):
            return _Slot(name, "occ", col, 1, 1, alts=[(w,) for w in self.name_words[name]])
        if name == "P":
            return _Slot(name, "pron", col, 1, 1, alts=[("she",), ("he",)])
        if name == "R":
            return _Slot(name, "refl", col, 1, 1, alts=[("herself",), ("himself",)])
        if name == "POSS":
            return _Slot(name, "poss", col, 1, 1, alts=[("her",), ("his",)])
        if name == "CAPP":
            return _Slot(name, "capp", col, 1, 1, alts=[("She",), ("He",)])
        if name == "DET":
            return _Slot(name, "det", col, 1, 1, alts=[("a",), ("an",)])
        if name in CHOICES:
            fam, items = CHOICES[name]
            rule, rmin = self._phrases([r for r, _ in items])
            prior, pmin = self._phrases([p for _, p in items])
            w = max(rule.shape[1], prior.shape[1])
            rule = np.pad(rule, ((0, 0), (0, w - rule.shape[1])), constant_values=PAD)
            prior = np.pad(prior, ((0, 0), (0, w - prior.shape[1])), constant_values=PAD)
            alts = [tuple(r.split()) for r, _ in items] + [tuple(p.split()) for _, p in items]
            return _Slot(
                name, "choice", col, w, min(rmin, pmin), rule=rule, prior=prior, family=fam, alts=alts
            )
        if name in LISTS:
            mat, mn = self._phrases(LISTS[name])
            vowel = self.vowel_tok[mat[:, 0]]
            return _Slot(
                name,
                "list",
                col,
                mat.shape[1],
                mn,
                mat=mat,
                vowel=vowel,
                alts=[tuple(p.split()) for p in LISTS[name]],
            )
        raise AssertionError(f"unknown storyworld slot {{{name}}}")

    # ---- checks (programming errors in the tables, not user errors)
    def _check_windows(self) -> None:
        """Every cue sees its own pronoun within the window; reflexives and possessives are
        out of reach of earlier sentences' cues, and " her"/" his" occur only at possessive
        slots (so the windowed counts are exact)."""
        tails: list[int] = []  # tokens after a cue up to and including its sentence's "."
        pre_r: list[int] = []  # tokens before a reflexive or a possessive in its sentence
        her_his = {self.HER, self.HIS}
        for t in self.templates:
            mx, mn, length = self._offsets(t)
            for c, p in t.cue_links:
                d = mx[t.slots[p].col] - mx[t.slots[c].col]
                if d > WINDOW:
                    raise AssertionError(f"{t.text!r}: pronoun up to {d} tokens after its cue")
                if t.slots[c].kind in ("name", "gnoun"):
                    tails.append(length - mn[t.slots[c].col] - 1)
            for what, links in (("reflexive", t.refl_links), ("possessive", t.poss_links)):
                for _n, r in links:
                    pre_r.append(mn[t.slots[r].col])
                    rc = t.slots[r].col
                    cues = [s for s in t.slots if s.kind in ("name", "gnoun") and s.col < rc]
                    if len(cues) != 1:
                        raise AssertionError(f"{t.text!r}: a {what} needs exactly one cue before it")
                    if mx[rc] - mn[cues[0].col] > WINDOW:
                        raise AssertionError(f"{t.text!r}: {what} beyond the window of its cue")
            if len(t.poss_links) > 1:
                raise AssertionError(f"{t.text!r}: at most one possessive a sentence")
            literal = set(t.base.tolist())
            for s in t.slots:
                for m in (s.mat, s.rule, s.prior):
                    if m is not None:
                        literal |= set(m.ravel().tolist())
            if literal & her_his:
                raise AssertionError(f"{t.text!r}: ' her'/' his' outside a possessive slot")
        # A cue c sentences before a reflexive or possessive is tail(c) + pre(R) + 1 tokens
        # away (more with an end-of-text between): keep that beyond the window.
        if pre_r and min(tails) + min(pre_r) + 1 <= WINDOW:
            raise AssertionError("reflexive/possessive openings are too short for exact windows")

    @staticmethod
    def _offsets(t: _Template) -> tuple[dict[int, int], dict[int, int], int]:
        """Token offset of each item's first column with max and with min slot widths, and
        the sentence's min length."""
        mx: dict[int, int] = {}
        mn: dict[int, int] = {}
        pos_max = pos_min = col = 0
        slots = iter(t.slots)
        for w in t.text.split():
            if w.startswith("{"):
                s = next(slots)
                wid, mwid = s.width, s.min_width
            else:
                wid = mwid = 1
            mx[col], mn[col] = pos_max, pos_min
            pos_max += wid
            pos_min += mwid
            col += wid
        return mx, mn, pos_min

    def _check_forbidden(self) -> None:
        trie: dict[str, Any] = {}
        names = [n for n in BATTERY_GIRLS + BATTERY_BOYS]
        for p in forbidden_prompts(names):
            node = trie
            for w in _words_of(p):
                node = node.setdefault(w, {})
            node["\0"] = True
        for t in self.templates:
            items = self._items(t)
            for i, alts in enumerate(items):
                for ph in alts:
                    for j in range(len(ph)):
                        if ph[j] in trie and _walk(items, i, ph, j, trie):
                            raise AssertionError(f"{t.text!r} can emit a forbidden probe prompt")

    def _items(self, t: _Template) -> list[list[tuple[str, ...]]]:
        words = t.text.split()
        slots = iter(t.slots)
        return [next(slots).alts if w.startswith("{") else [(w,)] for w in words]

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
        total_w = sum(CATEGORY_WEIGHTS.values())
        for cat, ws in CATEGORY_WEIGHTS.items():
            p[cats[cat]] = rest * ws / total_w / len(cats[cat])
        p[cats["two_name"]] = tw / len(cats["two_name"])
        p[cats["bridge"]] = br / len(cats["bridge"])
        p[cats["possessive"]] = po / len(cats["possessive"])
        half = len(PROBE_FRAMES)
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
            "negation_bare_verb": q(cfg.negation_ratio),
            "plural_was_were": q(cfg.plural_ratio),
            "modal_agreement": q(cfg.modal_ratio),
            "comparative_er": q(cfg.comparative_ratio),
        }

    # ---- generation
    def chunk(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One chunk: (id matrix (S, width+1) with PAD, events (S, K), sentences per doc,
        first sentence of each doc). Depends only on the config and the index."""
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
        E = np.zeros((S, _K), dtype=np.uint8)
        order = np.argsort(tid, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(tid, minlength=len(self.templates)))])
        for t in range(len(self.templates)):
            if bounds[t + 1] > bounds[t]:
                rows = order[bounds[t] : bounds[t + 1]]
                self._fill(self.templates[t], rows, M, E, prot_tok[rows], prot_girl[rows], rng)
        M[first, 0] = self.bare[M[first, 0]]
        return M, E, nsent, starts

    def _fill(
        self,
        t: _Template,
        rows: np.ndarray,
        M: np.ndarray,
        E: np.ndarray,
        prot_tok: np.ndarray,
        prot_girl: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        n = rows.size
        st: list[dict[str, np.ndarray]] = [{} for _ in t.slots]
        frame = t.cat == "frame"
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
                st[i] = {"tok": tok, "girl": girl, "cls": self.cls_of[tok]}
                M[rows, s.col] = tok
            elif k == "gnoun":
                fem = rng.random(n) < 0.5
                fi = rng.integers(0, self.fem.size, n)
                mi = rng.integers(0, self.masc.size, n)
                tok = np.where(fem, self.fem[fi], self.masc[mi])
                st[i] = {"tok": tok, "girl": fem, "cls": self.cls_of[tok]}
                M[rows, s.col] = tok
            elif k == "occ":
                pool = self.focc if s.name == "FOCC" else self.occ
                tok = pool[rng.integers(0, pool.size, n)]
                st[i] = {"tok": tok, "cls": np.full(n, 6)}
                M[rows, s.col] = tok
            elif k == "pron":
                ref = t.slots[s.ref]
                r = st[s.ref]
                if ref.kind == "occ":
                    p_she = np.full(n, 1.0 - self.q_neutral_he)
                else:
                    q_f = {"N": self.a_girl, "N2": self.q_girl, "FN": self.q_frame, "GN": self.q_noun}[
                        ref.name
                    ]
                    q_m = self.a_boy if ref.name == "N" else self.q_boy
                    p_she = np.where(r["girl"], q_f, 1.0 - q_m)
                she = rng.random(n) < p_she
                st[i] = {"she": she}
                M[rows, s.col] = np.where(she, self.SHE, self.HE)
            elif k == "refl":
                girl = st[s.ref]["girl"]
                her = rng.random(n) < np.where(girl, self.q_refl, 1.0 - self.q_boy)
                st[i] = {"her": her}
                M[rows, s.col] = np.where(her, self.HERSELF, self.HIMSELF)
                E[rows, _REFL + st[s.ref]["cls"] * 2 + (~her)] += 1
            elif k == "poss":
                girl = st[s.ref]["girl"]
                her = rng.random(n) < np.where(girl, self.q_poss, 1.0 - self.q_boy)
                M[rows, s.col] = np.where(her, self.HER, self.HIS)
                E[rows, _POSS + st[s.ref]["cls"] * 2 + (~her)] += 1
            elif k == "capp":
                M[rows, s.col] = np.where(prot_girl, self.CAP_SHE, self.CAP_HE)
            elif k == "list":
                idx = rng.integers(0, s.mat.shape[0], n)
                M[rows, s.col : s.col + s.width] = s.mat[idx]
                st[i] = {"vowel": s.vowel[idx]}
            elif k == "choice":
                idx = rng.integers(0, s.rule.shape[0], n)
                bit = rng.random(n) < self.q_family[s.family]
                M[rows, s.col : s.col + s.width] = np.where(bit[:, None], s.rule[idx], s.prior[idx])
                col = _FAM[s.family]
                E[rows, col] += bit
                E[rows, col + 1] += ~bit
                if s.family == "a_an_adjective":  # " an old" / " a old" are a/an lookahead events too
                    E[rows, _FAM["det_an_choice"]] += bit
                    E[rows, _FAM["det_an_choice"] + 1] += ~bit
                first_tok = np.where(bit, s.rule[idx, 0], s.prior[idx, 0])
                st[i] = {"vowel": self.vowel_tok[first_tok], "bit": bit}
        for s in t.slots:
            if s.kind == "det":
                vowel = st[s.ref]["vowel"]
                an = vowel & (rng.random(n) < self.q_family["det_an_choice"])
                M[rows, s.col] = np.where(an, self.AN, self.A)
                col = _FAM["det_an_choice"]
                E[rows, col] += an
                E[rows, col + 1] += vowel & ~an
        base = _PRON[1] if frame else _PRON[0]
        for c, p in t.cue_links:
            E[rows, base + st[c]["cls"] * 2 + (~st[p]["she"])] += 1
        for col, cnt in t.static.items():
            E[rows, col] += cnt
        for nm, irr, literal_rule in t.irr_links:
            hit = self.pattern_girl[st[nm]["tok"]]
            if irr < 0:
                E[rows, _IRR_PAT + (0 if literal_rule else 1)] += hit
            else:
                E[rows, _IRR_PAT] += hit & st[irr]["bit"]
                E[rows, _IRR_PAT + 1] += hit & ~st[irr]["bit"]


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
@dataclass
class _Chunk:
    ids: np.ndarray  # token ids, documents ended by EOT
    documents: int
    sentences: int
    events: np.ndarray  # (K,) event totals


def _generate(eng: _Engine) -> Iterator[_Chunk]:
    """Chunks until cfg.tokens; the last one ends at the first document end at or after it."""
    need = eng.cfg.tokens
    index = 0
    while need > 0:
        M, E, nsent, starts = eng.chunk(index)
        index += 1
        lens = (M[:, :-1] != PAD).sum(axis=1)
        cum = np.cumsum(np.add.reduceat(lens, starts) + 1)
        docs = nsent.size
        if cum[-1] >= need:
            docs = int(np.searchsorted(cum, need)) + 1
            keep = int(starts[docs - 1] + nsent[docs - 1])
            M, E = M[:keep], E[:keep]
        ids = M[M != PAD]
        need -= ids.size
        yield _Chunk(ids, docs, int(M.shape[0]), E.sum(axis=0, dtype=np.int64))


def build_storyworld(
    out_dir: Path,
    cfg: StoryworldConfig,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> StoryworldReport:
    """Generate the corpus into out_dir (shards, tokenizer.json, manifest.json), atomically.

    `progress(n)` is called after each chunk with the tokens just written. An existing
    out_dir is refused unless force, and then replaced only once the new one is complete.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise UngrokError(f"{out_dir} already exists; use --force to replace it")
    eng = _Engine(cfg)
    dtype = dtype_for_vocab(eng.vocab_size)
    check_disk_room(out_dir, cfg.tokens * np.dtype(dtype).itemsize, f"--tokens {cfg.tokens:,}")
    totals = np.zeros(_K, dtype=np.int64)
    sentences = 0
    try:
        with atomic_dir(out_dir, force) as tmp:
            tok_path = tmp / TOKENIZER
            tok_path.write_text(_tokenizer_json(), encoding="utf-8")
            writer = ShardWriter(tmp, dtype, cfg.shard_tokens)
            for ch in _generate(eng):
                writer.write(ch.ids, documents=ch.documents)
                totals += ch.events
                sentences += ch.sentences
                if progress is not None:
                    progress(int(ch.ids.size))
            shards = writer.finish()
            support = _support(totals, eng.notes)
            manifest = Manifest(
                dtype=dtype,
                vocab_size=eng.vocab_size,
                eot_id=eng.eot,
                tokenizer_sha256=sha256_file(tok_path),
                total_tokens=sum(s.tokens for s in shards),
                documents=writer.documents,
                shards=shards,
                source={
                    "generator": "storyworld",
                    "config": cfg.model_dump(),
                    "intended_support": {k: v.model_dump() for k, v in support.items()},
                    "sentences": sentences,
                    "frame_sentences": int(totals[_FRAME_SENT]),
                },
            )
            write_manifest(tmp, manifest)
    except FileExistsError:  # appeared while we were generating
        raise UngrokError(f"{out_dir} already exists; use --force to replace it") from None
    return StoryworldReport(
        out_dir=str(out_dir),
        total_tokens=manifest.total_tokens,
        documents=manifest.documents,
        sentences=sentences,
        frame_sentences=int(totals[_FRAME_SENT]),
        vocab_size=eng.vocab_size,
        dtype=dtype,
        shards=len(shards),
        support=support,
    )


# --------------------------------------------------------------------------- support
def _support(T: np.ndarray, notes: list[str] | None = None) -> dict[str, RuleSupport]:
    """Intended support per built-in rule from the event totals."""
    T = [int(x) for x in T]

    def pron(ctxs: tuple[int, ...], clss: tuple[int, ...]) -> tuple[int, int]:
        she = sum(T[_PRON[x] + c * 2] for x in ctxs for c in clss)
        he = sum(T[_PRON[x] + c * 2 + 1] for x in ctxs for c in clss)
        return she, he

    def refl(clss: tuple[int, ...], base: int = _REFL) -> tuple[int, int]:
        return sum(T[base + c * 2] for c in clss), sum(T[base + c * 2 + 1] for c in clss)

    def fem(she_he: tuple[int, int], **kw: Any) -> EventCounts:
        return EventCounts(**_counts(she_he[0], she_he[1], role="conflict", **kw))

    def masc(she_he: tuple[int, int], **kw: Any) -> EventCounts:
        return EventCounts(**_counts(she_he[1], she_he[0], role="agree", **kw))

    both, out, inside = (0, 1), (0,), (1,)
    she, he = [" she"], [" he"]
    g = pron(both, (0,))
    pronoun = RuleSupport(
        kind="window",
        window=WINDOW,
        rule=she,
        prior=he,
        **_counts(*g, role="conflict"),
        classes={
            "girl_names": fem(g, rule=she, prior=he),
            "boy_names": masc(pron(both, (2,)), rule=he, prior=she),
            "all_girl_names": fem(pron(both, (0, 1)), rule=she, prior=he),
            "all_boy_names": masc(pron(both, (2, 3)), rule=he, prior=she),
            "all_girl_names_outside_frames": fem(pron(out, (0, 1)), rule=she, prior=he),
            "all_boy_names_outside_frames": masc(pron(out, (2, 3)), rule=he, prior=she),
            "neutral_subjects_outside_frames": EventCounts(
                **_counts(*reversed(pron(out, (6,))), role="prior", rule=he, prior=she)
            ),
        },
        frames={
            "girl_names": fem(pron(inside, (0, 1)), rule=she, prior=he),
            "boy_names": masc(pron(inside, (2, 3)), rule=he, prior=she),
            "neutral_subjects": EventCounts(
                **_counts(*reversed(pron(inside, (6,))), role="prior", rule=he, prior=she)
            ),
        },
        note="; ".join(
            [
                "girl_names/boy_names are the battery cue classes (GIRLS_V2/BOYS_V2); the "
                "probe-frame construction uses other names unless allow_probe_prompts",
                *(notes or []),
            ]
        ),
    )
    f = pron(both, (4,))
    noun = RuleSupport(
        kind="window",
        window=WINDOW,
        rule=she,
        prior=he,
        **_counts(*f, role="conflict"),
        classes={
            "fem_nouns": fem(f, rule=she, prior=he),
            "masc_nouns": masc(pron(both, (5,)), rule=he, prior=she),
        },
    )

    def name_classes(base: int, rule: list[str], prior: list[str], note: str = "") -> RuleSupport:
        """A her/his-like family over the name classes (event columns `base` + cls*2 + 0|1)."""
        first = refl((0,), base)
        return RuleSupport(
            kind="window",
            window=WINDOW,
            rule=rule,
            prior=prior,
            **_counts(*first, role="conflict"),
            classes={
                "girl_names": fem(first, rule=rule, prior=prior),
                "boy_names": masc(refl((2,), base), rule=prior, prior=rule),
                "all_girl_names": fem(refl((0, 1), base), rule=rule, prior=prior),
                "all_boy_names": masc(refl((2, 3), base), rule=prior, prior=rule),
            },
            note=note,
        )

    reflexive = name_classes(_REFL, [" herself"], [" himself"])
    possessive = name_classes(
        _POSS,
        [" her"],
        [" his"],
        "no built-in rule counts this yet; the first ' her'/' his' within 16 tokens after "
        "a name, which is always the possessive of its own sentence (possessive_rate, "
        "possessive_ratio); the pronoun kill leaves these tokens in place",
    )

    def fam(name: str) -> tuple[int, int]:
        return T[_FAM[name]], T[_FAM[name] + 1]

    # a/an: one lookahead counter serves det_an_choice and a_an_adjective (docs/method.md §6.3).
    det, adj = fam("det_an_choice"), fam("a_an_adjective")
    an_forms, a_forms = [" an", " An", "an", "An"], [" a", " A", "a", "A"]

    def lookahead(note: str) -> RuleSupport:
        return RuleSupport(
            kind="lookahead",
            rule=an_forms,
            prior=a_forms,
            next_regex=r"^ [aeiouAEIOU]",
            note=note,
            **_counts(*det),
            classes={
                "before_noun": EventCounts(**_counts(det[0] - adj[0], det[1] - adj[1])),
                "before_adjective": EventCounts(**_counts(*adj)),
            },
        )

    out = {
        "pronoun_gender_ref": pronoun,
        "pronoun_gender_noun": noun,
        "reflexive_gender": reflexive,
        "possessive_gender": possessive,
        "det_an_choice": lookahead("' an'/' a' before a vowel-initial word (nouns and ' old')"),
        "a_an_adjective": lookahead(
            "the same lookahead counter as det_an_choice; the "
            "a_an_adjective knob sets the before_adjective class"
        ),
    }
    patterns = _ngram_patterns()
    for name in (
        "irregular_past",
        "negation_bare_verb",
        "plural_was_were",
        "modal_agreement",
        "comparative_er",
    ):
        rule, prior = patterns[name]
        counts = fam(name)
        classes: dict[str, EventCounts] = {}
        note = ""
        if name == "irregular_past":
            classes["all_forms"] = EventCounts(
                **_counts(
                    *counts,
                    rule=[f" {p}" for p, _ in IRREGULARS.values()],
                    prior=[f" {o}" for _, o in IRREGULARS.values()],
                )
            )
            counts = (T[_IRR_PAT], T[_IRR_PAT + 1])
            note = (
                "the paper's bigrams need a GIRLS name right before the verb; all_forms "
                "counts every irregular past (incl. the frame 'ran home because')"
            )
        out[name] = RuleSupport(
            kind="ngram", rule=rule, prior=prior, note=note, classes=classes, **_counts(*counts)
        )
    # The v2 revisions count the same events as the rules they extend.
    for v1 in (
        "pronoun_gender_ref",
        "reflexive_gender",
        "irregular_past",
        "negation_bare_verb",
        "modal_agreement",
    ):
        out[f"{v1}_v2"] = out[v1].model_copy(update={"note": f"same events as {v1}"})
    return out


def _ngram_patterns() -> dict[str, tuple[list[str], list[str]]]:
    """The paper's bigram patterns (docs/method.md §6.2: " " + last prefix word + continuation of
    the conflict probes) for the families storyworld emits at choice slots."""
    neg = list(dict.fromkeys((f" not {v}", f" not {p}") for _, v, _, p in _NEG))
    modal = [(f" {m} {v}", f" {m} {v}s") for m in LISTS["modal"] for v, _ in _MODV]
    irr = [(f" {g} {p}", f" {g} {o}") for p, o in IRREGULARS.values() for g in BATTERY_GIRLS[:6]]
    return {
        "irregular_past": ([r for r, _ in irr], [p for _, p in irr]),
        "negation_bare_verb": ([r for r, _ in neg], [p for _, p in neg]),
        "plural_was_were": ([f" {n} were" for n in PLURALS], [f" {n} was" for n in PLURALS]),
        "modal_agreement": ([r for r, _ in modal], [p for _, p in modal]),
        "comparative_er": (
            [f" even {er}" for er in COMPARATIVES.values()],
            [f" even more {a}" for a in COMPARATIVES],
        ),
    }


def describe_storyworld(report: StoryworldReport | dict[str, Any]) -> str:
    """A plain-text table of the intended support (rule, class, rule events, prior events, ratio).

    Accepts a StoryworldReport or a manifest's `intended_support` dict.
    """
    if isinstance(report, StoryworldReport):
        head = (
            f"storyworld: {report.total_tokens:,} tokens, {report.documents:,} documents, "
            f"{report.sentences:,} sentences ({report.frame_sentences:,} probe-frame)\n"
        )
        support = {k: v.model_dump() for k, v in report.support.items()}
    else:
        head, support = "", report
    rows = [("rule", "class", "rule events", "prior events", "ratio")]
    for name, s in support.items():
        rows.append(
            (
                name,
                s.get("role") or "",
                f"{s['rule_events']:,}",
                f"{s['prior_events']:,}",
                f"{s['ratio']:.3g}",
            )
        )
        if (s.get("note") or "").startswith("same events as"):
            continue
        for group in ("classes", "frames"):
            for cname, c in (s.get(group) or {}).items():
                label = f"  {cname}" if group == "classes" else f"  frames.{cname}"
                rows.append(
                    ("", label, f"{c['rule_events']:,}", f"{c['prior_events']:,}", f"{c['ratio']:.3g}")
                )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])] + [r[i].rjust(widths[i]) for i in (2, 3, 4)]
        lines.append("  ".join(cells).rstrip())
    return head + "\n".join(lines)
