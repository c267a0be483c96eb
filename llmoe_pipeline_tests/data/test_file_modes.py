"""Files written under the home are private: 0600 files, 0700 new folders, whatever the umask (issue #14, item 6)."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from llmoe_pipeline.core.files import (
    atomic_path,
    private_mkdir,
    write_bytes_atomic,
    write_parquet_atomic,
    write_text_atomic,
)
from llmoe_pipeline.router.cache import CacheEntry, LabelCache


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def permissive_umask():
    """umask 000: without the fix, files would come out 0666 and folders 0777."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_atomic_writes_are_owner_only_files_in_owner_only_folders(tmp_path, permissive_umask):
    existing = tmp_path / "home"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)
    target = existing / "assets" / "raw_prices" / "AAPL.parquet"
    write_parquet_atomic(pd.DataFrame({"x": [1]}), target)
    write_bytes_atomic(b"{}", existing / "models" / "fp.json")
    write_text_atomic("text", existing / "notes.txt")
    with atomic_path(existing / "plots" / "a.png") as tmp:
        tmp.write_bytes(b"png")
    for file in (target, existing / "models" / "fp.json", existing / "notes.txt", existing / "plots" / "a.png"):
        assert mode(file) == 0o600, file
    for folder in (existing / "assets", existing / "assets" / "raw_prices", existing / "models", existing / "plots"):
        assert mode(folder) == 0o700, folder
    assert mode(existing) == 0o755  # a folder that existed keeps its mode


def test_rewriting_a_shared_file_makes_it_private(tmp_path, permissive_umask):
    path = tmp_path / "a.json"
    path.write_text("old")
    os.chmod(path, 0o666)
    write_text_atomic("new", path)
    assert (path.read_text(), mode(path)) == ("new", 0o600)


def test_private_mkdir_tolerates_existing_folders(tmp_path, permissive_umask):
    assert private_mkdir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert private_mkdir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (mode(tmp_path / "a"), mode(tmp_path / "a" / "b")) == (0o700, 0o700)


def test_router_cache_and_its_wal_files_are_private(tmp_path, permissive_umask):
    path = tmp_path / "home" / "router_cache.sqlite"
    with LabelCache(path) as cache:
        cache.put_many([CacheEntry("k", "model", "v2", "sha", 0.5, None)])
        files = sorted(p.name for p in path.parent.iterdir())
        assert files == ["router_cache.sqlite", "router_cache.sqlite-shm", "router_cache.sqlite-wal"]
        assert {p.name: mode(p) for p in path.parent.iterdir()} == dict.fromkeys(files, 0o600)
    assert mode(path.parent) == 0o700
