"""Shared fixtures. Every test session gets its own LLMOE_HOME, so tests never touch the user's `.llmoe/`."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Set before anything imports llmoe_pipeline.defs (partitions and the home are read at import time).
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="llmoe-test-home-"))
os.environ["LLMOE_HOME"] = str(_SESSION_HOME)
os.environ.setdefault("LLMOE_TICKERS", "AAPL,MSFT")
os.environ.pop("LLMOE_CONFIG", None)

from llmoe_pipeline.core.paths import default_data_dir

DATA_DIR = Path(os.environ.get("LLMOE_DATA_DIR") or default_data_dir())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "prices.csv").exists():
        pytest.fail(f"reference data not found in {DATA_DIR}: set LLMOE_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def session_home() -> Path:
    return _SESSION_HOME


@pytest.fixture(scope="session")
def router_model(session_home):
    """The default router alias converted to safetensors under the session's LLMOE home (once per session)."""
    from llmoe_pipeline.router.model import DEFAULT_MODEL, resolve_model

    return resolve_model(DEFAULT_MODEL, session_home)


@pytest.fixture(scope="session")
def aapl_prices(data_dir):
    from llmoe_pipeline import load_prices

    return load_prices(data_dir / "prices.csv", tickers=["AAPL"])


@pytest.fixture(scope="session")
def aapl_msft_prices(data_dir):
    from llmoe_pipeline import load_prices

    return load_prices(data_dir / "prices.csv", tickers=["AAPL", "MSFT"])


def pytest_sessionfinish(session, exitstatus):
    # Each session home holds a converted model (~540 MB): do not let test runs fill /tmp.
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)
