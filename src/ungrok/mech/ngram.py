"""The n-gram baseline (docs/method.md §13): Stupid Backoff over a run's served stream, scored like a model.

Which verdicts would an n-gram model share? Stupid Backoff (Brants et al. 2007) of
orders 2 and 5, α = 0.4, is counted over exactly the tokens a run's sampler served,
snapshotted at each checkpoint's step, scored on the battery with the neural scorer's
forced-choice rule, and written as `RUN/traj.ngram.parquet` in the traj.parquet format
with run = "<run>#ngram2" / "<run>#ngram5", so the frozen classifier reads it unchanged.

Score conventions (each a choice; the paper's code is not public in detail):
- Counts are taken inside one window at a time: the sampler serves independent windows
  of context + 1 tokens, and the model never sees across them. count(g) = occurrences
  of the n-gram g inside a window; count(ctx) = occurrences of ctx *followed by a token
  of the same window*, so count(ctx) = Σ_w count(ctx w) and the estimate is the maximum
  likelihood conditional. (Raw occurrences differ only at a window's last token.)
  Unigram level: count(w) / total, total = tokens counted.
- S(w | h) for order n uses the last n - 1 tokens of h. Let top = min(n, len(h) + 1),
  the highest order the history allows. At the longest m ≤ top with count(ctx_m w) > 0,
  S = α^(top - m) · count(ctx_m w) / count(ctx_m) (m = 1: count(w) / total). Unseen at
  every order: S = α^top · ½ / total, i.e. half a count one level below the unigram, so
  any seen token beats an unseen one and two unseen tokens tie. The penalty counts the
  backoffs actually taken: a 3-token prefix scored by the 5-gram model is scored as by
  the 4-gram model, not charged for context that does not exist (with single-token
  continuations both sides share the prefix, so the choice cannot change a verdict).
  Before any token is counted (step 0) total is taken as 1: every item ties and counts
  wrong, as an untrained model's uniform logits do.
- A continuation of several tokens scores the product over its tokens, each given the
  prefix and the continuation's earlier tokens. Scores are exact rationals (α = 2/5),
  so equal scores are equal exactly; an item is right iff S(correct) > S(distractor)
  strictly (ties wrong), and traj.parquet's margins are in natural-log units of S.

Why counting is fast: only the n-grams the battery asks about are counted. Their set
(every (context, next) pair of every order ≤ n, and every context) is closed under
taking suffixes, so it is a suffix trie: at each position the counter walks backwards
from the token there, one sorted-array lookup per step, and stops at the first miss,
which for most positions is the first token (a table lookup). One pass serves every
order and every checkpoint (snapshots of cumulative counts).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numba
import numpy as np

from ungrok.errors import UngrokError
from ungrok.probes.battery import Battery
from ungrok.probes.score import BatteryScores, TextTokenizer, _encode_all

ALPHA = 0.4
ORDERS = (2, 5)
NGRAM_FILE = "traj.ngram.parquet"
UNSEEN_COUNT = Fraction(1, 2)  # the pseudo-count of a token unseen at every order

Seq = tuple[int, ...]
Query = tuple[Seq, int]  # (history, next token)


# --------------------------------------------------------------------------- counting
@numba.njit(cache=True, nogil=True, boundscheck=False)
def _count_rows(rows, comp, uni, keys, kids, k1, max_len, occ, followed):  # noqa: ANN001, ANN202
    """For each window (row) and position i, walk the suffix trie backwards from rows[r, i]."""
    n_rows, width = rows.shape
    n_tab = comp.shape[0]
    n_keys = keys.shape[0]
    for r in range(n_rows):
        for i in range(width):
            t = np.int64(rows[r, i])
            if t >= n_tab:
                continue
            node = uni[t]
            if node < 0:
                continue
            has_next = np.int64(i + 1 < width)
            occ[node] += 1
            followed[node] += has_next
            depth = 1
            while depth < max_len and depth <= i:
                u = np.int64(rows[r, i - depth])
                c = comp[u] if u < n_tab else 0
                if c == 0:
                    break
                key = (node + 1) * k1 + c
                j = np.searchsorted(keys, key)
                if j == n_keys or keys[j] != key:
                    break
                node = kids[j]
                occ[node] += 1
                followed[node] += has_next
                depth += 1


def query_patterns(queries: Iterable[Query], max_order: int) -> list[Seq]:
    """Every n-gram a Stupid-Backoff score of these queries reads, up to max_order tokens.

    For (h, w): the grams h[-(m-1):] + (w,) and the contexts h[-(m-1):] for every order m
    the history allows. The set is suffix-closed, which the trie walk relies on.
    """
    out: set[Seq] = set()
    for h, w in queries:
        h = tuple(h)
        h = h[len(h) - min(len(h), max_order - 1) :]
        for m in range(1, len(h) + 2):
            ctx = h[len(h) - (m - 1) :]
            out.add((*ctx, int(w)))
            if ctx:
                out.add(ctx)
    return sorted(out, key=lambda s: (len(s), s[::-1]))


@dataclass(frozen=True)
class NgramCounts:
    """Counts at one moment: per pattern, occurrences and occurrences followed by a token."""

    index: dict[Seq, int]
    occ: np.ndarray
    followed: np.ndarray
    total: int
    max_order: int  # the longest n-grams counted: serves Stupid Backoff of any order up to this

    def _at(self, seq: Seq) -> int:
        k = self.index.get(tuple(seq))
        if k is None:
            raise KeyError(f"n-gram {tuple(seq)} was not among the counted queries")
        return k

    def gram(self, seq: Seq) -> int:
        """Occurrences of seq inside a window."""
        return int(self.occ[self._at(seq)])

    def context(self, seq: Seq) -> int:
        """Occurrences of seq followed by a token of the same window."""
        return int(self.followed[self._at(seq)])


class NgramCounter:
    """Exact counts of the n-grams a set of queries needs, accumulated over windows of tokens.

    `add(tokens)` counts a 1-D array as one window, or each row of a 2-D array as its own
    window (n-grams never cross rows); `snapshot()` returns the counts so far.
    """

    def __init__(self, queries: Iterable[Query], max_order: int):
        if max_order < 1:
            raise UngrokError(f"n-gram order must be at least 1, not {max_order}")
        self.max_order = max_order
        patterns = query_patterns(queries, max_order)
        self.index = {p: k for k, p in enumerate(patterns)}
        vocab = sorted({t for p in patterns for t in p})
        if vocab and vocab[0] < 0:
            raise UngrokError(f"token id {vocab[0]} is negative")
        size = (vocab[-1] + 1) if vocab else 1
        self._comp = np.zeros(size, dtype=np.int64)  # token -> 1..K (0: in no pattern)
        self._comp[vocab] = np.arange(1, len(vocab) + 1)
        self._k1 = len(vocab) + 1
        self._uni = np.full(size, -1, dtype=np.int64)  # token -> its unigram pattern
        child: dict[int, int] = {}
        for p, k in self.index.items():
            if len(p) == 1:
                self._uni[p[0]] = k
            else:  # the suffix p[1:] is present (suffix closure); p extends it by p[0] on the left
                parent = self.index[p[1:]]
                child[(parent + 1) * self._k1 + int(self._comp[p[0]])] = k
        keys = sorted(child)
        self._keys = np.array(keys, dtype=np.int64)
        self._kids = np.array([child[x] for x in keys], dtype=np.int64)
        self._max_len = max((len(p) for p in patterns), default=0)
        self.occ = np.zeros(len(patterns), dtype=np.int64)
        self.followed = np.zeros(len(patterns), dtype=np.int64)
        self.total = 0

    def add(self, tokens: np.ndarray) -> None:
        rows = np.asarray(tokens)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2:
            raise UngrokError(f"expected a 1-D token array or a 2-D array of windows, got {rows.ndim}-D")
        if rows.dtype.kind not in "iu":
            raise UngrokError(f"token arrays must hold integers, not {rows.dtype}")
        if rows.dtype.kind == "i" and rows.size and int(rows.min()) < 0:
            raise UngrokError("token arrays must not hold negative ids")
        rows = np.ascontiguousarray(rows)
        self.total += rows.size
        if rows.size and self._max_len:
            _count_rows(rows, self._comp, self._uni, self._keys, self._kids, self._k1, self._max_len,
                        self.occ, self.followed)

    def snapshot(self) -> NgramCounts:
        return NgramCounts(self.index, self.occ.copy(), self.followed.copy(), self.total, self.max_order)


# --------------------------------------------------------------------------- scores
def _alpha(alpha: float) -> Fraction:
    if not 0 < alpha <= 1:
        raise UngrokError(f"backoff alpha must be in (0, 1], not {alpha}")
    return Fraction(repr(float(alpha)))  # 0.4 -> 2/5 exactly


class StupidBackoff:
    """Stupid-Backoff scores S(w | h) of one order from exact counts (see the module docstring).

    sb = StupidBackoff.fit(tokens, queries=[((a, b), c)], order=3)
    sb.score((a, b), c)          # Fraction
    """

    def __init__(self, counts: NgramCounts, order: int, alpha: float = ALPHA):
        if not 1 <= order <= counts.max_order:
            raise UngrokError(
                f"n-gram order must be in 1..{counts.max_order} (the counts' longest), not {order}"
            )
        self.counts = counts
        self.order = order
        self.alpha = _alpha(alpha)
        self._cache: dict[Query, Fraction] = {}

    @classmethod
    def fit(cls, tokens: np.ndarray | Sequence[int], queries: Iterable[Query], order: int,
            alpha: float = ALPHA) -> StupidBackoff:
        """Count `tokens` (1-D: one window; 2-D: one window per row) for these queries."""
        counter = NgramCounter(queries, order)
        counter.add(np.asarray(tokens))
        return cls(counter.snapshot(), order, alpha)

    def score(self, history: Sequence[int], token: int) -> Fraction:
        h = tuple(int(t) for t in history)
        h = h[len(h) - min(len(h), self.order - 1) :]
        key = (h, int(token))
        got = self._cache.get(key)
        if got is None:
            got = self._cache[key] = self._backoff(h, int(token))
        return got

    def _backoff(self, h: Seq, w: int) -> Fraction:
        c = self.counts
        top = len(h) + 1
        for m in range(top, 0, -1):
            ctx = h[len(h) - (m - 1) :]
            n = c.gram((*ctx, w))
            if n > 0:
                den = c.context(ctx) if ctx else c.total
                return self.alpha ** (top - m) * Fraction(n, den)
        return self.alpha**top * UNSEEN_COUNT / max(c.total, 1)

    def sequence_score(self, history: Sequence[int], continuation: Sequence[int]) -> Fraction:
        """Product over the continuation's tokens, each given history + the earlier ones."""
        h = tuple(int(t) for t in history)
        out = Fraction(1)
        for j, t in enumerate(continuation):
            out *= self.score(h + tuple(continuation[:j]), t)
        return out


def log_fraction(x: Fraction) -> float:
    """ln x of a positive rational, from its reduced numerator and denominator (equal x, equal float)."""
    return math.log(x.numerator) - math.log(x.denominator)


# --------------------------------------------------------------------------- battery
@dataclass(frozen=True)
class BatteryIds:
    """A battery's items as token ids under one tokenizer (the neural scorer's encoding)."""

    prefix: tuple[Seq, ...]
    correct: tuple[Seq, ...]
    distractor: tuple[Seq, ...]
    skipped: np.ndarray  # bool: prefix or a continuation encodes to nothing or holds the unknown id

    def queries(self) -> list[Query]:
        """Every (history, next token) a continuation score reads."""
        out: dict[Query, None] = {}
        for i in np.flatnonzero(~self.skipped):
            for cont in (self.correct[i], self.distractor[i]):
                for j, t in enumerate(cont):
                    out[(self.prefix[i] + cont[:j], t)] = None
        return list(out)


def battery_ids(battery: Battery, tokenizer: TextTokenizer) -> BatteryIds:
    """Encode prefix and continuations separately (no BOS), skipping as `PairPlan` does."""
    enc = _encode_all(tokenizer, [it[f] for it in battery.items for f in ("prefix", "correct", "distractor")])
    unk = getattr(tokenizer, "unk_id", None)
    cols: tuple[list[Seq], list[Seq], list[Seq]] = ([], [], [])
    skipped = np.zeros(len(battery), dtype=bool)
    for i, it in enumerate(battery.items):
        ids = [enc[it[f]] for f in ("prefix", "correct", "distractor")]
        skipped[i] = any(not x or (unk is not None and unk in x) for x in ids)
        for col, x in zip(cols, ids, strict=True):
            col.append(x)
    return BatteryIds(tuple(cols[0]), tuple(cols[1]), tuple(cols[2]), skipped)


def score_ids(model: StupidBackoff, battery: Battery, ids: BatteryIds) -> BatteryScores:
    """BatteryScores of the n-gram model: log S per side; right iff S(correct) > S(distractor)."""
    n = len(battery)
    lp = np.full((n, 2), np.nan)
    lengths = np.zeros((n, 2), dtype=np.int64)
    for i in np.flatnonzero(~ids.skipped):
        for s, cont in enumerate((ids.correct[i], ids.distractor[i])):
            lp[i, s] = log_fraction(model.sequence_score(ids.prefix[i], cont))
            lengths[i, s] = len(cont)
    return BatteryScores(battery, lp[:, 0], lp[:, 1], lengths[:, 0], lengths[:, 1], ids.skipped.copy())


def ngram_run_name(run: str, order: int, alpha: float = ALPHA) -> str:
    """E.g. "high/seed1#ngram5"; a non-default alpha is named too, so its rows never pass for α = 0.4."""
    return f"{run}#ngram{order}" if float(alpha) == ALPHA else f"{run}#ngram{order}-alpha{float(alpha):g}"


def group_rows(run: str, step: int, scores: BatteryScores) -> list[dict[str, Any]]:
    """traj.parquet rows (TRAJ_COLUMNS) of one scored snapshot (no revision: a step of the stream)."""
    from ungrok.probes.trajectories import group_rows as traj_rows

    return traj_rows(run, step, None, scores.battery.sha256, scores.groups())


# --------------------------------------------------------------------------- a run's served stream
@dataclass(frozen=True)
class ServedRun:
    """What reproduces a run's served stream: its corpus, sampler config and seed."""

    root: Path
    data: Path
    sampler: Any  # SamplerConfig, with phase_b.data resolved to the recorded path
    seed: int


def read_served_run(run_dir: str | Path) -> ServedRun:
    """A training run folder's config.json, checked against the corpus it names."""
    from ungrok.hashing import manifest_sha256
    from ungrok.train.config import parse_config

    root = Path(run_dir)
    path = root / "config.json"
    if not path.is_file():
        raise UngrokError(f"{root}: not a training run folder (no config.json)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UngrokError(f"{path}: unreadable run config ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise UngrokError(f"{path}: not a config.json written by `ungrok train`")
    cfg = parse_config(doc["config"], str(path))
    data = _recorded_corpus(doc, "data", path)
    sampler = cfg.sampler
    if sampler.phase_b is not None:
        phase_b = _recorded_corpus(doc, "phase_b_data", path)
        sampler = sampler.model_copy(
            update={"phase_b": sampler.phase_b.model_copy(update={"data": str(phase_b)})}
        )
    for key, p in (("data", data), ("phase_b_data", sampler.phase_b.data if sampler.phase_b else None)):
        if p is not None and manifest_sha256(p) != doc[key].get("manifest_sha256"):
            raise UngrokError(f"{p}: corpus manifest differs from the one {root.name} was trained on "
                              f"({path}: {key}.manifest_sha256)")
    return ServedRun(root, data, sampler, cfg.seed)


def _recorded_corpus(doc: dict, key: str, where: Path) -> Path:
    entry = doc.get(key)
    p = Path(entry["path"]) if isinstance(entry, dict) and isinstance(entry.get("path"), str) else None
    if p is None:
        raise UngrokError(f"{where}: names no corpus under {key}.path")
    if not (p / "manifest.json").is_file():
        raise UngrokError(f"{p}: the run's corpus is missing (named in {where})")
    return p


def _window_rows(sampler: Any, shards: np.ndarray, offsets: np.ndarray, maps: dict) -> np.ndarray:
    """The served windows of one step as a [rows, context + 1] array (one gather per shard)."""
    width = sampler.window
    out = np.empty((shards.size, width), dtype=sampler.corpus.dtype)
    span = np.arange(width, dtype=np.int64)
    for sh in np.unique(shards):
        key = (id(sampler), int(sh))
        if key not in maps:
            maps[key] = sampler.corpus.shard(int(sh))
        sel = np.flatnonzero(shards == sh)
        out[sel] = maps[key][offsets[sel, None] + span]
    return out


def served_snapshots(
    run: ServedRun,
    counter: NgramCounter,
    steps: Sequence[int],
    progress: Callable[[int], None] | None = None,
    flush_tokens: int = 1 << 24,
) -> dict[int, NgramCounts]:
    """Counts over the windows served before each step (a checkpoint at step s saw steps 0..s-1)."""
    from ungrok.train.sampler import served_windows

    want = sorted(set(int(s) for s in steps))
    if not want:
        return {}
    if want[0] < 0 or want[-1] > run.sampler.steps:
        raise UngrokError(f"steps must lie in 0..{run.sampler.steps} (the run's sampler.steps), "
                          f"not {want[0] if want[0] < 0 else want[-1]}")
    windows = served_windows(run.data, run.sampler, run.seed)
    wanted = set(want)
    maps: dict = {}
    pending: list[np.ndarray] = []
    held = 0
    out: dict[int, NgramCounts] = {}
    for step in range(want[-1] + 1):
        if step in wanted:
            for rows in pending:
                counter.add(rows)
            pending, held = [], 0
            out[step] = counter.snapshot()
        if step == want[-1]:
            break
        _, sampler, shards, offsets = next(windows)
        rows = _window_rows(sampler, shards, offsets, maps)
        pending.append(rows)
        held += rows.size
        if held >= flush_tokens:
            counter.add(np.concatenate(pending) if len(pending) > 1 else pending[0])
            pending, held = [], 0
        if progress:
            progress(1)
    return out


def _default_steps(root: Path, run_name: str) -> list[int]:
    """The run's checkpoint steps (the neural trajectory's axis), else its traj.parquet steps."""
    from ungrok.model.checkpoint import list_checkpoints

    if (root / "checkpoints").is_dir():
        steps = [ck.step for ck in list_checkpoints(root)]
        if steps:
            return steps
    steps = sorted({r["step"] for r in _traj_rows(root) if r["run"] == run_name})
    if not steps:
        raise UngrokError(f"{root}: no checkpoints and no traj.parquet rows to take steps from; pass steps")
    return steps


def _traj_rows(root: Path) -> list[dict[str, Any]]:
    from ungrok.probes.trajectories import TrajectoryStore

    return TrajectoryStore(root / "traj.parquet").rows


def default_run_name(run_dir: str | Path) -> str:
    """The run's name in its own traj.parquet if that holds exactly one, else the folder's name
    (the default of `ungrok score --run`)."""
    root = Path(run_dir)
    names = {r["run"] for r in _traj_rows(root)}
    return names.pop() if len(names) == 1 else root.resolve().name


def _checked_orders(orders: Sequence[int], alpha: float) -> list[int]:
    out = sorted({int(n) for n in orders})
    if not out or out[0] < 1:
        raise UngrokError(f"n-gram orders must be positive integers, not {list(orders)}")
    _alpha(alpha)
    return out


def _scored_steps(
    run_dir: Path, battery: Battery, orders: list[int], alpha: float, steps: list[int], name: str,
    progress: Callable[[int], None] | None,
) -> Iterator[tuple[str, int, BatteryScores]]:
    """(n-gram run name, step, scores) for every order and step, after one counting pass."""
    from ungrok.probes.models import TokenizerFile, run_tokenizer_path

    run = read_served_run(run_dir)
    ids = battery_ids(battery, TokenizerFile.load(run_tokenizer_path(run_dir)))
    counter = NgramCounter(ids.queries(), max(orders))
    snaps = served_snapshots(run, counter, steps, progress)
    for step in sorted(snaps):
        for n in orders:
            yield (
                ngram_run_name(name, n, alpha),
                step,
                score_ids(StupidBackoff(snaps[step], n, alpha), battery, ids),
            )


def ngram_trajectory(
    run_dir: Path,
    battery: Battery,
    orders: Sequence[int] = ORDERS,
    alpha: float = ALPHA,
    steps: list[int] | None = None,
    *,
    run_name: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """traj.parquet rows of the Stupid-Backoff models of `orders` at each step, one counting pass.

    Counts cover the windows the run's sampler served before each step, exactly as
    training drew them (same corpus, config and seed; phase B included). Steps default to
    the run's checkpoint steps; `progress(1)` is called per served step counted.
    """
    run_dir = Path(run_dir)
    orders = _checked_orders(orders, alpha)
    name = run_name or default_run_name(run_dir)
    steps = _default_steps(run_dir, name) if steps is None else list(steps)
    rows: list[dict[str, Any]] = []
    for run, step, scores in _scored_steps(run_dir, battery, orders, alpha, steps, name, progress):
        rows.extend(group_rows(run, step, scores))
    return rows


def write_ngram(
    run_dir: Path,
    battery: Battery,
    orders: Sequence[int] = ORDERS,
    alpha: float = ALPHA,
    steps: list[int] | None = None,
    *,
    out: Path | None = None,
    run_name: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write (or complete) RUN/traj.ngram.parquet (or `out`); returns its path.

    Rows already there (same n-gram run name, step and battery hash) are kept and not
    recomputed; the pass runs only as far as the last missing step. Rows of another
    battery for the same run are refused, as `ungrok score` does. The table is written
    atomically once the pass is done: an interrupted pass is simply run again (it is one
    pass over the served tokens, seconds per 100M tokens).
    """
    from ungrok.probes.trajectories import TrajectoryStore

    run_dir = Path(run_dir)
    path = Path(out) if out is not None else run_dir / NGRAM_FILE
    orders = _checked_orders(orders, alpha)
    store = TrajectoryStore(path)
    name = run_name or default_run_name(run_dir)
    runs = [ngram_run_name(name, n, alpha) for n in orders]
    for r in runs:
        store.check_compatible(r, battery, ())
    steps = _default_steps(run_dir, name) if steps is None else list(steps)
    missing = sorted({s for s in steps for r in runs if not store.has_scores(r, s, battery.sha256)})
    if missing or not path.exists():
        for run, step, scores in _scored_steps(run_dir, battery, orders, alpha, missing, name, progress):
            store.add_scores(run, step, None, battery.sha256, scores.groups())  # skips rows present
        store.save()
    return path


def ngram_table(run_dir: Path, battery: Any, name: str, force: bool, progress: bool) -> Path:
    """RUN/traj.ngram.parquet (resumed by write_ngram); with force, rebuilt beside it and swapped in whole."""
    from ungrok.progress import optional_bar

    dest = run_dir / NGRAM_FILE
    total = read_served_run(run_dir).sampler.steps
    with optional_bar(progress, "n-gram counts", total) as advance:
        if not force:
            return write_ngram(run_dir, battery, run_name=name, progress=advance)
        tmp = Path(tempfile.mkdtemp(prefix=f".{NGRAM_FILE}.", dir=run_dir))
        try:
            write_ngram(run_dir, battery, run_name=name, out=tmp / NGRAM_FILE, progress=advance)
            os.replace(tmp / NGRAM_FILE, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
