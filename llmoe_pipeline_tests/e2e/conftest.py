"""End-to-end fixtures: the session's converted router model and router label cache, shared by every e2e
LLMOE home, and one real `dagster dev` shared by the UI tests (started once, stopped after the package).

The e2e tests are marked `e2e` (deselect with `-m "not e2e"`) and run in this order: the `dagster dev`
tests first, so the daemon-launched run is the one that meets the language model for AAPL (inside a run
worker), then the in-process refresh test, which finds AAPL's windows in the shared label cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llmoe_pipeline.core.paths import REPO_ROOT
from llmoe_pipeline_tests.e2e.support import (
    ARTIFACTS_DIR,
    BIN_DIR,
    SERVER_START_TIMEOUT_S,
    SLICE_TICKERS,
    DagsterDev,
    free_port,
    fresh_home,
    stop_process_group,
    wait_for_code_location,
    write_config,
    write_slice,
)

_PACKAGE_DIR = Path(__file__).resolve().parent
_FILE_ORDER = ("test_webserver_daemon.py", "test_ui_browser.py", "test_nightly_refresh.py")


def pytest_collection_modifyitems(config, items):
    """Mark this package's tests `e2e` and put them in _FILE_ORDER, leaving every other test where it is."""
    ours = [i for i, item in enumerate(items) if Path(str(item.fspath)).parent == _PACKAGE_DIR]
    for i in ours:
        items[i].add_marker(pytest.mark.e2e)
    rank = {name: k for k, name in enumerate(_FILE_ORDER)}
    ordered = sorted((items[i] for i in ours), key=lambda item: rank.get(Path(str(item.fspath)).name, len(rank)))
    for i, item in zip(ours, ordered):
        items[i] = item


@pytest.fixture(scope="session")
def converted_models(session_home) -> Path:
    """The default router model, converted once per session."""
    from llmoe_pipeline.router.model import DEFAULT_MODEL, resolve_model

    resolve_model(DEFAULT_MODEL, session_home)
    return session_home / "models"


@pytest.fixture(scope="session")
def label_cache(session_home) -> Path:
    """Where the e2e homes' router label cache lives (created on first use by the router)."""
    folder = session_home / "e2e-router-cache"
    folder.mkdir(exist_ok=True)
    return folder / "router_cache.sqlite"


@pytest.fixture(scope="package")
def dagster_dev(tmp_path_factory, data_dir, converted_models, label_cache):
    """The real `dagster dev` from the repository root, on a free port, over the slice; stopped (the whole
    process group) after the last test of this package, whatever happened. Its log goes to test-artifacts/."""
    root = tmp_path_factory.mktemp("dagster-dev")
    slice_dir = write_slice(data_dir, root / "data")
    config = write_config(root / "config.yaml", slice_dir)
    home = fresh_home(root / "home", converted_models, label_cache)
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        **os.environ,
        "LLMOE_HOME": str(home),
        "LLMOE_CONFIG": str(config),
        "LLMOE_DATA_DIR": str(slice_dir),
        "LLMOE_TICKERS": ",".join(SLICE_TICKERS),
        "DAGSTER_HOME": str(dagster_home),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    log_path = root / "dagster_dev.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(BIN_DIR / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # its own process group, so teardown reaches every child
    server = DagsterDev(
        url=f"http://127.0.0.1:{port}",
        port=port,
        home=home,
        dagster_home=dagster_home,
        log_path=log_path,
        process=process,
    )
    try:
        wait_for_code_location(server, SERVER_START_TIMEOUT_S)
        yield server
    finally:
        # Cleanup, not a test of shutdown (test_llmoe_ui is): a member of the group outlived the default 30 s grace
        # in CI, after the daemon had shut down, and cost the suite those 30 s.
        stop_process_group(process, grace_s=5)
        ARTIFACTS_DIR.mkdir(exist_ok=True)
        shutil.copyfile(log_path, ARTIFACTS_DIR / "dagster_dev.log")
