"""The Hugging Face hub around the suite: which refs a model has, offline mode, the local cache.

Before any model is loaded the suite asks which revisions exist, so an unknown model
id or a revision that is not there is named and skipped rather than discovered by a
failing download mid-suite. Online that is one `list_repo_refs` call per model;
offline (HF_HUB_OFFLINE=1) it reads the refs of the local cache, which is exactly
what `from_pretrained` can resolve without the network.

huggingface_hub reads HF_HUB_OFFLINE and HF_HUB_CACHE into module constants at import
time, so setting the environment variables after the import changes nothing by
itself; `hub_env` sets both the variables (for processes started later: pool and
Ray workers) and the constants (for this process), and restores them afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from ungrok.errors import UngrokError, first_line

# Variables a worker must share with the process that planned the suite.
HUB_ENV_VARS = ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE")
_TRUE = ("1", "ON", "YES", "TRUE")


def hub_env_for(offline: bool | None) -> dict[str, str]:
    """The hub variables tasks run with: this process's, with HF_HUB_OFFLINE forced if asked."""
    env = {k: os.environ[k] for k in HUB_ENV_VARS if os.environ.get(k)}
    if offline is not None:
        env["HF_HUB_OFFLINE"] = "1" if offline else "0"
    return env


@contextlib.contextmanager
def hub_env(env: Mapping[str, str]) -> Iterator[None]:
    """Apply hub variables to os.environ and to huggingface_hub's constants; restore on exit."""
    import huggingface_hub.constants as hc

    saved_env = {k: os.environ.get(k) for k in env}
    saved = (hc.HF_HUB_OFFLINE, hc.HF_HUB_CACHE)
    try:
        os.environ.update(env)
        if "HF_HUB_OFFLINE" in env:
            hc.HF_HUB_OFFLINE = env["HF_HUB_OFFLINE"].upper() in _TRUE
        if "HF_HUB_CACHE" in env:
            hc.HF_HUB_CACHE = env["HF_HUB_CACHE"]
        elif "HF_HOME" in env:
            hc.HF_HUB_CACHE = os.path.join(env["HF_HOME"], "hub")
        yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        hc.HF_HUB_OFFLINE, hc.HF_HUB_CACHE = saved


def is_offline() -> bool:
    import huggingface_hub.constants as hc

    return bool(hc.HF_HUB_OFFLINE)


def repo_cache_dir(repo_id: str, cache: str | Path | None = None) -> Path:
    """models--org--name inside the hub cache (HF_HUB_CACHE unless given)."""
    import huggingface_hub.constants as hc

    return Path(cache if cache is not None else hc.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"


def cached_refs(repo_id: str, cache: str | Path | None = None) -> set[str] | None:
    """Revision names the local cache resolves (refs and snapshot commits); None: repo not cached."""
    repo = repo_cache_dir(repo_id, cache)
    if not repo.is_dir():
        return None
    refs = repo / "refs"
    names = (
        {p.relative_to(refs).as_posix() for p in refs.rglob("*") if p.is_file()} if refs.is_dir() else set()
    )
    snaps = repo / "snapshots"
    if snaps.is_dir():
        names |= {p.name for p in snaps.iterdir() if p.is_dir()}
    return names


class UnknownModel(UngrokError):
    """The hub (or, offline, the cache) has no such model."""


def hub_refs(repo_id: str) -> set[str] | None:
    """Branch and tag names on the hub; None when the hub cannot be asked (network, gated repo).

    Raises UnknownModel when the hub answers that the repository does not exist.
    """
    from huggingface_hub import list_repo_refs
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

    try:
        refs = list_repo_refs(repo_id)
    except (RepositoryNotFoundError, HFValidationError) as e:
        raise UnknownModel(f"{repo_id}: unknown model id on the hub ({first_line(e)})") from None
    except Exception:  # noqa: BLE001 - no answer: the loader will say what is wrong per revision
        return None
    return {r.name for r in refs.branches} | {r.name for r in refs.tags}


def available_revisions(repo_id: str) -> set[str] | None:
    """What can be loaded: the cache's refs offline, the hub's online (None: unknown, try loading).

    Raises UnknownModel for a model neither the cache (offline) nor the hub (online) has.
    """
    if is_offline():
        refs = cached_refs(repo_id)
        if refs is None:
            raise UnknownModel(f"{repo_id}: not in the local hub cache (offline mode)")
        return refs
    return hub_refs(repo_id)


def missing_revision_reason(repo_id: str, revision: str) -> str:
    where = "the local hub cache (offline mode)" if is_offline() else "the hub"
    return f"{repo_id}: revision {revision!r} not in {where}"


def add_to_cache(cache: str | Path, repo_id: str, revision: str, folder: str | Path) -> Path:
    """Put a saved model folder into a hub cache under a revision name, as a download would.

    Blobs are stored by sha256, `snapshots/<commit>/` links to them and `refs/<revision>`
    names the commit, so `from_pretrained(repo_id, revision=revision)` finds it with
    HF_HUB_OFFLINE=1. Useful for scoring converted or privately held checkpoints with
    the suite, and for building test caches. The commit id is derived from the
    repository, revision and file contents. Returns the snapshot folder.
    """
    src = Path(folder)
    files = sorted(p for p in src.iterdir() if p.is_file())
    if not files:
        raise UngrokError(f"{src}: no files to add to the hub cache")
    datas = [f.read_bytes() for f in files]
    h = hashlib.sha1(f"{repo_id}@{revision}".encode())
    for f, data in zip(files, datas, strict=True):
        h.update(f.name.encode() + b"\0" + hashlib.sha256(data).digest())
    commit = h.hexdigest()
    repo = repo_cache_dir(repo_id, cache)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for f, data in zip(files, datas, strict=True):
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            blob.write_bytes(data)
        link = snap / f.name
        if not link.exists():
            link.symlink_to(os.path.relpath(blob, snap))
    ref = repo / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)
    return snap
