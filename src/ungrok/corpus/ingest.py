"""Read documents from a user's corpus, streaming, in a deterministic order.

Formats: `.txt` (one document per blank-line-separated block, or per file),
`.jsonl` (a text field), `.parquet` (a text column), a Hugging Face dataset saved
with `save_to_disk`, or a `datasets` repository (`hf_dataset_documents`): a folder laid
out as on the Hub, or a hub name, online or from the local cache under HF_HUB_OFFLINE=1,
always streamed. Folders expand to their files in sorted order, so a rebuild reads the
same stream.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from ungrok.errors import UngrokError, first_line

TxtMode = Literal["blocks", "file"]
SUFFIXES = (".txt", ".jsonl", ".parquet")


def is_hf_saved_dataset(path: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    markers = ("dataset_info.json", "state.json", "dataset_dict.json")
    return path.is_dir() and any((path / m).is_file() for m in markers)


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
            for nonblank, block in itertools.groupby(f, key=lambda line: bool(line.strip())):
                if nonblank:
                    yield "".join(block).rstrip("\r\n")  # the block's last newline separates
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
    """The text column of a Dataset or IterableDataset, batch by batch (never the whole split)."""
    names = getattr(ds, "column_names", None)  # None: a stream whose features are not declared
    if names is not None and field not in names:
        raise UngrokError(f"{where}: no {field!r} column (has {', '.join(names)}; set it with --text-field)")
    kind = (getattr(ds, "features", None) or {}).get(field)
    if kind is not None and getattr(kind, "dtype", None) not in ("string", "large_string"):
        # Stringifying numbers or lists would train on text no one wrote.
        raise UngrokError(f"{where}: column {field!r} holds {kind}, not text (set --text-field)")
    if names is not None and len(names) > 1:
        ds = ds.select_columns([field])  # type: ignore[attr-defined]  # decode only the text
    for batch in _batches(ds, where):
        if field not in batch:
            raise UngrokError(f"{where}: no {field!r} field (has {', '.join(batch)}; set it with --text-field)")
        for text in batch[field]:
            if text is None:
                continue
            if not isinstance(text, str):
                raise UngrokError(f"{where}: column {field!r} holds {type(text).__name__}, not text")
            yield text


class _HeldErrors(logging.Handler):
    """Holds the `datasets` builders' ERROR records (they name the file that failed) for the
    one-line error, so the failure is not printed twice; every other record passes on."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors.append(record.getMessage())
        else:
            logging.getLogger("datasets").handle(record)


def _batches(ds: object, where: str) -> Iterator[dict]:
    """Batches of a dataset; a shard that does not parse mid-stream is bad input, not a crash."""
    builders = logging.getLogger("datasets.packaged_modules")
    held, propagate = _HeldErrors(), builders.propagate
    builders.addHandler(held)
    builders.propagate = False
    try:
        it = iter(ds.iter(batch_size=1024))  # type: ignore[attr-defined]
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid/ArrowIOError among them
                reason = held.errors[-1] if held.errors else first_line(e)
                raise UngrokError(f"{where}: cannot read a data file ({reason})") from None
            yield batch
    finally:
        builders.removeHandler(held)
        builders.propagate = propagate


def _hf_saved_documents(path: Path, field: str, split: str) -> Iterator[str]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises many kinds
        raise UngrokError(f"{path}: not a loadable saved dataset ({first_line(e)})") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise UngrokError(f"{path}: no split {split!r} (has {', '.join(ds.keys())})")
        ds = ds[split]
    yield from _hf_column(ds, field, str(path))


def _looks_like_path(source: str) -> bool:
    """A hub id is `name` or `owner/name`; anything else the user meant as a folder."""
    return Path(source).is_absolute() or source.startswith(("./", "../", "~")) or source.count("/") > 1


def _offline() -> bool:
    import datasets
    import huggingface_hub.constants as hc

    return bool(hc.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE)


def _pick_split(dd: object, split: str, where: str) -> object:
    """One split of a streamed IterableDatasetDict, named by the user; a miss lists the splits."""
    if split not in dd:  # type: ignore[operator]
        raise UngrokError(f"{where}: no split {split!r} (has {', '.join(dd)}; set it with --split)")  # type: ignore[arg-type]
    return dd[split]  # type: ignore[index]


def _card_configs(folder: Path) -> dict:
    """config name -> its card entry (data_files ...), as `datasets` parses the card; {} without one."""
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    card = folder / "README.md"
    if not card.is_file():
        return {}
    try:
        return dict(MetadataConfigs.from_dataset_card_data(DatasetCard.load(card).data))
    except Exception:  # a card that does not parse declares nothing usable
        return {}


def _stream_folder(folder: Path, config: str | None, split: str, where: str) -> object:
    """A split of a dataset repository folder, streamed: datasets reads its card and shards."""
    import datasets
    from datasets.exceptions import DataFilesNotFoundError

    try:
        try:
            dd = datasets.load_dataset(str(folder), name=config, streaming=True)
        except (DataFilesNotFoundError, FileNotFoundError):
            # A snapshot downloaded with an include pattern (FineWeb-Edu's sample-10BT, say)
            # holds the card and one config's files only; `datasets` infers the format from
            # the default config's files and finds none, so read the named config's own files.
            files = (_card_configs(folder).get(config) or {}).get("data_files") if config else None
            if not files:
                raise
            dd = datasets.load_dataset(str(folder), data_files=files, streaming=True)
    except (DataFilesNotFoundError, FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as e:
        configs = [] if config else list(_card_configs(folder))
        hint = f"; its card names configs {', '.join(configs)} (set --hf-config)" if configs else ""
        raise UngrokError(
            f"{where}: not a dataset repository (no data files datasets can read: {first_line(e)}){hint}"
        ) from None
    except ValueError as e:  # an unknown config, or a card that does not parse
        raise UngrokError(f"{where}: {first_line(e)} (set --hf-config)") from None
    return _pick_split(dd, split, where)


def _stream_hub(name: str, config: str | None, split: str) -> object:
    """A split of a hub dataset: streamed from the hub, or from the local cache when offline.

    Offline, the cache can hold the repository's files (a `hf download` or an earlier
    download: a snapshot under HF_HUB_CACHE, read like a folder) or a prepared copy
    (an earlier non-streaming `load_dataset`, under HF_DATASETS_CACHE, which `datasets`
    resolves by name itself).
    """
    import datasets

    where = f"--hf-dataset {name}"
    if _offline():
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            folder = snapshot_download(name, repo_type="dataset", local_files_only=True)
        except LocalEntryNotFoundError:
            folder = None
        if folder is not None:
            return _stream_folder(Path(folder), config, split, f"{where} (hub cache)")
    try:
        dd = datasets.load_dataset(name, name=config, streaming=True)
    except ConnectionError as e:
        if _offline():
            raise UngrokError(
                f"{where}: not in the local Hugging Face cache, and HF_HUB_OFFLINE=1 forbids "
                f"downloading it (run once online, or `hf download {name} --repo-type dataset`)"
            ) from None
        raise UngrokError(
            f"{where}: cannot reach the Hugging Face Hub ({first_line(e)}); "
            "set HF_HUB_OFFLINE=1 to read a cached copy"
        ) from None
    except Exception as e:  # datasets raises many kinds (not found, gated, unknown config)
        raise UngrokError(f"{where}: cannot load ({first_line(e)})") from None
    return _pick_split(dd, split, where)


def hf_dataset_documents(
    source: str, field: str = "text", split: str = "train", config: str | None = None
) -> Iterator[str]:
    """Stream the text of one split of a `datasets` repository: a folder or a hub name.

    A folder is read as `datasets.load_dataset(folder, streaming=True)` reads it (parquet,
    jsonl, csv ... shards, per-split folders or file names, a README.md card's `configs:`);
    a folder written by `save_to_disk` is read as a saved dataset (memory-mapped). No split
    is ever held in memory: rows arrive batch by batch, shard after shard.
    """
    path = Path(source).expanduser()
    where = f"--hf-dataset {source}"
    if path.is_dir():
        if is_hf_saved_dataset(path):
            if config:
                raise UngrokError(f"{where}: a saved dataset has no configs; drop --hf-config")
            yield from _hf_saved_documents(path, field, split)
            return
        ds = _stream_folder(path, config, split, where)
    elif path.exists():
        raise UngrokError(f"{where}: is a file, not a dataset folder (give it as an input)")
    elif _looks_like_path(source):
        raise UngrokError(f"{where}: folder not found")
    else:
        ds = _stream_hub(source, config, split)
    yield from _hf_column(ds, field, where)


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
