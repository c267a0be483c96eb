"""Crash-safe file writes: every file the pipeline writes goes to a temp path first, then is renamed.

A reader (or the next run after a SIGKILL) therefore sees either the old complete file or the new
complete file, never a half-written one: `os.replace` is atomic on POSIX within one filesystem.
A killed writer leaves its temp file behind; the next write of the same file deletes those older than
`STALE_TEMP_SECONDS` (a concurrent writer's temp file is fresh, so it survives).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)
STALE_TEMP_SECONDS = 600  # far longer than any single write takes


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
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; assets and plots are meant to be shared
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
