"""Atomic outputs: write beside the destination, then rename, so nothing half-written remains."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Temporaries are named .<dest>.<pid>h<host>-<random>.tmp: a later run on the same machine
# can tell one left by a killed process (its pid is gone) from one a live process is still
# writing; one from another machine (a shared folder) is judged by its age only.
HOST_TAG = hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:8]
_OWNED = re.compile(r"(\d+)h([0-9a-f]{8})-[a-z0-9_]+")
_OTHER = re.compile(r".+\.\d+h[0-9a-f]{8}-[a-z0-9_]+")
_UNOWNED_AGE_S = 3600.0  # a temporary whose process we cannot ask is stale after an hour


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid <= 2**31  # someone else's live process; an absurd pid is no process
    return True


def temp_prefix(dest: Path, pid: int | None = None) -> str:
    """The name start of a temporary for dest written by process pid (default: this one)."""
    return f".{dest.name}.{os.getpid() if pid is None else pid}h{HOST_TAG}-"


def sweep_stale(dest: str | Path) -> list[Path]:
    """Remove the temporaries a killed run left beside dest (and a replaced copy it did not
    delete); returns what it removed. Those of a live process are left alone."""
    dest = Path(dest)
    parent = dest.parent
    if not parent.is_dir():
        return []
    removed = []
    head = f".{dest.name}."
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    for p in entries:
        name = p.name
        if name == f"{head}old" and dest.exists():
            stale = True
        elif name.startswith(head) and name.endswith(".tmp"):
            mid = name[len(head) : -len(".tmp")]
            owned = _OWNED.fullmatch(mid)
            if _OTHER.fullmatch(mid):
                continue  # a temporary of another destination whose name starts like dest's
            if owned and owned.group(2) == HOST_TAG:
                stale = not _alive(int(owned.group(1)))
            else:
                try:
                    stale = time.time() - p.lstat().st_mtime > _UNOWNED_AGE_S
                except OSError:
                    stale = False
        else:
            continue
        if stale:
            try:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
                removed.append(p)
            except OSError:
                pass  # not ours to remove after all; it does no harm where it is
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path in dest's folder; on success it replaces dest, else it is removed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(dest)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(dest), suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(dest: str | Path, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_text(dest: str | Path, text: str) -> None:
    write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | Path, obj: Any) -> None:
    write_text(dest, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_dir(dest: str | Path, force: bool = False) -> Iterator[Path]:
    """Build a whole folder in a temporary sibling and move it into place at the end.

    With force, an existing dest is replaced only once the new folder is complete.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(dest)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(dest), suffix=".tmp", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if dest.exists():
            if not force:
                raise FileExistsError(dest)
            old = dest.with_name(f".{dest.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
