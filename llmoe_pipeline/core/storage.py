"""Where steps hand each other their values: a folder under the home, or storage every machine can reach.

`open_store(location)` gives one of two stores with the same small interface (bytes in, bytes out, by a relative
key such as `assets/router_labels/AAPL.parquet`):
- `LocalStore`: a folder (the single-machine default, `<home>/assets`, `<home>/model_cache`): each write goes to
  a temp file that is fsynced and renamed (`io.atomic_path`), so a killed writer leaves the old or the new file;
- `RemoteStore`: any fsspec/universal-pathlib URL (`s3://bucket/llmoe`, `gs://…`, `file:///mnt/shared/llmoe` on
  a shared mount). A value is serialized completely in memory and written with one `pipe_file` call: on an object
  store that is one PUT, which readers see whole or not at all; on a `file://` mount it is a temp file renamed
  over the target, as locally.

Keys are relative POSIX paths; one that is empty, absolute, or that leaves the root (`..`) is refused, as
`paths.resolve_inside` refuses it for a folder. Pure: no Dagster.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from llmoe_pipeline.core.files import write_bytes_atomic
from llmoe_pipeline.core.paths import resolve_inside


class Store(Protocol):
    """Bytes by relative key under one root; `describe(key)` names the object in messages and metadata."""

    def write_bytes(self, key: str, data: bytes) -> str: ...
    def read_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def list(self, prefix: str) -> list[str]: ...
    def describe(self, key: str) -> str: ...
    def local_file(self, key: str) -> contextlib.AbstractContextManager[Path]: ...
    def child(self, prefix: str) -> Store: ...


def check_key(key: str | os.PathLike, root: str) -> str:
    """`key` as a normalized relative POSIX path inside `root`; ValueError when it escapes or is empty."""
    text = str(key).replace(os.sep, "/")
    norm = posixpath.normpath(text) if text else ""
    if not text or norm in (".", "") or text.startswith("/") or norm == ".." or norm.startswith("../"):
        raise ValueError(f"write path {str(key)!r} escapes the store {root} (or is the store itself)")
    return norm


class LocalStore:
    """A folder; writes are temp file + fsync + rename, and a key may not leave the folder (symlinks resolved)."""

    def __init__(self, root: str | os.PathLike, what: str = "the store"):
        self.root = Path(root)
        self.what = what

    def path(self, key: str | os.PathLike) -> Path:
        return resolve_inside(self.root, Path(key), self.what)

    def write_bytes(self, key: str, data: bytes) -> str:
        return str(write_bytes_atomic(data, self.path(key)))

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        folder = self.path(prefix)
        if not folder.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root.resolve())) for p in folder.resolve().rglob("*") if p.is_file() and _visible(p)
        )

    def describe(self, key: str) -> str:
        return str(self.path(key))

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        yield self.path(key)

    def child(self, prefix: str) -> LocalStore:
        return LocalStore(self.path(prefix), self.what)


class RemoteStore:
    """An fsspec location by URL (universal-pathlib resolves the filesystem: s3, gcs, file, memory, ...)."""

    def __init__(self, url: str):
        from upath import UPath

        self.url = url.rstrip("/")
        self._root = UPath(self.url)
        self.fs = self._root.fs
        self._root_path = self._root.path.rstrip("/")
        self.is_local = "file" in _protocols(self.fs)

    def _full(self, key: str | os.PathLike) -> str:
        return f"{self._root_path}/{check_key(key, self.url)}"

    def write_bytes(self, key: str, data: bytes) -> str:
        full = self._full(key)
        if self.is_local:  # a shared mount: temp file + rename, as for LocalStore (readers never see a partial file)
            write_bytes_atomic(data, Path(full))
            return self.describe(key)
        parent = posixpath.dirname(full)
        with contextlib.suppress(FileExistsError, NotImplementedError):
            self.fs.makedirs(parent, exist_ok=True)  # object stores have no folders: a no-op there
        self.fs.pipe_file(full, data)  # one PUT of the complete value
        return self.describe(key)

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self._full(key))

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._full(key)))

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._full(key))

    def list(self, prefix: str) -> list[str]:
        folder = self._full(prefix)
        try:
            found = self.fs.find(folder)
        except FileNotFoundError:
            return []
        start = len(self._root_path) + 1
        return sorted(str(p)[start:] for p in found if _visible(Path(str(p))))

    def describe(self, key: str) -> str:
        return f"{self.url}/{check_key(key, self.url)}"

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        """A local copy of the object (for readers that need a file, e.g. safetensors), removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="llmoe-store-") as tmp:
            path = Path(tmp) / posixpath.basename(check_key(key, self.url))
            path.write_bytes(self.read_bytes(key))
            yield path

    def child(self, prefix: str) -> RemoteStore:
        return RemoteStore(self.describe(prefix))


def _visible(path: Path) -> bool:
    """Not a writer's temp file (`.<name>.<random>.tmp`)."""
    return not (path.name.startswith(".") and path.name.endswith(".tmp"))


def _protocols(fs) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def open_store(location: str | os.PathLike | Store, what: str = "the store") -> Store:
    """A `Store` for a folder path or a URL ('s3://…', 'file:///…'); a Store is returned as is."""
    if isinstance(location, (LocalStore, RemoteStore)):
        return location
    text = str(location)
    if "://" in text:
        return RemoteStore(text)
    return LocalStore(Path(text), what)


def sync_down(store: Store, prefix: str, folder: Path) -> int:
    """Copy every object under `prefix` into `folder` (same relative layout); returns how many."""
    count = 0
    base = check_key(prefix, "the store")
    for key in store.list(prefix):
        relative = key[len(base) + 1 :]
        write_bytes_atomic(store.read_bytes(key), resolve_inside(folder, relative, "the local folder"))
        count += 1
    return count


def sync_up(folder: Path, store: Store, prefix: str) -> int:
    """Copy every file under `folder` to `prefix` in the store; returns how many."""
    if not folder.is_dir():
        return 0
    count = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file() and _visible(path):
            store.write_bytes(f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())
            count += 1
    return count
