"""Disjointness gate D1-D4 (docs/method.md §8.5): an edit may add support, never the test itself.

- D1: no rescue name is a battery cue (any cue class word or probe name of any rule).
- D2: no battery cue ("W", " W", original and capitalised) and no battery prefix occurs
  as a token sequence in the injected shards; no battery prefix is a substring of the
  generator's sentence universe (every frame x name x pronoun).
- D3: no contrast-margin prompt (CM or neutral PM) occurs as a token sequence in the
  injected shards.
- D4: an edit that promises a fixed size (kill, rescue with `replace`) has exactly the
  source's token count; a kill's changed tokens are all kill flips of the source.

The battery is every built-in (and --rules-dir) rule's generated battery and margin
prompts, plus any battery JSONL files given (e.g. the paper's rvp3/rvp4/rvp5). A failure
raises one line naming the first offending string and where it occurs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ungrok.corpus.shards import MANIFEST, Corpus
from ungrok.corpus.tokenizer import UNK, load_tokenizer
from ungrok.edit.outputs import chunks, shard_starts
from ungrok.edit.seqmatch import Seq, SeqMatcher
from ungrok.errors import UngrokError
from ungrok.probes.battery import load_battery
from ungrok.rules.expand import expand_probes, margin_prompts
from ungrok.rules.registry import get_rule, lists_for, load_rules
from ungrok.rules.spec import resolve_list

MATCH_CHUNK = 8_000_000


@dataclass
class Forbidden:
    """The strings an injected text must not contain, each with where it comes from.

    A view over batteries, not a battery: D1-D3 need only prefixes, cue words and margin
    prompts, so battery files are read by the one loader (`ungrok.probes.battery`).
    """

    prefixes: dict[str, str] = field(default_factory=dict)
    cues: dict[str, str] = field(default_factory=dict)
    margins: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, int]:
        return {"prefixes": len(self.prefixes), "cues": len(self.cues), "margin_prompts": len(self.margins)}


def load_forbidden(rules_dir: str | Path | None = None, files: Iterable[str | Path] = ()) -> Forbidden:
    """Every rule's battery prefixes, cue words and margin prompts, plus battery JSONL files'
    prefixes (each file validated by `load_battery`, so a malformed one fails here too)."""
    b = Forbidden()
    for spec in load_rules(rules_dir).values():
        lists = lists_for(spec, rules_dir)
        where = f"rule {spec.name}"
        for item in expand_probes(spec, lists):
            b.prefixes.setdefault(item["prefix"], f"{where} battery")
        for cue in spec.cues:
            for w in resolve_list(cue.words, lists):
                b.cues.setdefault(str(w), f"{where} cue class {cue.name}")
        for t in spec.probes:
            if "n" in t.slots:
                for w in resolve_list(t.slots["n"], lists):
                    if isinstance(w, str):
                        b.cues.setdefault(w, f"{where} probe names")
        if spec.margin is not None:
            cm, neutral = margin_prompts(spec, lists)
            for p in cm + neutral:
                b.margins.setdefault(p, f"{where} margin prompts")
    for f in files:
        for item in load_battery(f).items:
            b.prefixes.setdefault(item["prefix"], str(f))
    return b


# ---------------------------------------------------------------------- D1, D2 (text level)
def check_names(names: list[str], battery: Forbidden) -> None:
    """D1: the rescue names share no member with any battery cue list (case-insensitive)."""
    cues = {w.lower(): (w, where) for w, where in battery.cues.items()}
    for n in names:
        if n.lower() in cues:
            w, where = cues[n.lower()]
            raise UngrokError(f"D1: rescue name {n!r} collides with battery cue {w!r} ({where})")


def check_universe(frames: list[str], names: list[str], pronouns: list[str], battery: Forbidden) -> None:
    """D2: no battery prefix is a substring of any sentence a rescue generator with these frames,
    names and pronouns can emit."""
    text = "\n".join(f.replace("{n}", n).replace("{p}", p) for f in frames for n in names for p in pronouns)
    for prefix, where in battery.prefixes.items():
        at = text.find(prefix)
        if at >= 0:
            sentence = text[text.rfind("\n", 0, at) + 1 :].split("\n", 1)[0]
            raise UngrokError(
                f"D2: battery prefix {prefix!r} ({where}) is a substring of rescue sentence {sentence!r}"
            )


# ---------------------------------------------------------------------- D2, D3 (token level)
def _forms(text: str) -> list[str]:
    return [text, " " + text]


def _cue_forms(word: str) -> list[str]:
    cap = word[:1].upper() + word[1:]
    return list(dict.fromkeys([word, " " + word, cap, " " + cap]))


def forbidden_sequences(battery: Forbidden, tok: Any) -> tuple[list[Seq], list[str]]:
    """Token sequences of every battery string in the forms it could take inside running text."""
    unk = tok.token_to_id(UNK)
    seqs: list[Seq] = []
    labels: list[str] = []
    groups = [
        ("D2: battery cue", battery.cues, _cue_forms),
        ("D2: battery prefix", battery.prefixes, _forms),
        ("D3: margin prompt", battery.margins, _forms),
    ]
    for kind, strings, forms in groups:
        for s, where in strings.items():
            for form in forms(s):
                ids = tuple(tok.encode(form, add_special_tokens=False).ids)
                if ids and (unk is None or unk not in ids):
                    seqs.append(ids)
                    labels.append(f"{kind} {s!r} ({where})")
    return seqs, labels


def check_injected(corpus_dir: str | Path, battery: Forbidden) -> dict[str, Any]:
    """D2/D3: scan an injected-text corpus for any battery string as a token sequence."""
    c = Corpus(corpus_dir, verify=False)  # diagnostic: name the offending string, not the hash
    tok = load_tokenizer(c.tokenizer_path)
    seqs, labels = forbidden_sequences(battery, tok)
    matcher = SeqMatcher(seqs)
    starts = shard_starts(c)
    total = int(starts[-1])
    reach = max(matcher.max_len - 1, 0)
    for a, b, toks in chunks(c, MATCH_CHUNK, reach):
        pos, pid = matcher.find(toks, 0, b - a)
        if pos.size:
            at = pid[pos == pos[0]]  # several strings may start here: name the longest
            best = int(at[np.argmax([len(seqs[int(i)]) for i in at])])
            g = a + int(pos[0])
            shard = int(np.searchsorted(starts, g, side="right")) - 1
            file = c.manifest.shards[shard].file
            raise UngrokError(
                f"{labels[best]} occurs in {Path(corpus_dir) / file} at token {g - int(starts[shard]):,}"
            )
    return {"tokens_scanned": total, "sequences": len(seqs)}


# ---------------------------------------------------------------------- D4
def check_token_count(dst: str | Path) -> dict[str, Any]:
    """D4: the edited corpus has exactly its source's token count (source read when present)."""
    c = Corpus(dst, verify=False)  # diagnostic: D4 names the count it finds
    src = c.manifest.source.get("source", {})
    want = src.get("total_tokens")
    if want is None:
        raise UngrokError(f"{dst}: manifest records no source token count")
    if c.manifest.total_tokens != want:
        raise UngrokError(f"D4: {dst} holds {c.manifest.total_tokens:,} tokens but its source {want:,}")
    path = src.get("path")
    live = None
    if path and (Path(path) / MANIFEST).is_file():
        live = Corpus(path, verify=False).manifest.total_tokens
        if live != c.manifest.total_tokens:
            raise UngrokError(f"D4: {dst} holds {c.manifest.total_tokens:,} tokens but {path} holds {live:,}")
    return {"tokens": c.manifest.total_tokens, "source_tokens": want, "source_checked": live is not None}


def check_kill_bytes(dst: str | Path, rules_dir: str | Path | None = None) -> dict[str, Any]:
    """Re-verify a kill against its source: same shard sizes, and every changed token is a kill flip."""
    from ungrok.rules.tokens import resolve_tokens

    c = Corpus(dst, verify=False)  # diagnostic: name the changed token, not the hash
    prov = c.manifest.source
    path = prov.get("source", {}).get("path")
    if not path or not (Path(path) / MANIFEST).is_file():
        return {"checked": False, "why": "source corpus not found"}
    s = Corpus(path, verify=False)
    spec = get_rule(prov["rule"], rules_dir)
    rt = resolve_tokens(spec, lists_for(spec, rules_dir), load_tokenizer(c.tokenizer_path))
    flips = {a[0]: b[0] for a, b in rt.flips if len(a) == 1 and len(b) == 1}
    if [x.tokens for x in s.manifest.shards] != [x.tokens for x in c.manifest.shards]:
        raise UngrokError(f"D4: {dst} and its source {path} have different shard sizes")
    lut = np.full(max(c.manifest.vocab_size, s.manifest.vocab_size, 1), -1, dtype=np.int64)
    for a_id, b_id in flips.items():
        lut[a_id] = b_id
    changed = 0
    for i, info in enumerate(c.manifest.shards):
        a, b = s.shard(i), c.shard(i)
        for lo in range(0, info.tokens, MATCH_CHUNK):
            x, y = np.asarray(a[lo : lo + MATCH_CHUNK]), np.asarray(b[lo : lo + MATCH_CHUNK])
            diff = np.flatnonzero(x != y)
            bad = diff[lut[x[diff].astype(np.int64)] != y[diff].astype(np.int64)]
            if bad.size:
                j = int(bad[0])
                raise UngrokError(
                    f"D4: {Path(dst) / info.file} token {lo + j:,} changed from id {int(x[j])} to "
                    f"{int(y[j])}, which is not a kill flip"
                )
            changed += int(diff.size)
    if changed != prov.get("flipped_sites"):
        raise UngrokError(f"D4: {dst} differs from its source at {changed:,} tokens; the manifest records "
                          f"{prov.get('flipped_sites')} flipped sites")
    return {"checked": True, "changed_tokens": changed}


# ---------------------------------------------------------------------- the gate
def _edited_dirs(dst: Path) -> list[Path]:
    if (dst / MANIFEST).is_file():
        out = [dst]
        if (dst / "phase_b" / MANIFEST).is_file():
            out.append(dst / "phase_b")
        return out
    if (dst / "ladder.json").is_file():
        return sorted(p for p in dst.iterdir() if (p / MANIFEST).is_file())
    raise UngrokError(f"{dst}: not an edited corpus (no manifest.json or ladder.json)")


def check_edited(
    dst: str | Path, battery_files: list[str | Path] | tuple = (), rules_dir: str | Path | None = None
) -> dict[str, Any]:
    """Run D1-D4 on an edited corpus (kill, ladder or rescue); raises on the first failure."""
    dst = Path(dst)
    battery: Forbidden | None = None
    report: dict[str, Any] = {}
    for d in _edited_dirs(dst):
        prov = Corpus(d, verify=False).manifest.source
        kind = prov.get("edit")
        label = str(d)
        if kind == "kill":
            report[label] = {
                "edit": "kill",
                "D4": check_token_count(d),
                "bytes": check_kill_bytes(d, rules_dir),
            }
        elif kind == "rescue":
            battery = battery or load_forbidden(rules_dir, battery_files)
            r: dict[str, Any] = {"edit": "rescue", "battery": battery.summary()}
            check_names(prov.get("names", []), battery)
            r["D1"] = "passed"
            check_universe(prov.get("frames", []), prov.get("names", []), prov.get("pronouns", []), battery)
            synth = d / prov["injected"]["corpus"] if prov.get("injected") else None
            r["D2_D3"] = check_injected(synth, battery) if synth else "no injected text in this phase"
            if prov.get("placement") == "replace" or not prov.get("injected"):
                r["D4"] = check_token_count(d)
            report[label] = r
        else:
            raise UngrokError(f"{d}: not an edited corpus (its manifest records no kill or rescue)")
    return report
