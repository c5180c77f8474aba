"""Tokenizers: load a `tokenizer.json`, train a byte-level BPE, or build storyworld's word-level one.

All three are Hugging Face `tokenizers` objects, so a corpus, a battery and a model
agree on ids through one file whose sha256 the manifest records.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tokenizers.pre_tokenizers import ByteLevel

from ungrok.errors import UngrokError

EOT = "<|endoftext|>"
UNK = "<|unk|>"


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a `tokenizer.json`; an unreadable or malformed file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise UngrokError(f"{path}: tokenizer file not found")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises plain Exception subclasses
        raise UngrokError(f"{path}: not a valid tokenizer.json ({str(e).splitlines()[0]})") from None


def eot_id(tok: Tokenizer) -> int:
    """The end-of-text id every document is followed by."""
    for name in (EOT, "</s>", "<eos>", "[EOS]"):
        i = tok.token_to_id(name)
        if i is not None:
            return int(i)
    raise UngrokError(f"tokenizer has no end-of-text token (expected {EOT!r})")


def train_bpe(texts: Iterable[str], vocab_size: int, length: int | None = None) -> Tokenizer:
    """Train a byte-level BPE like the paper's (no prefix space; EOT is id 0).

    Training is deterministic for a fixed input order.
    """
    if vocab_size < 257 + 1:
        raise UngrokError(f"--vocab-size {vocab_size} is below the 256 bytes plus end-of-text")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=length)
    return tok


def build_word_tokenizer(words: Iterable[str], punctuation: Iterable[str] = ()) -> Tokenizer:
    """A word-level tokenizer over a closed lexicon, for storyworld.

    Byte-level pre-tokenization splits text exactly as GPT-2-style BPE does ("Sue cried
    because" -> "Sue", " cried", " because"), so every word gets its bare and its
    space-prefixed form as one token each. Ids: EOT 0, UNK 1, then sorted pieces, so
    the same lexicon always gives the same ids.
    """
    mapper = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    forms = [f for w in words for f in (w, " " + w)] + list(punctuation)
    pieces = {mapper.pre_tokenize_str(f)[0][0] for f in forms}
    vocab = {EOT: 0, UNK: 1}
    for p in sorted(pieces):
        vocab.setdefault(p, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOT])
    return tok


def encode_batches(tok: Tokenizer, texts: Iterable[str], batch: int = 1024) -> Iterator[list[list[int]]]:
    """Encode texts in batches (the Rust side uses its own threads)."""
    it = iter(texts)
    while buf := list(islice(it, batch)):
        yield [e.ids for e in tok.encode_batch(buf, add_special_tokens=False)]
