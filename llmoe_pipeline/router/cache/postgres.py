"""The router label cache in PostgreSQL, for a cluster: every worker, whatever its own home, reads and writes one
cache. Same keys, rows and semantics as the SQLite cache (`router.cache.LabelCache`), which stays the
single-machine default; `router.cache.open_label_cache` picks one from `storage.label_cache_url`.

- one batch = one transaction (`put_many`): a run killed mid-way, or a worker whose connection drops, keeps every
  batch committed before and none of the batch in flight;
- an entry without an explanation keeps an explanation already stored for the same key (`COALESCE`), and
  `put_explanations` fills in the explanation of a stored label later (the explanation step) without touching its p;
- concurrent writers of the same key (two runs labelling the same window) are serialized by the primary key's
  `ON CONFLICT DO UPDATE`; the table is created under an advisory lock, so two workers starting at once do not
  race on `CREATE TABLE`.

The URL carries no password (`postgresql://llmoe@127.0.0.1:5432/llmoe`): libpq reads it from `PGPASSFILE` or
`PGPASSWORD`, so it is never in a config file, a run's config or a log. Pure: no Dagster.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from llmoe_pipeline.router.cache.entries import CachedLabel, CacheEntry, LabelCacheError
from llmoe_pipeline.tracking.redaction import redact_url

_SCHEMA = """
CREATE TABLE IF NOT EXISTS router_labels (
    key            TEXT PRIMARY KEY,
    model_id       TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    prompt_sha256  TEXT NOT NULL,
    p_optimistic   DOUBLE PRECISION NOT NULL,
    explanation    TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    hidden         BYTEA,
    hidden_spec    TEXT
)
"""
# Columns added since the first schema: a table without them gets them on connect, under the same lock.
_MIGRATE = "ALTER TABLE router_labels ADD COLUMN IF NOT EXISTS hidden BYTEA, ADD COLUMN IF NOT EXISTS hidden_spec TEXT"
_PROMPT_INDEX = "CREATE INDEX IF NOT EXISTS router_labels_prompt ON router_labels (prompt_sha256)"
_SCHEMA_LOCK = 0x6C6C6D6F65  # pg_advisory_xact_lock key for the CREATE TABLE ("llmoe")
_UPSERT = """
INSERT INTO router_labels (key, model_id, prompt_version, prompt_sha256, p_optimistic, explanation)
VALUES %s
ON CONFLICT (key) DO UPDATE SET p_optimistic = EXCLUDED.p_optimistic,
    explanation = COALESCE(EXCLUDED.explanation, router_labels.explanation)
"""
_QUERY_CHUNK = 5000


def is_postgres_url(location: object) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


class PostgresLabelCache:
    """Router labels by cache key in a PostgreSQL table. Use as a context manager, or call close()."""

    def __init__(self, url: str, connect_timeout_s: int = 10):
        import psycopg2

        self.url = url
        self._psycopg2 = psycopg2
        try:
            self._conn: Any = psycopg2.connect(url, connect_timeout=connect_timeout_s, application_name="llmoe")
        except psycopg2.OperationalError as exc:
            raise LabelCacheError(
                f"cannot reach the router label cache at {redact_url(url)} ({' '.join(str(exc).split())}): start "
                "the cluster's PostgreSQL (`make cluster-up`) or fix storage.label_cache_url"
            ) from None
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            cur.execute(_SCHEMA)
            cur.execute(_PROMPT_INDEX)
            cur.execute(_MIGRATE)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        try:
            with self._conn, self._conn.cursor() as cur:  # commits on success, rolls back on any exception
                yield cur
        except self._psycopg2.OperationalError as exc:
            raise LabelCacheError(
                f"the router label cache at {redact_url(self.url)} failed ({' '.join(str(exc).split())})"
            ) from None

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedLabel]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, CachedLabel] = {}
        with self._transaction() as cur:
            for start in range(0, len(keys), _QUERY_CHUNK):
                cur.execute(
                    "SELECT key, p_optimistic, explanation FROM router_labels WHERE key = ANY(%s)",
                    (keys[start : start + _QUERY_CHUNK],),
                )
                found.update((k, CachedLabel(p, e)) for k, p, e in cur.fetchall())
        return found

    def model_ids_for(self, prompt_sha256s: Iterable[str], prompt_version: str) -> dict[str, int]:
        """How many of these prompts (by sha256, in `prompt_version`) each model id has a label for."""
        digests = list(dict.fromkeys(prompt_sha256s))
        counts: dict[str, int] = {}
        with self._transaction() as cur:
            for start in range(0, len(digests), _QUERY_CHUNK):
                cur.execute(
                    "SELECT model_id, COUNT(DISTINCT prompt_sha256) FROM router_labels "
                    "WHERE prompt_version = %s AND prompt_sha256 = ANY(%s) GROUP BY model_id",
                    (prompt_version, digests[start : start + _QUERY_CHUNK]),
                )
                for model_id, count in cur.fetchall():
                    counts[model_id] = counts.get(model_id, 0) + int(count)
        return counts

    def put_many(self, entries: Iterable[CacheEntry]) -> int:
        """Insert or update entries in one transaction (committed on return)."""
        from psycopg2.extras import execute_values

        rows: list[tuple[Any, ...]] = [tuple(e) for e in entries]
        if not rows:
            return 0
        # One key twice in a batch would make ON CONFLICT touch a row twice: merge them as SQLite's row-by-row
        # upsert does (the last p wins; the last explanation given wins over none).
        merged: dict[str, tuple[Any, ...]] = {}
        for row in rows:
            key: str = row[0]
            earlier = merged.get(key)
            merged[key] = row if earlier is None or row[5] is not None else (*row[:5], earlier[5])
        with self._transaction() as cur:
            execute_values(cur, _UPSERT, list(merged.values()), page_size=1000)
        return len(rows)

    def put_explanations(self, explanations: Iterable[tuple[str, str]]) -> int:
        """Fill in the explanation of labels already stored, (key, explanation) pairs, in one transaction: p_optimistic
        is left as it was, an explanation already stored is kept, a key without a label is skipped. Returns how many
        labels got their explanation now."""
        rows = [(text, key) for key, text in dict(explanations).items()]
        if not rows:
            return 0
        filled = 0
        with self._transaction() as cur:
            for text, key in rows:
                cur.execute(
                    "UPDATE router_labels SET explanation = %s WHERE key = %s AND explanation IS NULL", (text, key)
                )
                filled += cur.rowcount
        return filled

    def get_hidden(self, keys: Iterable[str], spec: str) -> dict[str, bytes]:
        """The stored hidden states of `spec` of these keys (a key without one, or with another spec, is absent)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, bytes] = {}
        with self._transaction() as cur:
            for start in range(0, len(keys), _QUERY_CHUNK):
                cur.execute(
                    "SELECT key, hidden FROM router_labels "
                    "WHERE hidden IS NOT NULL AND hidden_spec = %s AND key = ANY(%s)",
                    (spec, keys[start : start + _QUERY_CHUNK]),
                )
                found.update((k, bytes(h)) for k, h in cur.fetchall())
        return found

    def put_hidden(self, items: Iterable[tuple[str, bytes]], spec: str) -> int:
        """Store the hidden state of labels already stored, (key, bytes) pairs, in one transaction: their p and
        explanation are left as they were, a key without a label is skipped. Returns how many were stored."""
        from psycopg2.extras import execute_values

        rows = [(key, self._psycopg2.Binary(blob)) for key, blob in dict(items).items()]
        if not rows:
            return 0
        stored = 0
        with self._transaction() as cur:
            for start in range(0, len(rows), 1000):  # rowcount counts one statement: one page each
                page = rows[start : start + 1000]
                execute_values(
                    cur,
                    "UPDATE router_labels AS r SET hidden = v.hidden, hidden_spec = v.spec "
                    "FROM (VALUES %s) AS v(key, hidden, spec) WHERE r.key = v.key",
                    [(key, blob, spec) for key, blob in page],
                    template="(%s, %s::bytea, %s)",
                    page_size=len(page),
                )
                stored += int(cur.rowcount)
        return stored

    def __len__(self) -> int:
        with self._transaction() as cur:
            cur.execute("SELECT COUNT(*) FROM router_labels")
            return int(cur.fetchone()[0])

    def integrity_ok(self) -> bool:
        """No key stored twice and every stored label a probability (PostgreSQL guarantees the rest)."""
        with self._transaction() as cur:
            cur.execute(
                "SELECT COUNT(*) - COUNT(DISTINCT key), "
                "COUNT(*) FILTER (WHERE NOT (p_optimistic BETWEEN 0 AND 1)) FROM router_labels"
            )
            duplicates, out_of_range = cur.fetchone()
        return duplicates == 0 and out_of_range == 0

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PostgresLabelCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
