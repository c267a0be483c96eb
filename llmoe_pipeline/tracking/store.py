"""Cross-process lock for a sqlite MLflow store.

The pipeline's processes share one sqlite store, and creating its tables, the experiment and a parent run
are check-then-create sequences: a lock file beside the database (held with `io.file_lock`) serializes them.
"""

from __future__ import annotations

from pathlib import Path


def sqlite_lock_path(tracking_uri: str) -> Path | None:
    """`<db>.lock` beside a `sqlite:///<db>` store; None for any other store (a tracking server: no shared file
    to lock, so the parent look-up is unguarded)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(db + ".lock") if db and db != ":memory:" else None
