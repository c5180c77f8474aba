"""Read documents from a user's corpus, streaming, in a deterministic order.

Formats: `.txt` (one document per blank-line-separated block, or per file),
`.jsonl` (a text field), `.parquet` (a text column), a Hugging Face dataset saved
with `save_to_disk`, or a hub dataset by name (`datasets.load_dataset`, streamed).
Folders expand to their files in sorted order, so a rebuild reads the same stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from ungrok.errors import UngrokError

TxtMode = Literal["blocks", "file"]
SUFFIXES = (".txt", ".jsonl", ".parquet")


def is_hf_saved_dataset(path: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    return path.is_dir() and (
        (path / "dataset_info.json").is_file()
        or (path / "state.json").is_file()
        or (path / "dataset_dict.json").is_file()
    )


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Inputs in the given order; a folder contributes its corpus files sorted by name."""
    out: list[Path] = []
    for p in inputs:
        p = Path(p)
        if not p.exists():
            raise UngrokError(f"{p}: input not found")
        if p.is_dir() and not is_hf_saved_dataset(p):
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in SUFFIXES)
            if not files:
                raise UngrokError(f"{p}: folder holds no .txt, .jsonl or .parquet files")
            out.extend(files)
        else:
            out.append(p)
    return out


def _txt_documents(path: Path, mode: TxtMode) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8") as f:
            if mode == "file":
                yield f.read().rstrip("\r\n")
                return
            block: list[str] = []
            for line in f:
                if line.strip():
                    block.append(line)
                elif block:
                    yield "".join(block).rstrip("\r\n")  # the block's last newline separates
                    block = []
            if block:
                yield "".join(block).rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise UngrokError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise UngrokError(f"{path}: cannot read ({e.strerror})") from None


def _jsonl_documents(path: Path, field: str) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UngrokError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                if not isinstance(rec, dict) or field not in rec:
                    raise UngrokError(f"{path}:{n}: no {field!r} field (set it with --text-field)")
                text = rec[field]
                if not isinstance(text, str):
                    raise UngrokError(f"{path}:{n}: field {field!r} is not a string")
                yield text
    except UnicodeDecodeError as e:
        raise UngrokError(f"{path}: not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise UngrokError(f"{path}: cannot read ({e.strerror})") from None


def _parquet_documents(path: Path, field: str) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise UngrokError(f"{path}: not a readable parquet file ({str(e).splitlines()[0]})") from None
    if field not in pf.schema_arrow.names:
        raise UngrokError(f"{path}: no {field!r} column (set it with --text-field)")
    kind = pf.schema_arrow.field(field).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        # Stringifying numbers or lists would train on text no one wrote.
        raise UngrokError(f"{path}: column {field!r} holds {kind}, not text (set --text-field)")
    for batch in pf.iter_batches(columns=[field], batch_size=4096):
        for text in batch.column(0).to_pylist():
            if text is not None:
                yield text


def _hf_column(ds: object, field: str, where: str) -> Iterator[str]:
    names = getattr(ds, "column_names", None) or []
    if field not in names:
        raise UngrokError(f"{where}: no {field!r} column (set it with --text-field)")
    for batch in ds.iter(batch_size=1024):  # type: ignore[attr-defined]
        for text in batch[field]:
            if text is None:
                continue
            if not isinstance(text, str):
                raise UngrokError(f"{where}: column {field!r} holds {type(text).__name__}, not text")
            yield text


def _hf_saved_documents(path: Path, field: str, split: str) -> Iterator[str]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises many kinds
        raise UngrokError(f"{path}: not a loadable saved dataset ({str(e).splitlines()[0]})") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise UngrokError(f"{path}: no split {split!r} (has {', '.join(ds.keys())})")
        ds = ds[split]
    yield from _hf_column(ds, field, str(path))


def hub_documents(name: str, field: str = "text", split: str = "train") -> Iterator[str]:
    """Stream a hub dataset by name (needs network access to the hub; not used in tests)."""
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split, streaming=True)
    except Exception as e:
        raise UngrokError(f"--hf-dataset {name}: cannot load ({str(e).splitlines()[0]})") from None
    for rec in ds:
        if field not in rec:
            raise UngrokError(f"--hf-dataset {name}: no {field!r} field (set it with --text-field)")
        if rec[field] is not None:
            yield str(rec[field])


def iter_documents(
    inputs: list[Path],
    text_field: str = "text",
    txt_mode: TxtMode = "blocks",
    split: str = "train",
) -> Iterator[str]:
    """Every non-empty document of every input, in order."""
    for path in expand_inputs(inputs):
        if is_hf_saved_dataset(path):
            docs = _hf_saved_documents(path, text_field, split)
        elif path.suffix == ".txt":
            docs = _txt_documents(path, txt_mode)
        elif path.suffix == ".jsonl":
            docs = _jsonl_documents(path, text_field)
        elif path.suffix == ".parquet":
            docs = _parquet_documents(path, text_field)
        else:
            raise UngrokError(f"{path}: unsupported input (use .txt, .jsonl, .parquet or a saved HF dataset)")
        for doc in docs:
            if doc.strip():
                yield doc
