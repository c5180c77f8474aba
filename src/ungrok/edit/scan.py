"""Empirical cue scan (docs/method.md §6.4): which name-shaped tokens the corpus treats as the rule's cue.

Every vocabulary token whose text is a space plus a capitalised word of 3-12 letters
(" Lily") is scored with the windowed counter's first-target logic, the same one the
kill uses: after each occurrence, does the rule target (" she") or the prior target
(" he") come first within the window? A token joins the kill cue list when it has at
least `min_events` decided events and a smoothed ratio (rule+1)/(prior+1) of at least
`min_ratio`, and is not in the exclusion list (pronouns, kin and title words,
homographs). Each selected token's no-space single-token form ("Lily") joins too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from ungrok.atomic import write_json
from ungrok.corpus.shards import Corpus
from ungrok.corpus.tokenizer import UNK, load_tokenizer
from ungrok.edit.outputs import chunks
from ungrok.edit.scan_defaults import MIN_EVENTS, MIN_RATIO
from ungrok.edit.seqmatch import Seq
from ungrok.errors import UngrokError
from ungrok.hashing import manifest_sha256
from ungrok.rules.registry import get_rule, lists_for
from ungrok.rules.spec import RuleSpec, WindowEvent, resolve_list
from ungrok.rules.tokens import resolve_tokens

if TYPE_CHECKING:
    from ungrok.edit.kill import CueList

NAME_SHAPE = re.compile(r"^ [A-Z][a-z]{2,11}$")
# docs/method.md §6.4's frozen exclusion set.
DEFAULT_EXCLUDE = (
    "She", "Her",
    "Grandma", "Granny", "Mrs", "Miss", "Aunt", "Princess", "Mommy", "Mummy", "Mum", "Mama", "Mom", "Lady", "Queen",
    "Car", "Mad", "May", "June", "Joy", "Honey", "Angel",
)
SCAN_CHUNK = 8_000_000


@numba.njit(cache=True, nogil=True)
def _scan(tokens, n_own, W, cand, is_rule, is_prior, rule_cnt, prior_cnt):
    """Backward pass: at a candidate position the next rule/prior target positions are known."""
    n = tokens.shape[0]
    V = cand.shape[0]
    far = np.int64(1) << np.int64(62)
    nr = far
    npr = far
    for i in range(n - 1, -1, -1):
        t = tokens[i]
        if t >= V:
            continue
        if i < n_own and cand[t]:
            if nr - i <= W and nr < npr:
                rule_cnt[t] += 1
            elif npr - i <= W and npr < nr:
                prior_cnt[t] += 1
        if is_rule[t]:
            nr = i
        if is_prior[t]:
            npr = i


def _targets(spec: RuleSpec, lists: dict, tok: Any) -> tuple[list[int], list[int], list[str]]:
    """Single-token rule and prior targets of the classes the kill acts on."""
    if not isinstance(spec.event, WindowEvent):
        raise UngrokError(
            f"rule {spec.name!r} is a {spec.event.kind} rule; the cue scan applies to window rules"
        )
    rt = resolve_tokens(spec, lists, tok, with_kill=False)
    names = (spec.kill.cue_classes if spec.kill else []) or [c.name for c in rt.cues if c.role == "conflict"]
    classes = [c for c in rt.cues if c.name in names] or list(rt.cues)
    rule = sorted({s[0] for c in classes for s in c.rule if len(s) == 1})
    prior = sorted({s[0] for c in classes for s in c.prior if len(s) == 1})
    if not rule or not prior:
        raise UngrokError(f"rule {spec.name!r}: the cue scan needs single-token rule and prior targets")
    return rule, prior, names


def scan_cues(
    corpus: str | Path,
    rule: str | RuleSpec,
    *,
    min_events: int = MIN_EVENTS,
    min_ratio: float = MIN_RATIO,
    exclude: tuple[str, ...] | list[str] = DEFAULT_EXCLUDE,
    rules_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Scan `corpus` for the rule's empirical cue list; returns the cue-file document."""
    if min_events < 0 or not min_ratio > 0:
        raise UngrokError("--min-events must be >= 0 and --min-ratio > 0")
    spec = rule if isinstance(rule, RuleSpec) else get_rule(rule, rules_dir)
    c = Corpus(corpus)
    tok = load_tokenizer(c.tokenizer_path)
    lists = lists_for(spec, rules_dir)
    rule_ids, prior_ids, classes = _targets(spec, lists, tok)
    V = max(tok.get_vocab_size(), c.manifest.vocab_size)
    W = spec.event.window  # type: ignore[union-attr]
    cand = np.zeros(V, dtype=np.bool_)
    texts: dict[int, str] = {}
    for i in range(tok.get_vocab_size()):
        text = tok.decode([i])
        if NAME_SHAPE.match(text or ""):
            cand[i] = True
            texts[i] = text
    is_rule = np.zeros(V, dtype=np.bool_)
    is_prior = np.zeros(V, dtype=np.bool_)
    is_rule[rule_ids] = True
    is_prior[prior_ids] = True
    rule_cnt = np.zeros(V, dtype=np.int64)
    prior_cnt = np.zeros(V, dtype=np.int64)
    for a, b, toks in chunks(c, SCAN_CHUNK, W):
        _scan(toks, b - a, W, cand, is_rule, is_prior, rule_cnt, prior_cnt)
        if progress:
            progress(b - a)
    excluded = set(exclude)
    battery = {str(w) for cls in spec.cues for w in resolve_list(cls.words, lists)}
    unk = tok.token_to_id(UNK)
    rows, selected = [], []
    for i in sorted(texts, key=lambda i: (-(rule_cnt[i] + prior_cnt[i]), texts[i])):
        r, p = int(rule_cnt[i]), int(prior_cnt[i])
        if r + p == 0:
            continue
        word = texts[i][1:]
        row = {"word": word, "id": i, "first_rule": r, "first_prior": p, "ratio": (r + 1) / (p + 1)}
        rows.append(row)
        if r + p >= min_events and row["ratio"] >= min_ratio and word not in excluded:
            bare = tok.encode(word, add_special_tokens=False).ids
            row = {**row, "bare_id": bare[0] if len(bare) == 1 and bare[0] != unk else None}
            selected.append(row)
    ids = sorted({r["id"] for r in selected} | {r["bare_id"] for r in selected if r["bare_id"] is not None})
    on_list = sum(r["first_rule"] for r in selected)
    on_list_battery = sum(r["first_rule"] for r in selected if r["word"] in battery)
    return {
        "format": "ungrok-cues/1",
        "rule": spec.name,
        "classes": classes,
        "corpus": {"path": str(c.path.resolve()), "manifest_sha256": manifest_sha256(c.path)},
        "tokenizer_sha256": c.manifest.tokenizer_sha256,
        "window": W,
        "rule_targets": [tok.decode([t]) for t in rule_ids],
        "prior_targets": [tok.decode([t]) for t in prior_ids],
        "min_events": min_events,
        "min_ratio": min_ratio,
        "exclude": sorted(excluded),
        "candidates": len(texts),
        "selected": selected,
        "cue_ids": ids,
        "rule_events_on_list": on_list,
        "battery_share_of_rule_events": on_list_battery / on_list if on_list else None,
        "scanned": rows,
    }


def write_cue_file(path: str | Path, doc: dict[str, Any], force: bool = False) -> None:
    if Path(path).exists() and not force:
        raise UngrokError(f"{path} already exists; use --force to replace it")
    write_json(path, doc)


def load_cue_file(
    path: str | Path, tok: Any, tokenizer_sha256: str | None = None
) -> tuple[list[Seq], dict[str, Any]]:
    """Cue sequences from a scan's JSON (`cue_ids`) or a text file of words (one per line).

    Words are taken as "Word" and " Word"; a scan file must come from the same tokenizer.
    """
    from ungrok.edit.sites import encode_words

    p = Path(path)
    if not p.is_file():
        raise UngrokError(f"{p}: cue file not found")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".json" or text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
            ids = [int(i) for i in doc["cue_ids"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UngrokError(f"{p}: not a cue file (expected JSON with a 'cue_ids' list)") from None
        if tokenizer_sha256 and doc.get("tokenizer_sha256") not in (None, tokenizer_sha256):
            raise UngrokError(f"{p}: the cue ids come from a different tokenizer than the corpus")
        seqs = [(i,) for i in ids]
        source = {"mode": "file", "file": str(p.resolve()), "cue_ids": len(ids), "scan_rule": doc.get("rule")}
    else:
        words = [w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#")]
        seqs = encode_words(tok, words)
        source = {"mode": "file", "file": str(p.resolve()), "words": len(words)}
    if not seqs:
        raise UngrokError(f"{p}: the cue file names no cue the tokenizer can encode")
    return seqs, source


def resolve_cues(
    cues: Path | None,
    scan: bool,
    src: Path,
    rule: str,
    min_events: int,
    min_ratio: float,
    rules_dir: Path | None,
) -> CueList | None:
    """The kill cue list: the rule's own (default), a file, or an empirical scan of SRC."""
    from ungrok.edit.kill import CueList  # kill imports this module

    if cues is not None and scan:
        raise UngrokError("give --cues FILE or --scan, not both")
    if cues is not None:
        c = Corpus(src)
        seqs, source = load_cue_file(cues, load_tokenizer(c.tokenizer_path), c.manifest.tokenizer_sha256)
        return CueList(seqs, source)
    if scan:
        doc = scan_cues(src, rule, min_events=min_events, min_ratio=min_ratio, rules_dir=rules_dir)
        if not doc["cue_ids"]:
            raise UngrokError(
                f"the cue scan of {src} selected no cue (min events {min_events}, ratio {min_ratio:g})"
            )
        source = {"mode": "scan", "selected": [r["word"] for r in doc["selected"]], "cue_ids": len(doc["cue_ids"]),
                  "min_events": min_events, "min_ratio": min_ratio,
                  "battery_share_of_rule_events": doc["battery_share_of_rule_events"]}
        return CueList([(i,) for i in doc["cue_ids"]], source)
    return None
