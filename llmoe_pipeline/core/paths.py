"""Where the pipeline keeps its state: one home folder (LLMOE_HOME) for everything it writes."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = _PACKAGE_DIR.parents[1]


def llmoe_home() -> Path:
    """$LLMOE_HOME, else `.llmoe/` in the repository checkout (git-ignored)."""
    env = os.environ.get("LLMOE_HOME")
    home = Path(env).expanduser() if env else REPO_ROOT / ".llmoe"
    return home.resolve()


def default_data_dir() -> Path:
    """$LLMOE_DATA_DIR, else the reference data beside the checkout (`../shared/data`)."""
    env = os.environ.get("LLMOE_DATA_DIR")
    return Path(env).expanduser().resolve() if env else (REPO_ROOT.parent / "shared" / "data").resolve()


def default_updates_dir() -> Path:
    """Where fetched days land: <home>/updates (`data.updates_dir`)."""
    return llmoe_home() / "updates"


def resolve_inside(base: str | os.PathLike, relative: str | os.PathLike, what: str) -> Path:
    """Resolve a write path against `base` (an absolute path is taken as is), symlinks included.

    Refuses anything not strictly inside `base`: a path that escapes it, and `base` itself (a folder is
    never a file to write, and replacing it would clobber everything under it).
    """
    base = Path(base).resolve()
    candidate = (base / relative).resolve()
    if candidate == base:
        raise ValueError(f"write path {str(relative)!r} is {what} {base} itself, not a path inside it")
    if base not in candidate.parents:
        raise ValueError(f"write path {str(relative)!r} escapes {what} {base}")
    return candidate


def resolve_under_home(relative: str | os.PathLike, home: Path | None = None) -> Path:
    """Resolve a write path from config; refuse anything that escapes the home folder, or is the home itself."""
    return resolve_inside(home or llmoe_home(), relative, "the LLMOE home folder")
