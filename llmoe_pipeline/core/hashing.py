"""SHA-256 of bytes, text, files and JSON-able objects: the one place the package hashes.

Every helper returns the full lowercase hex digest; call sites that store a shorter id slice it
(`sha256_text(x)[:16]`). Text is encoded as UTF-8. Changing any of this changes cache keys and
stored ids, so the outputs are pinned by tests.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FILE_CHUNK = 1 << 22  # bytes read per step when hashing a file (does not change the digest)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def sha256_chunks(chunks: Iterable[bytes]) -> str:
    """Digest of the concatenated chunks (streamed, so nothing has to be joined in memory)."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def canonical_json(obj: Any) -> str:
    """The JSON text hashed by `sha256_json`: sorted keys, default separators, `str()` for other types."""
    return json.dumps(obj, sort_keys=True, default=str)


def sha256_json(obj: Any) -> str:
    return sha256_text(canonical_json(obj))


def _file_chunks(path: str | os.PathLike, chunk: int) -> Iterable[bytes]:
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            yield block


def sha256_file(path: str | os.PathLike, chunk: int = FILE_CHUNK) -> str:
    """Digest of a file's bytes, read in chunks (data and model files can be large)."""
    return sha256_chunks(_file_chunks(path, chunk))


@functools.lru_cache(maxsize=16)
def _sha256_file_keyed(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def sha256_file_cached(path: str | os.PathLike) -> str:
    """`sha256_file`, computed once per process for the same (path, size, mtime_ns)."""
    st = Path(path).stat()
    return _sha256_file_keyed(str(path), st.st_size, st.st_mtime_ns)
