"""Batched forced-choice scoring (docs/method.md §3.1) for our GPT and Hugging Face causal LMs alike.

Score of a continuation = summed log-probability of its tokens given the prefix; the
prefix and the continuation are encoded separately and their ids concatenated (no BOS
unless asked for); log-softmax runs over the model's fp32 logits (fp32 also when the
adapter's forward autocasts to bf16, `precision="bf16"` in ungrok.probes.models); an item is right
iff logp(correct) > logp(distractor) strictly, so ties count wrong. Items whose prefix
or continuation encodes to nothing (or to the tokenizer's unknown token) are skipped
and counted.

Why it is fast: every log-probability needed is "token t after context x", where x is
a prefix plus the first j tokens of a continuation. The contexts are deduplicated and
folded into a trie, and the model runs once per trie leaf only: a causal model's
logits at position k of a sequence depend only on its first k+1 tokens, so one
forward of the longest sequence serves every context that is a prefix of it. With
single-token continuations that is one forward per unique prefix. Leaves are sorted
by length and batched under a token budget with right padding (safe for a causal
model at the positions read; HF models also get the attention mask), and the
vocabulary projection runs only at the positions read where the model allows it.
The plan (tokenization, trie, batches) depends on the battery and the tokenizer, not
the model, so it is built once and reused for every checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ungrok.errors import UngrokError
from ungrok.probes.battery import Battery
from ungrok.probes.models import autocast

DEFAULT_BATCH_TOKENS = 1024  # fastest on 2 CPU cores for the 11.5M model (bench/scoring.py)

Seq = tuple[int, ...]


class LogitsModel(Protocol):
    """What the scorer needs from a model: fp32 logits for right-padded id batches.

    `positions` (LongTensor [N, 2] of (row, position) pairs), if given, asks for the
    logits at those N places only ([N, V]); an adapter may compute them all and gather
    (`read_positions`). None asks for every position ([B, T, V]).
    """

    vocab_size: int  # rows of the input embedding
    context: int | None  # longest sequence the model accepts (None: no limit known)
    device: torch.device

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor: ...


class TextTokenizer(Protocol):
    """Text to ids without special tokens; `vocab_size` counts added tokens too."""

    vocab_size: int
    unk_id: int | None  # ids containing it are skipped (None: the tokenizer never emits one)

    def encode(self, text: str) -> list[int]: ...


def _encode_all(tokenizer: Any, texts: Sequence[str]) -> dict[str, Seq]:
    """Each distinct text encoded once (batched when the tokenizer can)."""
    uniq = list(dict.fromkeys(texts))
    batch = getattr(tokenizer, "encode_batch", None)
    encoded = batch(uniq) if batch is not None else [tokenizer.encode(t) for t in uniq]
    return {t: tuple(int(i) for i in ids) for t, ids in zip(uniq, encoded, strict=True)}


@dataclass(frozen=True)
class _Batch:
    input_ids: torch.Tensor  # [B, T] right-padded with 0
    attention_mask: torch.Tensor  # [B, T]
    positions: torch.Tensor  # [N, 2]: the (row, position) pairs whose logits are read
    reads: torch.Tensor  # [Q] per query read here: which of the N pairs, and the token id
    tokens: torch.Tensor
    query_index: np.ndarray  # [Q] where each read value goes in the plan's query array


class PairPlan:
    """log p(a | prefix) and log p(b | prefix) for many (prefix, a, b) triples, shared contexts.

    Built once per (triples, tokenizer); `logprobs(model)` runs the model over the trie
    leaves and returns float64 arrays (NaN where skipped).
    """

    def __init__(
        self,
        triples: Sequence[tuple[str, str, str]],
        tokenizer: TextTokenizer,
        prepend: Sequence[int] = (),
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
    ):
        if batch_tokens < 1:
            raise UngrokError(f"batch tokens must be at least 1, not {batch_tokens}")
        self.tokenizer_vocab = int(tokenizer.vocab_size)
        unk = getattr(tokenizer, "unk_id", None)
        enc = _encode_all(tokenizer, [s for t in triples for s in t])
        n = len(triples)
        self.n = n
        self.skipped = np.zeros(n, dtype=bool)
        self.lengths = np.zeros((n, 2), dtype=np.int64)
        head = tuple(int(i) for i in prepend)

        contexts: dict[Seq, int] = {}
        queries: dict[tuple[int, int], int] = {}
        owner: list[int] = []  # per (side, token): the side index 2*i + s
        which: list[int] = []  # per (side, token): the query it reads
        for i, (p, a, b) in enumerate(triples):
            ids = (enc[p], enc[a], enc[b])
            if any(not x or (unk is not None and unk in x) for x in ids):
                self.skipped[i] = True
                continue
            prefix = head + ids[0]
            for s, cont in enumerate(ids[1:]):
                self.lengths[i, s] = len(cont)
                for j, tok in enumerate(cont):
                    ctx = contexts.setdefault(prefix + cont[:j], len(contexts))
                    q = queries.setdefault((ctx, tok), len(queries))
                    owner.append(2 * i + s)
                    which.append(q)
        self._owner = np.asarray(owner, dtype=np.int64)
        self._which = np.asarray(which, dtype=np.int64)
        self.n_queries = len(queries)
        self.max_id = max([t for _, t in queries] + [max(c) for c in contexts], default=-1)
        self.leaves = _trie_leaves(list(contexts))
        self.max_len = max((len(x) for x in self.leaves), default=0)
        self.n_tokens = sum(len(x) for x in self.leaves)
        self._batches = _make_batches(self.leaves, contexts, queries, batch_tokens)

    def check(self, model: LogitsModel) -> None:
        """Refuse a tokenizer/model pair that cannot be right: more ids than embedding rows."""
        if self.tokenizer_vocab > model.vocab_size or self.max_id >= model.vocab_size:
            raise UngrokError(
                f"the tokenizer has {max(self.tokenizer_vocab, self.max_id + 1):,} ids but the model embeds only "
                f"{model.vocab_size:,}; this is not the tokenizer the model was trained with"
            )
        if model.context is not None and self.max_len > model.context:
            raise UngrokError(
                f"a scored sequence has {self.max_len} tokens, more than the model's context of {model.context}"
            )

    @torch.no_grad()
    def logprobs(self, model: LogitsModel) -> tuple[np.ndarray, np.ndarray]:
        """(log p(a|prefix), log p(b|prefix)) per triple as float64; NaN where skipped."""
        self.check(model)
        q_lp = np.zeros(self.n_queries, dtype=np.float64)
        dev = model.device
        # One autocast region around every batch: its weight-cast cache then casts each fp32
        # weight to bf16 once per checkpoint instead of once per batch (the adapters' own
        # autocast nests inside it). no_grad, not inference_mode: autocast does not cache
        # casts under inference_mode.
        with autocast(dev, getattr(model, "precision", "fp32")):
            for b in self._batches:
                logits = model.logits(b.input_ids.to(dev), b.attention_mask.to(dev), b.positions.to(dev))
                lp = torch.log_softmax(logits.float(), dim=-1)
                vals = lp[b.reads.to(dev), b.tokens.to(dev)]
                q_lp[b.query_index] = vals.double().cpu().numpy()
        sums = np.bincount(self._owner, weights=q_lp[self._which], minlength=2 * self.n)
        sums = sums.reshape(self.n, 2)
        sums[self.skipped] = np.nan
        return sums[:, 0], sums[:, 1]


def _trie_leaves(contexts: list[Seq]) -> list[Seq]:
    """Contexts that are no proper prefix of another context, sorted by (length, ids)."""
    inner = {c[:k] for c in contexts for k in range(1, len(c))}
    return sorted((c for c in contexts if c not in inner), key=lambda c: (len(c), c))


def _make_batches(
    leaves: list[Seq], contexts: dict[Seq, int], queries: dict[tuple[int, int], int], batch_tokens: int
) -> list[_Batch]:
    """Assign every context to (leaf, position) and cut the length-sorted leaves into batches."""
    where: dict[int, tuple[int, int]] = {}
    for li, leaf in enumerate(leaves):
        for k in range(1, len(leaf) + 1):
            ctx = contexts.get(leaf[:k])
            if ctx is not None and ctx not in where:
                where[ctx] = (li, k - 1)
    by_ctx: dict[int, list[tuple[int, int]]] = {}
    for (ctx, tok), q in queries.items():
        by_ctx.setdefault(ctx, []).append((tok, q))
    needed: list[list[int]] = [[] for _ in leaves]  # per leaf: contexts read from it
    for ctx, (li, _) in sorted(where.items()):
        needed[li].append(ctx)

    batches: list[_Batch] = []
    start = 0
    while start < len(leaves):
        width = len(leaves[start])
        stop = start + 1
        while stop < len(leaves) and (stop - start + 1) * max(width, len(leaves[stop])) <= batch_tokens:
            width = max(width, len(leaves[stop]))
            stop += 1
        batches.append(_batch(leaves[start:stop], needed[start:stop], where, by_ctx, width))
        start = stop
    return batches


def _batch(
    leaves: list[Seq],
    needed: list[list[int]],
    where: dict[int, tuple[int, int]],
    by_ctx: dict[int, list[tuple[int, int]]],
    width: int,
) -> _Batch:
    n_rows = len(leaves)
    ids = torch.zeros((n_rows, width), dtype=torch.long)
    mask = torch.zeros((n_rows, width), dtype=torch.long)
    pairs: list[tuple[int, int]] = []  # only the places read: no padding to the widest row
    reads, toks, qidx = [], [], []
    for r, (leaf, ctxs) in enumerate(zip(leaves, needed, strict=True)):
        ids[r, : len(leaf)] = torch.tensor(leaf, dtype=torch.long)
        mask[r, : len(leaf)] = 1
        for ctx in ctxs:
            for tok, q in by_ctx[ctx]:
                reads.append(len(pairs))
                toks.append(tok)
                qidx.append(q)
            pairs.append((r, where[ctx][1]))
    return _Batch(
        ids,
        mask,
        torch.tensor(pairs, dtype=torch.long).reshape(-1, 2),
        torch.tensor(reads, dtype=torch.long),
        torch.tensor(toks, dtype=torch.long),
        np.asarray(qidx, dtype=np.int64),
    )


@dataclass(frozen=True)
class GroupScore:
    """One (family, condition, split) of a battery at one checkpoint."""

    family: str
    condition: str
    split: str
    accuracy: float | None  # None when every item of the group was skipped
    n_items: int  # items scored
    n_skipped: int
    mean_margin: float | None  # mean of logp(correct) - logp(distractor)
    mean_margin_norm: float | None  # same with each side divided by its token count


@dataclass(frozen=True)
class BatteryScores:
    """Per-item log-probabilities of one model on one battery (arrays aligned with its items)."""

    battery: Battery
    logp_correct: np.ndarray  # float64; NaN where skipped
    logp_distractor: np.ndarray
    len_correct: np.ndarray  # tokens of each continuation (0 where skipped)
    len_distractor: np.ndarray
    skipped: np.ndarray  # bool

    @property
    def correct(self) -> np.ndarray:
        """Strictly greater: ties (e.g. an untrained model's all-zero logits) count wrong."""
        with np.errstate(invalid="ignore"):
            return (self.logp_correct > self.logp_distractor) & ~self.skipped

    @property
    def margin(self) -> np.ndarray:
        return self.logp_correct - self.logp_distractor

    @property
    def margin_norm(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.logp_correct / self.len_correct - self.logp_distractor / self.len_distractor

    def groups(self) -> list[GroupScore]:
        """Accuracy, counts and mean margins per (family, condition, split), sorted by key."""
        index: dict[tuple[str, str, str], list[int]] = {}
        for i in range(len(self.battery)):
            index.setdefault(self.battery.group_key(i), []).append(i)
        correct, margin, norm = self.correct, self.margin, self.margin_norm
        out = []
        for (fam, cond, split), idx in sorted(index.items()):
            ix = np.asarray(idx)
            kept = ix[~self.skipped[ix]]
            n = int(kept.size)
            out.append(
                GroupScore(
                    fam,
                    cond,
                    split,
                    float(correct[kept].mean()) if n else None,
                    n,
                    int(ix.size - n),
                    float(margin[kept].mean()) if n else None,
                    float(norm[kept].mean()) if n else None,
                )
            )
        return out

    def item_rows(self) -> list[dict[str, Any]]:
        """One dict per item (for bootstrap CIs): ids, template, log-probs, margin, correct."""
        correct = self.correct
        rows = []
        for i, it in enumerate(self.battery.items):
            fam, cond, split = self.battery.group_key(i)
            skip = bool(self.skipped[i])
            rows.append(
                {
                    "item_id": it["item_id"],
                    "family": fam,
                    "condition": cond,
                    "split": split,
                    "template_id": it["template_id"],
                    "skipped": skip,
                    "logp_correct": None if skip else float(self.logp_correct[i]),
                    "logp_distractor": None if skip else float(self.logp_distractor[i]),
                    "correct": bool(correct[i]),
                }
            )
        return rows

    @property
    def n_skipped(self) -> int:
        return int(self.skipped.sum())


class BatteryPlan:
    """A battery tokenized and planned for one tokenizer; score any number of models with it.

    plan = BatteryPlan(load_battery("rvp3.jsonl"), TokenizerFile.load("tokenizer.json"))
    scores = plan.score(GPTLogits(model))       # BatteryScores
    for g in scores.groups(): ...                # accuracy per (family, condition, split)
    """

    def __init__(
        self,
        battery: Battery,
        tokenizer: TextTokenizer,
        prepend: Sequence[int] = (),
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
    ):
        self.battery = battery
        triples = [(it["prefix"], it["correct"], it["distractor"]) for it in battery.items]
        self.pairs = PairPlan(triples, tokenizer, prepend, batch_tokens)

    def score(self, model: LogitsModel) -> BatteryScores:
        lp_c, lp_d = self.pairs.logprobs(model)
        return BatteryScores(
            self.battery,
            lp_c,
            lp_d,
            self.pairs.lengths[:, 0].copy(),
            self.pairs.lengths[:, 1].copy(),
            self.pairs.skipped.copy(),
        )


def score_battery(
    model: LogitsModel,
    tokenizer: TextTokenizer,
    battery: Battery,
    prepend: Sequence[int] = (),
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> BatteryScores:
    """One-shot convenience; build a BatteryPlan yourself to score many checkpoints."""
    return BatteryPlan(battery, tokenizer, prepend, batch_tokens).score(model)
