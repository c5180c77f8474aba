"""Models and tokenizers the scorer can read: our checkpoints and Hugging Face causal LMs.

Both sides meet in two small adapters: a model gives fp32 logits for right-padded id
batches (`LogitsModel`), a tokenizer gives ids for text without special tokens
(`TextTokenizer`).

Two knobs set the arithmetic. `precision` ("fp32" | "bf16") is how the forward's matmuls
run: bf16 wraps the forward in `torch.autocast(device, bfloat16)` with the weights left
fp32, on the CPU and on GPUs alike, for our checkpoints and hub models (CPUs with bf16
dot-product instructions run those matmuls several times faster). `dtype` ("float32" |
"bfloat16", hub models only) is how the weights are stored; bf16 weights stay GPU-only.
Either way the adapters hand back fp32 logits and the log-softmax runs in fp32.

A checkpoint's tokenizer is the one its training corpus was
encoded with: `--tokenizer FILE` if given, else the corpus named by the run's
`config.json` (key "data", or "sampler" -> "data"), whose folder holds tokenizer.json.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ungrok.errors import UngrokError, first_line
from ungrok.model.compiled import compiled
from ungrok.model.gpt import read_positions

DTYPES = ("float32", "bfloat16")
PRECISIONS = ("fp32", "bf16")


def resolve_device(device: str = "auto") -> torch.device:
    """A torch device; auto means the GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UngrokError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UngrokError(f"device {device!r} asked for, but no GPU is available")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """fp32 everywhere; bf16 only on a GPU (the paper scores in fp32)."""
    if dtype not in DTYPES:
        raise UngrokError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if dtype == "bfloat16" and device.type != "cuda":
        raise UngrokError(
            "--dtype bfloat16 is for GPUs (bf16 weights); on the CPU use --precision bf16 (bf16 matmuls, fp32 weights)"
        )
    return torch.float32 if dtype == "float32" else torch.bfloat16


def resolve_precision(precision: str) -> str:
    """fp32 or bf16 (autocast matmuls); valid on every device, so only the name is checked."""
    if precision not in PRECISIONS:
        raise UngrokError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast around a forward (matmuls in bf16, weights untouched), or nothing for fp32."""
    if resolve_precision(precision) == "bf16":
        return torch.autocast(device.type, torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Score in eval mode and give a model being trained back in its own mode."""
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


# --------------------------------------------------------------------------- models
class GPTLogits:
    """Our GPT (`ungrok.model.GPT`): logits at the asked-for positions only.

    The model's head runs at just the (row, position) pairs read (its `positions`
    argument), so a 2-position read of a 6-token row pays 2 rows of the vocabulary
    projection instead of 6. Right padding needs no mask (the model is causal).
    `precision="bf16"` autocasts the forward (module docstring); logits come back fp32.
    `compile=True` runs the forward through torch.compile with dynamic shapes: one graph
    serves every batch of every plan and every checkpoint of the same architecture (the
    compiled code is kept per process), so a sweep over many checkpoints pays the compile
    (tens of seconds) once; a single checkpoint is faster eager. Compiled arithmetic fuses
    operations, so its last bits differ from the eager forward's.
    """

    def __init__(self, model: Any, precision: str = "fp32", compile: bool = False):
        self.precision = resolve_precision(precision)
        self.model = model
        self.vocab_size = int(model.config.vocab_size)
        self.context = int(model.config.context)
        self.device = next(model.parameters()).device
        self.forward = compiled(model, "--compile", dynamic=True) if compile else model

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        with eval_mode(self.model), autocast(self.device, self.precision):
            return self.forward(input_ids, positions=positions).float()


class HFLogits:
    """A transformers causal LM; logits cast to fp32, gathered at the positions read.

    `precision="bf16"` autocasts the forward, whatever dtype the weights are stored in;
    `compile=True` compiles it as GPTLogits does (one graph per architecture and process).
    """

    def __init__(self, model: Any, precision: str = "fp32", compile: bool = False):
        self.precision = resolve_precision(precision)
        self.model = model
        self.vocab_size = int(model.get_input_embeddings().num_embeddings)
        limit = getattr(model.config, "max_position_embeddings", None)
        self.context = int(limit) if isinstance(limit, int) and limit > 0 else None
        self.device = next(model.parameters()).device
        self.forward = compiled(model, "--compile", dynamic=True) if compile else model

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        with eval_mode(self.model), autocast(self.device, self.precision):
            out = self.forward(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        if positions is not None:
            out = read_positions(out, positions)
        return out.float()


# --------------------------------------------------------------------------- tokenizers
class TokenizerFile:
    """A `tokenizers` tokenizer (our corpora's tokenizer.json), without special tokens."""

    def __init__(self, tokenizer: Any, path: str | Path | None = None):
        from ungrok.corpus.tokenizer import UNK

        self.tokenizer = tokenizer
        self.path = Path(path) if path is not None else None
        self.vocab_size = int(tokenizer.get_vocab_size(with_added_tokens=True))
        self.unk_id = tokenizer.token_to_id(UNK)
        self.bos_id = None

    @classmethod
    def load(cls, path: str | Path) -> TokenizerFile:
        from ungrok.corpus.tokenizer import load_tokenizer

        return cls(load_tokenizer(path), path)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]


class HFTokenizer:
    """A transformers tokenizer called as `tokenizer(s, add_special_tokens=False)` (the paper's way).

    Byte-level BPE tokenizers never emit their unknown token for text, so nothing is
    skipped for it (unk_id None).
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.vocab_size = len(tokenizer)
        self.unk_id = None
        self.bos_id = tokenizer.bos_token_id

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return [list(x) for x in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]


# --------------------------------------------------------------------------- own runs
def run_checkpoints(run_dir: str | Path) -> list:
    """The run's complete checkpoints in step order; none at all is an error."""
    from ungrok.model import list_checkpoints

    cks = list_checkpoints(run_dir)
    if not cks:
        raise UngrokError(f"{run_dir}: no checkpoints (expected checkpoints/model_NNNNNN.json)")
    return cks


def _config_data_path(run_dir: Path) -> Path | None:
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        return None
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UngrokError(f"{cfg_path}: unreadable run config ({e})") from None
    data = cfg.get("data") if isinstance(cfg, dict) else None
    if data is None and isinstance(cfg, dict) and isinstance(cfg.get("sampler"), dict):
        data = cfg["sampler"].get("data")
    if isinstance(data, dict):
        data = data.get("path")
    if not isinstance(data, str) or not data:
        return None
    p = Path(data)
    if not p.is_absolute() and not p.exists() and (run_dir / p).exists():
        p = run_dir / p
    return p


def run_tokenizer_path(run_dir: str | Path, tokenizer: str | Path | None = None) -> Path:
    """The tokenizer a run was trained with: explicit, else its corpus's tokenizer.json."""
    if tokenizer is not None:
        p = Path(tokenizer)
        if not p.is_file():
            raise UngrokError(f"{p}: tokenizer file not found")
        return p
    run = Path(run_dir)
    data = _config_data_path(run)
    if data is None:
        raise UngrokError(f"{run}: no corpus named in {run / 'config.json'}; pass --tokenizer FILE")
    from ungrok.corpus.shards import Corpus

    path = Corpus(data).tokenizer_path
    if not path.is_file():
        raise UngrokError(f"{data}: corpus has no tokenizer.json; pass --tokenizer FILE")
    return path


def load_own_checkpoint(
    ck: Any, device: torch.device, precision: str = "fp32", compile: bool = False
) -> GPTLogits:
    """A checkpoint (ungrok.model Checkpoint or path) as a scorer adapter: fp32 weights on device,
    matmuls in `precision`, the forward compiled if asked (GPTLogits)."""
    from ungrok.model import load_checkpoint

    return GPTLogits(load_checkpoint(ck, device=str(device)).model, precision, compile)


# --------------------------------------------------------------------------- Hugging Face
def load_hf(
    name: str, revision: str, dtype: str = "float32", device: str = "auto", precision: str = "fp32",
    compile: bool = False,
) -> tuple[HFLogits, HFTokenizer]:
    """`from_pretrained(name, revision=...)` for the model and its tokenizer, ready to score.

    `dtype` stores the weights (bf16 on GPUs only); `precision` runs the matmuls (bf16 anywhere);
    `compile` compiles the forward (HFLogits).
    A revision the hub (or, offline, the local cache) does not have is one error line.
    """
    import transformers
    from transformers import AutoModelForCausalLM

    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    resolve_precision(precision)
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        tok = load_hf_tokenizer(name, revision)
        with _hub_load(name, revision):
            model = AutoModelForCausalLM.from_pretrained(name, revision=revision, dtype=torch_dtype)
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    model.to(dev).eval()
    return HFLogits(model, precision, compile), tok


@contextlib.contextmanager
def _hub_load(name: str, revision: str) -> Iterator[None]:
    """A `from_pretrained` that fails (no such repository, revision or file) as one error line."""
    try:
        yield
    except (OSError, ValueError) as e:
        raise UngrokError(f"cannot load {name} at revision {revision!r}: {first_line(e)}") from None


def load_hf_tokenizer(name: str, revision: str) -> HFTokenizer:
    """The tokenizer of a hub model at a revision, wrapped for the scorer."""
    from transformers import AutoTokenizer

    with _hub_load(name, revision):
        return HFTokenizer(AutoTokenizer.from_pretrained(name, revision=revision))
