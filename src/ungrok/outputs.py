"""Where a verb may write: one guard every --out/--json/--force goes through.

`--force` replaces an earlier output of the same kind, nothing else: never an input
of the command, a frozen registry or a ledger, or a corpus the command reads. A
path that cannot be written (a file where a folder is needed, a read-only folder)
is named here in one line, before any work, instead of as a traceback at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ungrok.errors import UngrokError

# Files no verb's --force may replace: what they hold was frozen before the results existed.
PROTECTED = {"registry.json": "a frozen registry", "ledger.json": "a ledger"}
CORPUS_MARKER = "manifest.json"


def is_corpus_dir(path: Path) -> bool:
    """A corpus folder is one holding a manifest (what every corpus reader opens first)."""
    return path.is_dir() and (path / CORPUS_MARKER).is_file()


def _resolved(p: Path) -> Path:
    return Path(os.path.abspath(p)).resolve()


def _protected_inside(folder: Path) -> Path | None:
    for name in PROTECTED:
        for hit in folder.rglob(name):
            return hit
    return None


def _writable_ancestor(dest: Path) -> None:
    """The nearest existing ancestor of dest must be a folder we may create entries in."""
    anc = Path(os.path.abspath(dest)).parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise UngrokError(f"{dest}: cannot be created, {anc} is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UngrokError(f"{dest}: cannot write into {anc} (permission denied)")


def guard_output(
    dest: str | Path,
    *,
    inputs: Iterable[str | Path | None] = (),
    force: bool = False,
    exists_ok: bool = False,
    folder: bool = False,
    corpus: bool = False,
    suffixes: tuple[str, ...] = (),
    flag: str = "--out",
) -> Path:
    """Refuse, in one line, an output that would clobber what the command must not touch.

    inputs: paths the command reads (never replaced, never written into when a corpus).
    force: the user allows replacing an earlier output of the same kind.
    exists_ok: the verb resumes or updates an existing output itself (no --force needed).
    folder: the output is a folder (else a file); corpus: it is a corpus folder.
    suffixes: with --force, an existing file is replaced only if it has one of these.
    """
    dest = Path(dest)
    where = _resolved(dest)
    exists = dest.exists()
    if folder and exists and not dest.is_dir():
        raise UngrokError(f"{flag} {dest}: exists and is not a folder; {flag} names a folder")
    if not folder and dest.is_dir():
        raise UngrokError(f"{flag} {dest}: is a folder; {flag} names a file")
    if exists and dest.name in PROTECTED:
        raise UngrokError(f"{flag} {dest}: is {PROTECTED[dest.name]}; it is never overwritten")
    for inp in inputs:
        if inp is None:
            continue
        src = _resolved(Path(inp))
        if where == src:
            raise UngrokError(f"{flag} {dest}: is an input of this command; it is never overwritten")
        if is_corpus_dir(src) and src in where.parents:
            raise UngrokError(f"{flag} {dest}: is inside the corpus {inp}, which this command reads")
        if force and exists and where in src.parents:
            raise UngrokError(f"{flag} {dest}: holds {inp}, an input of this command; it is never replaced")
    if folder and exists and is_corpus_dir(dest) and not corpus:
        raise UngrokError(f"{flag} {dest}: is a corpus folder; choose another {flag}")
    if exists and not force and not exists_ok:
        raise UngrokError(f"{flag} {dest}: already exists; use --force to replace it")
    if exists and force:
        if folder and (hit := _protected_inside(dest)) is not None:
            raise UngrokError(
                f"{flag} {dest}: holds {PROTECTED[hit.name]} ({hit}); --force never replaces it"
            )
        if not folder and suffixes and dest.suffix.lower() not in suffixes:
            raise UngrokError(
                f"{flag} {dest}: is not an earlier output of this kind ({', '.join(suffixes)}); "
                "--force does not replace it"
            )
    if exists:
        if not os.access(dest, os.W_OK) or not os.access(where.parent, os.W_OK | os.X_OK):
            raise UngrokError(f"{flag} {dest}: cannot be written (permission denied)")
    else:
        _writable_ancestor(dest)
    return dest
