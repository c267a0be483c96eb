"""Provenance of a run: file hashes, the git commit, a code version that tells dirty trees apart, and argv."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from llmoe_pipeline.core.hashing import sha256_file, sha256_text
from llmoe_pipeline.core.paths import REPO_ROOT
from llmoe_pipeline.tracking.redaction import redact_argv
from llmoe_pipeline.tracking.tags import ARGV_TAG, CODE_VERSION_TAG, GIT_COMMIT_TAG, GIT_DIRTY_TAG


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    return sha256_file(path)


def data_files_hash(paths: Iterable[str | os.PathLike]) -> str:
    """16-hex id of the input data files: names and contents of those that exist, in the given order."""
    joined = "".join(f"{Path(p).name}:{file_sha256(p)}" for p in paths if Path(p).exists())
    return sha256_text(joined)[:16]


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode("utf-8", "replace")


def provenance_tags() -> dict[str, str]:
    """Git commit of the repository, whether the tree is dirty, the code version, and the (redacted) argv.

    The code version is the commit, plus a hash of the uncommitted changes when the tree is dirty: two runs
    from the same dirty tree share a version, runs from different uncommitted edits do not.
    """
    sha = (_git("rev-parse", "HEAD") or "").strip() or "unknown"
    status = _git("status", "--porcelain")
    dirty = bool(status and status.strip())
    code_version = sha
    if dirty:
        changes = (status or "") + (_git("diff", "HEAD", "--no-ext-diff", "--binary") or "")
        code_version = f"{sha}-dirty-{sha256_text(changes)[:12]}"
    return {
        GIT_COMMIT_TAG: sha,
        GIT_DIRTY_TAG: str(dirty).lower(),
        CODE_VERSION_TAG: code_version,
        ARGV_TAG: " ".join(redact_argv(sys.argv))[:5000],
    }
