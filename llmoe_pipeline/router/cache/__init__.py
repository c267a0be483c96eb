"""The router label cache: one interface (`LabelStore`), two implementations, one factory.

- `sqlite.LabelCache`: a SQLite file under the LLMOE home (the single-machine default);
- `postgres.PostgresLabelCache`: a PostgreSQL table every worker of a cluster shares (`storage.label_cache_url`).

Both key a label by `entries.cache_key(model_id, prompt_version, prompt)` and store one batch per transaction.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Protocol

from llmoe_pipeline.router.cache.entries import CachedLabel, CacheEntry, LabelCacheError, cache_key
from llmoe_pipeline.router.cache.postgres import PostgresLabelCache, is_postgres_url
from llmoe_pipeline.router.cache.sqlite import LabelCache


class LabelStore(Protocol):
    """What `label_windows` and the explanation step need from a label cache."""

    def get_many(self, keys: Iterable[str]) -> dict[str, CachedLabel]: ...

    def model_ids_for(self, prompt_sha256s: Iterable[str], prompt_version: str) -> dict[str, int]: ...

    def put_many(self, entries: Iterable[CacheEntry]) -> int: ...

    def put_explanations(self, explanations: Iterable[tuple[str, str]]) -> int: ...

    def get_hidden(self, keys: Iterable[str], spec: str) -> dict[str, bytes]: ...

    def put_hidden(self, items: Iterable[tuple[str, bytes]], spec: str) -> int: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...

    def __enter__(self) -> LabelStore: ...

    def __exit__(self, *exc: object) -> None: ...


def open_label_cache(location: str | os.PathLike) -> LabelStore:
    """The label cache at `location`: a `postgresql://` URL (a cluster: one cache for every worker) or a SQLite
    file (the single-machine default, `<home>/router_cache.sqlite`)."""
    if is_postgres_url(location):
        return PostgresLabelCache(str(location))
    return LabelCache(location)


__all__ = [
    "CacheEntry",
    "CachedLabel",
    "LabelCache",
    "LabelCacheError",
    "LabelStore",
    "PostgresLabelCache",
    "cache_key",
    "open_label_cache",
]
