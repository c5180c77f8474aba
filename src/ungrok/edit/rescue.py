"""RESCUE: inject rule-supporting documents at a dose (docs/method.md §8.3-8.4).

The generator fills the rule's rescue frames ("{n} opened the door, and then {p}
walked outside.") with its rescue names and pronoun, and the same number of control
sentences (boy -> he for girl -> she), each with a uniformly drawn frame and name;
the sentences are shuffled and grouped `sentences_per_doc` to a document. The event
count is n_events = round(dose x unit x W): W is the base corpus's token count and the
unit a support density (rule events per token), either given or measured as the rule's
own density in a reference corpus (`unit_from`, e.g. TinyStories for the paper's δ_TS).

Placements (docs/method.md §16.3 records that the paper's text and code differ):
- append: the injected shards are added next to the unchanged base shards (hard-linked),
  so the corpus grows by the injected tokens (the paper's code);
- replace: as many tokens of neutral base documents (no cue of the rule, no rescue name)
  are removed as are injected, so the token count stays fixed (the paper's text). The
  last removed document is cut short, keeping its head and end-of-text, so the count
  matches exactly.

The injected text is its own corpus folder (`synth/`) inside the output and is listed
in the output's manifest as `synth/shard_*.bin`. The build counts the injected events
with the support counter (names as token sequences, window first-pronoun logic) and
refuses below 95% of the intended count, and runs the disjointness gate D1-D3 on it.

Timing (`window`): phased exposure uses the trainer's `sampler.phase_b` (one switch
step). An early window [0, E) puts base + injected text (dose scaled by steps/E) in the
main folder and the plain base in `phase_b/`, switching at E; a late window [S, steps)
does the reverse, switching at S. `phase.yaml` holds the sampler section to train with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ungrok.corpus.shards import DEFAULT_SHARD_TOKENS, Corpus, ShardInfo, ShardWriter
from ungrok.corpus.tokenizer import UNK, load_tokenizer
from ungrok.edit.checks import Forbidden, check_injected, check_names, check_universe, load_forbidden
from ungrok.edit.outputs import chunks, link_shards, new_folder, source_identity, write_corpus
from ungrok.edit.sites import encode_words
from ungrok.errors import UngrokError
from ungrok.limits import check_seed
from ungrok.outputs import guard_output
from ungrok.rules.registry import get_rule, lists_for
from ungrok.rules.spec import RuleSpec, resolve_list
from ungrok.rules.tokens import resolve_tokens

PLACEMENTS = ("append", "replace")
ACCOUNTING_MIN = 0.95
SYNTH = "synth"
PHASE_B = "phase_b"
PHASE_FILE = "phase.yaml"
BLOCK_SENTENCES = 1 << 18
VERIFY_DOCS = 256
CHUNK_TOKENS = 8_000_000
DEFAULT_STEPS = 4400


# ---------------------------------------------------------------------- the generator
@dataclass(frozen=True)
class RescueClass:
    label: str  # rule | control
    names: tuple[str, ...]
    pronoun: str


@dataclass(frozen=True)
class RescueText:
    """A rule's rescue generator with its lists resolved."""

    rule: str
    frames: tuple[str, ...]
    classes: tuple[RescueClass, ...]
    sentences_per_doc: int

    @property
    def names(self) -> list[str]:
        return [n for c in self.classes for n in c.names]

    @property
    def pronouns(self) -> list[str]:
        return [c.pronoun for c in self.classes]

    def sentence(self, cls: int, frame: int, name: int) -> str:
        c = self.classes[cls]
        return self.frames[frame].replace("{n}", c.names[name]).replace("{p}", c.pronoun)


def rescue_text(spec: RuleSpec, lists: dict[str, list[Any]]) -> RescueText:
    """Resolve the rule's rescue spec (names, pronouns, frames)."""
    if spec.rescue is None:
        raise UngrokError(f"rule {spec.name!r} has no rescue spec; it cannot be rescued")
    r = spec.rescue
    classes = tuple(
        RescueClass(label, tuple(map(str, resolve_list(k.names, lists))), k.pronoun)
        for label, k in (("rule", r.rule_class), ("control", r.control_class))
        if k is not None
    )
    return RescueText(spec.name, tuple(map(str, resolve_list(r.frames, lists))), classes, r.sentences_per_doc)


class SentenceTable:
    """Every sentence pre-tokenised twice: opening a document, and after a joining space.

    Sentence b (class c, frame f, name n) is variant 2b (opening) and 2b+1 (joined).
    """

    def __init__(self, text: RescueText, tok: Any):
        self.text = text
        self.n_names = np.array([len(c.names) for c in text.classes], dtype=np.int64)
        sizes = self.n_names * len(text.frames)
        self.cls_offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        unk = tok.token_to_id(UNK)
        seqs: list[list[int]] = []
        self.texts: list[str] = []
        for c in range(len(text.classes)):
            for f in range(len(text.frames)):
                for n in range(len(text.classes[c].names)):
                    s = text.sentence(c, f, n)
                    self.texts.append(s)
                    for form in (s, " " + s):
                        ids = tok.encode(form, add_special_tokens=False).ids
                        if not ids or (unk is not None and unk in ids):
                            raise UngrokError(
                                f"rescue sentence {s!r} needs the unknown token under this tokenizer"
                            )
                        seqs.append(list(ids))
        self.lens = np.array([len(s) for s in seqs], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lens)[:-1]]).astype(np.int64)
        self.flat = np.array([t for s in seqs for t in s], dtype=np.int64)

    def base(self, cls: np.ndarray, frame: np.ndarray, name: np.ndarray) -> np.ndarray:
        return self.cls_offset[cls] + frame * self.n_names[cls] + name

    def gather(self, variants: np.ndarray) -> np.ndarray:
        lens = self.lens[variants]
        ends = np.cumsum(lens)
        idx = np.arange(int(ends[-1]) if ends.size else 0, dtype=np.int64)
        idx += np.repeat(self.offsets[variants] - (ends - lens), lens)
        return self.flat[idx]


@dataclass
class Injected:
    tokens: int = 0
    documents: int = 0
    sentences: tuple[int, ...] = ()
    encoding: str = "concatenated"


def generate(
    table: SentenceTable,
    tok: Any,
    eot: int,
    n_events: int,
    seed: int,
    writer: ShardWriter,
) -> Injected:
    """Write n_events sentences per class, shuffled, grouped into documents; bounded memory.

    The shuffle is drawn block by block: each block takes a hypergeometric share of the
    remaining rule and control sentences and permutes it, which is a uniform shuffle of
    the whole sequence. Draws come from numpy default_rng(seed).
    """
    text = table.text
    rng = np.random.default_rng(seed)
    spd = text.sentences_per_doc
    n_cls = len(text.classes)
    remaining = [n_events] * n_cls
    total = n_events * n_cls
    block = max(spd, (BLOCK_SENTENCES // spd) * spd)
    done = 0
    out = Injected(sentences=tuple(remaining))
    while done < total:
        m = min(block, total - done)
        if n_cls == 2:
            k = int(rng.hypergeometric(remaining[0], remaining[1], m)) if remaining[1] else m
            cls = np.repeat(np.array([0, 1], dtype=np.int64), [k, m - k])
            rng.shuffle(cls)
            remaining = [remaining[0] - k, remaining[1] - (m - k)]
        else:
            cls = np.zeros(m, dtype=np.int64)
        frame = rng.integers(0, len(text.frames), size=m)
        name = (rng.random(m) * table.n_names[cls]).astype(np.int64)
        g = done + np.arange(m, dtype=np.int64)
        pos = g % spd
        variant = table.base(cls, frame, name) * 2 + (pos != 0)
        ends = (pos == spd - 1) | (g == total - 1)
        if out.encoding == "concatenated":
            ids = table.gather(variant)
            cut = np.cumsum(table.lens[variant])[ends]
            ids = np.insert(ids, cut, eot)
            if done == 0 and not _concatenation_holds(table, tok, eot, variant, ends, ids):
                out.encoding = "encoded"
        if out.encoding == "encoded":
            ids = _encode_documents(table, tok, eot, variant, ends)
        writer.write(ids, documents=int(ends.sum()))
        out.tokens += int(ids.size)
        out.documents += int(ends.sum())
        done += m
    return out


def _documents(
    table: SentenceTable, variant: np.ndarray, ends: np.ndarray, limit: int | None = None
) -> list[str]:
    docs, cur = [], []
    for v, e in zip(variant.tolist(), ends.tolist(), strict=True):
        cur.append(table.texts[v // 2])
        if e:
            docs.append(" ".join(cur))
            cur = []
            if limit is not None and len(docs) >= limit:
                break
    return docs


def _encode_documents(
    table: SentenceTable, tok: Any, eot: int, variant: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    enc = tok.encode_batch(_documents(table, variant, ends), add_special_tokens=False)
    return np.array([t for e in enc for t in [*e.ids, eot]], dtype=np.int64)


def _concatenation_holds(table, tok, eot, variant, ends, ids) -> bool:  # noqa: ANN001
    """Does joining pre-tokenised sentences give the tokenizer's own encoding? (checked on a sample)"""
    docs = _documents(table, variant, ends, VERIFY_DOCS)
    want = np.array([t for e in tok.encode_batch(docs, add_special_tokens=False) for t in [*e.ids, eot]])
    return np.array_equal(ids[: want.size], want)


# ---------------------------------------------------------------------- accounting
def accounting_spec(text: RescueText, spec: RuleSpec, tok: Any) -> RuleSpec:
    """A window rule whose cue classes are the rescue names: the multi-token event matcher."""
    unk = tok.token_to_id(UNK)

    def forms(p: str) -> list[str]:
        cands = [" " + p, " " + p[:1].upper() + p[1:]]
        ok = []
        for f in dict.fromkeys(cands):
            ids = tok.encode(f, add_special_tokens=False).ids
            if ids and (unk is None or unk not in ids):
                ok.append(f)
        return ok

    window = getattr(spec.event, "window", 16)
    rule_forms = forms(text.classes[0].pronoun)
    if len(text.classes) > 1:
        prior_forms = forms(text.classes[1].pronoun)
    else:
        conflict = [c for c in spec.cues if c.role == "conflict"] or list(spec.cues)
        prior_forms = [t for c in conflict for t in c.prior] or [" he"]
    cues = [{"name": "rescue_rule", "words": list(text.classes[0].names), "rule": rule_forms,
             "prior": prior_forms, "role": "conflict"}]
    if len(text.classes) > 1:
        cues.append({"name": "rescue_control", "words": list(text.classes[1].names), "rule": prior_forms,
                     "prior": rule_forms, "role": "agree"})
    return RuleSpec.model_validate(
        {"name": "rescue_accounting", "cues": cues, "event": {"kind": "window", "window": window}}
    )


def measure_injected(synth: Path, acc: RuleSpec, n_events: int, n_classes: int) -> dict[str, Any]:
    """Count the injected events with the support counter; refuse below 95% of intended."""
    from ungrok.support.count import count

    table = count(synth, [acc])
    if acc.name in table.skipped:
        raise UngrokError(f"rescue accounting cannot run: {table.skipped[acc.name]}")
    classes = table.rules[acc.name]["classes"]
    measured = {"rule": classes["rescue_rule"]["rule_events"]}
    if n_classes > 1:
        measured["control"] = classes["rescue_control"]["rule_events"]
    frac = {k: v / n_events for k, v in measured.items()}
    if min(frac.values()) < ACCOUNTING_MIN:
        worst = min(frac, key=frac.get)
        raise UngrokError(
            f"rescue accounting: the matcher found {measured[worst]:,} of {n_events:,} intended {worst} "
            f"events ({frac[worst]:.1%} < {ACCOUNTING_MIN:.0%}); the build is refused"
        )
    return {
        "intended_per_class": n_events,
        "measured": measured,
        "fraction": frac,
        "threshold": ACCOUNTING_MIN,
        "matcher": {
            "counter": "support engine, window first-target logic",
            "window": acc.event.window,  # type: ignore[union-attr]
            "rule_targets": acc.cues[0].rule,
            "prior_targets": acc.cues[0].prior,
        },
    }


# ---------------------------------------------------------------------- placement
def forbidden_tokens(spec: RuleSpec, lists: dict, tok: Any, text: RescueText, vocab: int) -> np.ndarray:
    """Tokens that make a base document non-neutral: the rule's cues (or targets) and rescue names."""
    rt = resolve_tokens(spec, lists, tok, with_kill=False)
    seqs = [s for c in rt.cues for s in c.sequences] or list(rt.rule) + list(rt.prior)
    seqs += encode_words(tok, text.names)
    lut = np.zeros(vocab, dtype=np.bool_)
    for s in seqs:
        lut[list(s)] = True
    return lut


def neutral_documents(c: Corpus, lut: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, end-of-text position, neutral) for every document of the stream, in one pass."""
    eot = c.manifest.eot_id
    ends_parts, cum_parts = [], []
    carry = 0
    V = lut.size
    for a, _, raw in chunks(c, CHUNK_TOKENS):
        toks = raw.astype(np.int64)
        bad = np.where(toks < V, lut[np.minimum(toks, V - 1)], True)
        cum = carry + np.cumsum(bad, dtype=np.int64)
        e = np.flatnonzero(toks == eot)
        ends_parts.append(e + a)
        cum_parts.append(cum[e])
        carry = int(cum[-1]) if cum.size else carry
    ends = np.concatenate(ends_parts) if ends_parts else np.zeros(0, dtype=np.int64)
    cum_at = np.concatenate(cum_parts) if cum_parts else np.zeros(0, dtype=np.int64)
    doc_start = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) if ends.size else ends
    neutral = np.diff(np.concatenate([[0], cum_at])) == 0
    return doc_start, ends, neutral


def removal_plan(
    starts: np.ndarray, ends: np.ndarray, neutral: np.ndarray, need: int, seed: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Random neutral documents covering exactly `need` tokens: (remove_lo, remove_hi inclusive,
    documents removed whole, tokens of the neutral pool). The last one keeps its head and EOT."""
    pool = np.flatnonzero(neutral)
    lens = ends[pool] - starts[pool] + 1
    available = int(lens.sum())
    if available < need:
        raise UngrokError(
            f"replace placement needs {need:,} tokens of neutral documents but the base has only "
            f"{available:,}; use --placement append or a smaller dose"
        )
    order = np.random.default_rng([seed, 1]).permutation(pool.size)
    cum = np.cumsum(lens[order])
    k = int(np.searchsorted(cum, need)) + 1  # documents needed
    chosen = pool[order[:k]]
    lo, hi = starts[chosen].copy(), ends[chosen].copy()
    excess = int(cum[k - 1]) - need
    whole = k
    if excess > 0:  # keep the last document's first excess-1 tokens and its end-of-text
        lo[-1] += excess - 1
        hi[-1] -= 1
        whole -= 1
    keep = np.argsort(lo)
    return lo[keep], hi[keep], whole, available


def write_without(c: Corpus, out: Path, lo: np.ndarray, hi: np.ndarray, shard_tokens: int) -> list[ShardInfo]:
    """The base stream minus the inclusive intervals [lo, hi], re-sharded, streamed."""
    writer = ShardWriter(out, c.manifest.dtype, shard_tokens)
    for a, b, toks in chunks(c, CHUNK_TOKENS):
        i0, i1 = np.searchsorted(hi, a, side="left"), np.searchsorted(lo, b, side="left")
        mark = np.zeros(b - a + 1, dtype=np.int64)
        if i1 > i0:
            np.add.at(mark, np.maximum(lo[i0:i1], a) - a, 1)
            np.add.at(mark, np.minimum(hi[i0:i1] + 1, b) - a, -1)
        keep = np.cumsum(mark[:-1]) == 0
        writer.write(toks[keep])
    return writer.finish()


# ---------------------------------------------------------------------- build
@dataclass
class Phase:
    """Where the injected text goes in time (None: uniform over the whole run)."""

    start: int
    end: int
    steps: int

    @property
    def early(self) -> bool:
        return self.start == 0

    @property
    def switch_step(self) -> int:
        return self.end if self.early else self.start

    @property
    def scale(self) -> float:
        return self.steps / (self.end - self.start)


def parse_window(window: str | None, steps: int) -> Phase | None:
    """'START:END' (END may be empty: the last step) -> a Phase; refuses windows phase_b cannot express."""
    if window is None:
        return None
    try:
        a, b = window.split(":")
        start = int(a) if a.strip() else 0
        end = int(b) if b.strip() else steps
    except ValueError:
        raise UngrokError(f"--window {window!r}: expected START:END in training steps, e.g. 0:2400") from None
    if steps < 1:
        raise UngrokError("--steps must be at least 1")
    if not 0 <= start < end <= steps:
        raise UngrokError(f"--window {window!r}: need 0 <= START < END <= steps ({steps})")
    if start == 0 and end == steps:
        raise UngrokError(f"--window {window!r} covers every step; drop --window for uniform injection")
    if start > 0 and end < steps:
        raise UngrokError(
            f"--window {window!r}: a middle window needs three phases; the trainer's phase_b switches once, "
            "so use an early window (0:E) or a late one (S:)"
        )
    return Phase(start, end, steps)


def _resolve_unit(unit: float | None, unit_from: str | Path | None, spec: RuleSpec, rules_dir: Any) -> dict:
    if (unit is None) == (unit_from is None):
        raise UngrokError("give the dose unit: --unit-from DIR (the rule's density there) or --unit X")
    if unit is not None:
        if not (math.isfinite(unit) and unit > 0):
            raise UngrokError(f"--unit {unit} must be a positive number of events per token")
        return {"events_per_token": float(unit), "from": "given"}
    from ungrok.support.count import count

    table = count(unit_from, [spec], rules_dir=rules_dir)  # type: ignore[arg-type]
    row = table.rules.get(spec.name)
    if row is None or row["rule_events"] == 0:
        raise UngrokError(
            f"rule {spec.name!r} has no rule events in {unit_from}; it cannot set the dose unit"
        )
    return {
        "events_per_token": row["rule_events"] / table.tokens,
        "from": str(Path(unit_from).resolve()),  # type: ignore[arg-type]
        "rule_events": row["rule_events"],
        "tokens": table.tokens,
    }


@dataclass
class _Build:
    spec: RuleSpec
    corpus: Corpus
    tok: Any
    lists: dict
    text: RescueText
    battery: Forbidden
    seed: int
    placement: str
    rules_dir: Any


def _plain_base(b: _Build, out: Path, prov: dict[str, Any]) -> None:
    c = b.corpus
    prov = {**prov, "injected": None, "placement": None, "base_shards": link_shards(c, out)}
    write_corpus(out, c, list(c.manifest.shards), c.manifest.documents, prov)


def _with_injection(b: _Build, out: Path, n_events: int, prov: dict[str, Any]) -> dict[str, Any]:
    c, tok = b.corpus, b.tok
    shard_tokens = max([s.tokens for s in c.manifest.shards] or [DEFAULT_SHARD_TOKENS])
    synth = out / SYNTH
    synth.mkdir(parents=True)
    writer = ShardWriter(synth, c.manifest.dtype, shard_tokens)
    inj = generate(SentenceTable(b.text, tok), tok, c.manifest.eot_id, n_events, b.seed, writer)
    synth_shards = writer.finish()
    synth_prov = {"edit": "rescue-injected", "rule": b.spec.name, "n_events": n_events, "seed": b.seed}
    write_corpus(synth, c, synth_shards, inj.documents, synth_prov)
    accounting = measure_injected(synth, accounting_spec(b.text, b.spec, tok), n_events, len(b.text.classes))
    disjoint = check_injected(synth, b.battery)
    removed = None
    if b.placement == "append":
        base_note: Any = link_shards(c, out)
        base_shards, base_docs = list(c.manifest.shards), c.manifest.documents
    else:
        lut = forbidden_tokens(b.spec, b.lists, tok, b.text, max(c.manifest.vocab_size, tok.get_vocab_size()))
        starts, ends, neutral = neutral_documents(c, lut)
        lo, hi, whole, pool = removal_plan(starts, ends, neutral, inj.tokens, b.seed)
        base_shards = write_without(c, out, lo, hi, shard_tokens)
        base_docs = c.manifest.documents - whole
        base_note = "rewritten without the removed documents"
        removed = {
            "tokens": int((hi - lo + 1).sum()),
            "documents_whole": whole,
            "documents_cut": len(lo) - whole,
            "neutral_pool_tokens": pool,
            "neutral_documents": int(neutral.sum()),
            "neutral_rule": "no token of the rule's cue sequences (targets for cue-less rules) or of a rescue name",
        }
    shards = base_shards + [
        ShardInfo(file=f"{SYNTH}/{s.file}", tokens=s.tokens, sha256=s.sha256) for s in synth_shards
    ]
    prov = {
        **prov,
        "placement": b.placement,
        "base_shards": base_note,
        "injected": {
            "corpus": SYNTH,
            "tokens": inj.tokens,
            "documents": inj.documents,
            "sentences": dict(zip([k.label for k in b.text.classes], inj.sentences, strict=True)),
            "encoding": inj.encoding,
            "sentences_per_doc": b.text.sentences_per_doc,
        },
        "accounting": accounting,
        "disjointness": {"D1": "passed", "D2_D3": disjoint, "battery": b.battery.summary()},
        "removed": removed,
    }
    m = write_corpus(out, c, shards, base_docs + inj.documents, prov)
    if b.placement == "replace" and m.total_tokens != c.manifest.total_tokens:
        raise UngrokError(
            f"D4: replace placement wrote {m.total_tokens:,} tokens, source has {c.manifest.total_tokens:,}"
        )
    return prov


def build_rescue(
    src: str | Path,
    dst: str | Path,
    rule: str | RuleSpec,
    dose: float,
    *,
    unit: float | None = None,
    unit_from: str | Path | None = None,
    placement: str = "append",
    window: str | None = None,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    battery_files: list[str | Path] | tuple = (),
    rules_dir: str | Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Build the rescue corpus `dst` from `src`; returns the provenance of the injected phase."""
    if not (isinstance(dose, (int, float)) and math.isfinite(dose) and dose > 0):
        raise UngrokError(f"dose {dose} must be > 0")
    if placement not in PLACEMENTS:
        raise UngrokError(f"--placement {placement!r}: use append or replace")
    phase = parse_window(window, steps)
    check_seed(seed)
    guard_output(dst, inputs=[src, unit_from, *battery_files], force=force, folder=True, corpus=True)
    spec = rule if isinstance(rule, RuleSpec) else get_rule(rule, rules_dir)
    lists = lists_for(spec, rules_dir)
    text = rescue_text(spec, lists)
    battery = load_forbidden(rules_dir, battery_files)
    check_names(text.names, battery)
    check_universe(list(text.frames), text.names, text.pronouns, battery)
    c = Corpus(src)
    tok = load_tokenizer(c.tokenizer_path)
    unit_info = _resolve_unit(unit, unit_from, spec, rules_dir)
    W = c.manifest.total_tokens
    effective = dose * (phase.scale if phase else 1.0)
    n_events = int(round(effective * unit_info["events_per_token"] * W))
    if n_events < 1:
        raise UngrokError(
            f"dose {dose:g} x unit {unit_info['events_per_token']:.3g} x {W:,} tokens rounds to 0 events"
        )
    b = _Build(spec, c, tok, lists, text, battery, seed, placement, rules_dir)
    prov: dict[str, Any] = {
        "edit": "rescue",
        "rule": spec.name,
        "dose": dose,
        "unit": unit_info,
        "base_tokens": W,
        "n_events": n_events,
        "n_events_formula": "round(dose x unit x base_tokens" + (" x steps/(end-start))" if phase else ")"),
        "seed": seed,
        "rng": "numpy default_rng(seed): class shuffle, frame and name per sentence",
        "names": text.names,
        "pronouns": text.pronouns,
        "frames": list(text.frames),
        "source": source_identity(c),
    }
    with new_folder(dst, force) as tmp:
        if phase is None:
            result = _with_injection(b, tmp, n_events, prov)
        else:
            info = {"start": phase.start, "end": phase.end, "steps": phase.steps,
                    "switch_step": phase.switch_step, "dose_in_window": effective}
            a_prov = {**prov, "window": {**info, "phase": "A"}}
            b_prov = {**prov, "window": {**info, "phase": "B"}}
            if phase.early:
                result = _with_injection(b, tmp, n_events, a_prov)
                _plain_base(b, tmp / PHASE_B, b_prov)
            else:
                _plain_base(b, tmp, a_prov)
                result = _with_injection(b, tmp / PHASE_B, n_events, b_prov)
            _write_phase_file(tmp, Path(dst), phase)
    return result


def _write_phase_file(tmp: Path, dst: Path, phase: Phase) -> None:
    doc = {"sampler": {"steps": phase.steps, "phase_b": {"data": str(dst.resolve() / PHASE_B),
                                                           "switch_step": phase.switch_step}}}
    head = (
        f"# Phased rescue exposure: train with --data {dst.resolve()} and merge this sampler section\n"
        f"# into the training config (steps [0, {phase.switch_step}) read --data, later steps read phase_b).\n"
    )
    (tmp / PHASE_FILE).write_text(head + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

