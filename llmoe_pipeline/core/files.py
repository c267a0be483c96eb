"""Crash-safe file writes: every file the pipeline writes goes to a temp path first, then is renamed.

A reader (or the next run after a SIGKILL) therefore sees either the old complete file or the new
complete file, never a half-written one: `os.replace` is atomic on POSIX within one filesystem.
A killed writer leaves its temp file behind; the next write of the same file deletes those older than
`STALE_TEMP_SECONDS` (a concurrent writer's temp file is fresh, so it survives).

Everything under the home is private to its owner: files are written 0600 and the folders this module creates
0700, whatever the umask (stored assets, models, labels and metrics are research data that others on a shared
machine need not read). Existing folders keep their mode.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

STALE_TEMP_SECONDS = 600  # far longer than any single write takes
FILE_MODE, DIR_MODE = 0o600, 0o700


def private_mkdir(folder: str | os.PathLike) -> Path:
    """`mkdir -p` whose new folders are 0700 (Path.mkdir gives parents the umask's mode, not `mode`)."""
    target = current = Path(folder)
    missing = []
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for new in reversed(missing):
        try:
            new.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # a concurrent writer made it
        os.chmod(new, DIR_MODE)  # mkdir's mode is masked by the umask
    return target


@contextlib.contextmanager
def file_lock(lock_path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created if absent) for the block, across processes; no lock when
    it is None."""
    if lock_path is None:
        yield
        return
    private_mkdir(lock_path.parent)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_stale_temps(target: Path) -> None:
    """Delete temp files of `target` (`.<name>.<random>.tmp`) left by writers killed over 10 minutes ago."""
    prefix = f".{target.name}."
    for tmp in target.parent.iterdir():
        name = tmp.name
        # mkstemp's random part has no dot: this skips the temp files of a sibling such as `<name>.bak`.
        if not (name.startswith(prefix) and name.endswith(".tmp") and "." not in name[len(prefix) : -4]):
            continue
        try:
            if time.time() - tmp.stat().st_mtime > STALE_TEMP_SECONDS:
                tmp.unlink()
        except OSError:
            pass  # already gone (another writer cleaned it) or not ours to delete: never fail the write


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it over `path`."""
    target = Path(path)
    private_mkdir(target.parent)
    _remove_stale_temps(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, FILE_MODE)  # mkstemp creates 0600 already; the rename keeps it
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, engine="pyarrow", index=False)
    return Path(path)


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    return write_bytes_atomic(text.encode("utf-8"), path)
