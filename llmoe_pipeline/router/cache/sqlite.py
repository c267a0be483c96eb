"""Crash-safe cache of router outputs: SQLite in WAL mode under the LLMOE home.

Keyed by sha256(model_id, prompt_version, prompt text), so a new model, a new template or a changed
window never reuses an old label. Each batch is one transaction: a run killed mid-way keeps every batch
committed before the kill (SQLite's journal makes the batch in flight vanish as a whole, never half-written).
WAL plus a busy timeout lets two processes (e.g. two Dagster runs) read and write the same file.

The file is private (0600, as its -wal/-shm files; its folder 0700 when created here). A file that is not a
SQLite database or is damaged is one `LabelCacheError` naming it and saying how to rebuild it: delete it (and
its -wal/-shm files), and the next run recomputes the labels.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from llmoe_pipeline.core.files import FILE_MODE, private_mkdir
from llmoe_pipeline.router.cache.entries import CachedLabel, CacheEntry, LabelCacheError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS router_labels (
    key            TEXT PRIMARY KEY,  -- cache_key(model_id, prompt_version, prompt)
    model_id       TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    prompt_sha256  TEXT NOT NULL,
    p_optimistic   REAL NOT NULL,
    explanation    TEXT,              -- NULL: not asked for yet
    created_at     TEXT NOT NULL,
    hidden         BLOB,              -- the pooled final hidden state (router/hidden.py); NULL: none stored
    hidden_spec    TEXT               -- what `hidden` is (HIDDEN_SPEC)
)
"""
# Columns added since the first schema: a file without them gets them on open (`_migrate`).
_ADDED_COLUMNS = (("hidden", "BLOB"), ("hidden_spec", "TEXT"))
# Finds the labels any model id holds for given prompts (LabelCache.model_ids_for).
_PROMPT_INDEX = "CREATE INDEX IF NOT EXISTS router_labels_prompt ON router_labels (prompt_sha256)"
_QUERY_CHUNK = 500  # keys per SELECT (SQLite limits the number of bound parameters)
_DAMAGED = {"SQLITE_NOTADB", "SQLITE_CORRUPT"}  # not a database / malformed; "database is locked" is not damage


@contextlib.contextmanager
def _damage_is_clear(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.DatabaseError as exc:
        damaged = getattr(exc, "sqlite_errorname", "") in _DAMAGED or "not a database" in str(exc)
        if not damaged:
            raise
        raise LabelCacheError(
            f"{path}: the router label cache is damaged or not a SQLite database ({exc}). To rebuild it, delete "
            f"it (and {path.name}-wal, {path.name}-shm beside it if present): the next run recomputes the labels"
        ) from None


class LabelCache:
    """Router labels by cache key. Use as a context manager, or call close()."""

    def __init__(self, path: str | os.PathLike, busy_timeout_s: float = 60.0):
        self.path = Path(path)
        private_mkdir(self.path.parent)
        # An empty file is a valid empty database; creating it here makes it (and SQLite's -wal/-shm) 0600.
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
        # isolation_level=None: autocommit; transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        try:
            with _damage_is_clear(self.path):
                self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = FULL")  # a committed batch survives a power cut too
                self._conn.execute(_SCHEMA)
                self._conn.execute(_PROMPT_INDEX)
                self._migrate()
        except BaseException:
            self._conn.close()
            raise

    def _migrate(self) -> None:
        """Add the columns a file made by an older version lacks (metadata only: no row is rewritten); another
        process adding one at the same moment is fine."""
        have = {row[1] for row in self._conn.execute("PRAGMA table_info(router_labels)")}
        for name, kind in _ADDED_COLUMNS:
            if name not in have:
                try:
                    self._conn.execute(f"ALTER TABLE router_labels ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):
                        raise

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedLabel]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, CachedLabel] = {}
        with _damage_is_clear(self.path):
            for start in range(0, len(keys), _QUERY_CHUNK):
                chunk = keys[start : start + _QUERY_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, p_optimistic, explanation FROM router_labels WHERE key IN ({marks})", chunk
                )
                found.update((k, CachedLabel(p, e)) for k, p, e in rows)
        return found

    def model_ids_for(self, prompt_sha256s: Iterable[str], prompt_version: str) -> dict[str, int]:
        """How many of these prompts (by sha256, in `prompt_version`) each model id has a label for."""
        counts: dict[str, set[str]] = {}
        digests = list(dict.fromkeys(prompt_sha256s))
        with _damage_is_clear(self.path):
            for start in range(0, len(digests), _QUERY_CHUNK):
                chunk = digests[start : start + _QUERY_CHUNK]
                rows = self._conn.execute(
                    f"SELECT DISTINCT model_id, prompt_sha256 FROM router_labels "
                    f"WHERE prompt_version = ? AND prompt_sha256 IN ({','.join('?' * len(chunk))})",
                    [prompt_version, *chunk],
                )
                for model_id, digest in rows:
                    counts.setdefault(model_id, set()).add(digest)
        return {model_id: len(found) for model_id, found in counts.items()}

    def put_many(self, entries: Iterable[CacheEntry]) -> int:
        """Insert or update entries in one transaction (committed on return). An entry without an
        explanation keeps an explanation already stored for the same key."""
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        rows = [(*e, now) for e in entries]
        with _damage_is_clear(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    """INSERT INTO router_labels (key, model_id, prompt_version, prompt_sha256, p_optimistic,
                                                  explanation, created_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT(key) DO UPDATE SET p_optimistic = excluded.p_optimistic,
                           explanation = COALESCE(excluded.explanation, router_labels.explanation)""",
                    rows,
                )
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        return len(rows)

    def put_explanations(self, explanations: Iterable[tuple[str, str]]) -> int:
        """Fill in the explanation of labels already stored, (key, explanation) pairs, in one transaction: p_optimistic
        is left as it was (bit for bit), an explanation already stored is kept, a key without a label is skipped.
        Returns how many labels got their explanation now."""
        rows = [(text, key) for key, text in explanations]
        with _damage_is_clear(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                before = self._conn.total_changes
                self._conn.executemany(
                    "UPDATE router_labels SET explanation = ? WHERE key = ? AND explanation IS NULL", rows
                )
                filled = self._conn.total_changes - before
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        return filled

    def get_hidden(self, keys: Iterable[str], spec: str) -> dict[str, bytes]:
        """The stored hidden states of `spec` of these keys (a key without one, or with another spec, is absent)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, bytes] = {}
        with _damage_is_clear(self.path):
            for start in range(0, len(keys), _QUERY_CHUNK):
                chunk = keys[start : start + _QUERY_CHUNK]
                rows = self._conn.execute(
                    f"SELECT key, hidden FROM router_labels WHERE hidden IS NOT NULL AND hidden_spec = ? "
                    f"AND key IN ({','.join('?' * len(chunk))})",
                    [spec, *chunk],
                )
                found.update((k, bytes(h)) for k, h in rows)
        return found

    def put_hidden(self, items: Iterable[tuple[str, bytes]], spec: str) -> int:
        """Store the hidden state of labels already stored, (key, bytes) pairs, in one transaction: their p and
        explanation are left as they were, a key without a label is skipped. Returns how many were stored."""
        rows = [(blob, spec, key) for key, blob in items]
        with _damage_is_clear(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                before = self._conn.total_changes
                self._conn.executemany("UPDATE router_labels SET hidden = ?, hidden_spec = ? WHERE key = ?", rows)
                stored = self._conn.total_changes - before
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        return stored

    def __len__(self) -> int:
        with _damage_is_clear(self.path):
            return self._conn.execute("SELECT COUNT(*) FROM router_labels").fetchone()[0]

    def integrity_ok(self) -> bool:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LabelCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
