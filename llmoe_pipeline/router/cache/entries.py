"""What both label caches store and how a label is keyed: the cache's row types and its one error."""

from __future__ import annotations

import json
from typing import NamedTuple

from llmoe_pipeline.core.hashing import sha256_text


class LabelCacheError(ValueError):
    """The label cache file is not a readable SQLite database; the message names it and how to rebuild it."""


def cache_key(model_id: str, prompt_version: str, prompt: str) -> str:
    """sha256 over the three parts, JSON-encoded so that no separator inside them can collide."""
    return sha256_text(json.dumps([model_id, prompt_version, prompt]))


class CachedLabel(NamedTuple):
    p_optimistic: float
    explanation: str | None


class CacheEntry(NamedTuple):
    key: str
    model_id: str
    prompt_version: str
    prompt_sha256: str
    p_optimistic: float
    explanation: str | None
