"""What every `llmoe` entry point shares: the expected errors (one line, exit 1), the libraries kept quiet, the
root cause of a failed run, and the Dagster instance under the home."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from pathlib import Path

from llmoe_pipeline.core.paths import REPO_ROOT
from llmoe_pipeline.data.errors import DataValidationError


class CliError(Exception):
    """An expected failure: reported as one line, exit code 1."""


class RefreshError(RuntimeError):
    """A ticker's refresh failed in its own process; the message names the ticker and the root cause."""


class PortInUseError(Exception):
    """A port the UIs need is taken."""


def dagster_home(llmoe_home_dir: Path) -> Path:
    """<home>/dagster: the Dagster instance the CLI and the UI share, with this repo's dagster.yaml."""
    home = llmoe_home_dir / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    src = REPO_ROOT / "dagster.yaml"
    if src.exists() and (
        not (home / "dagster.yaml").exists() or (home / "dagster.yaml").read_bytes() != src.read_bytes()
    ):
        shutil.copyfile(src, home / "dagster.yaml")
    return home


def dagster_instance(llmoe_home_dir: Path):
    import dagster as dg

    return dg.DagsterInstance.from_config(str(dagster_home(llmoe_home_dir)))


def quiet_libraries() -> None:
    """Keep `llmoe run`'s output to its own progress lines: no progress bars from transformers, tqdm or
    vLLM's loader, no deprecation chatter from vLLM/torch imports, no C++ info warnings (NUMA binding).
    Set before the libraries are imported; a user's own settings of these variables win."""
    for key, value in {
        "TQDM_DISABLE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TORCH_CPP_LOG_LEVEL": "ERROR",
        "VLLM_LOGGING_LEVEL": "ERROR",
        "MLFLOW_LOGGING_LEVEL": "WARNING",
    }.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # "Triton not available" (unused on CPU): torch resets the level of its top logger on import, not this one's.
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)


def root_cause(exc: BaseException) -> str:
    """Dagster wraps the asset's exception (also in DagsterMaxRetriesExceededError after retries); users want the
    original message, not the wrappers."""
    final = (CliError, DataValidationError, PortInUseError, RefreshError)  # their messages already say it all
    seen = exc
    while True:
        user = getattr(seen, "user_exception", None)
        nxt = user or seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
        if isinstance(seen, final) or nxt is None:
            break
        seen = nxt
    return f"{seen}" if isinstance(seen, (*final, FileNotFoundError, ValueError)) else f"{type(seen).__name__}: {seen}"
