"""Cross-process lock for a sqlite MLflow store.

The pipeline's processes share one sqlite store, and creating its tables, the experiment and a parent run
are check-then-create sequences: a lock file beside the database serializes them.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


def sqlite_lock_path(tracking_uri: str) -> Path | None:
    """`<db>.lock` beside a `sqlite:///<db>` store; None for any other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(db + ".lock") if db and db != ":memory:" else None


@contextlib.contextmanager
def store_lock(lock_path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` for the block; no lock when it is None (a tracking server:
    no shared file to lock, so the parent look-up is unguarded)."""
    if lock_path is None:
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
