"""Helpers for the end-to-end tests: a small slice of the reference data, its config, fresh LLMOE homes,
MLflow runs, and a real `dagster dev` (webserver + daemon) driven over GraphQL.

The slice (AAPL and MSFT, training windows June 2012 - August 2013, the last 30 % for validation, and the
test month September 2013: 334 windows per ticker; see SLICE_START for why it is that long); one expert grid
point, one baseline trial, two seeds, 10 epochs.
The language model dominates the time, so the e2e homes of a session share one router label cache
(content-addressed: same model and prompt, same label) and each slice window reaches the model once per session.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from llmoe_pipeline.core.paths import REPO_ROOT
from llmoe_pipeline_tests.model_fixtures import small_training

SLICE_TICKERS = ("AAPL", "MSFT")
# April and May 2012 are warm-up: the 30-day moving average and the 5-day window need ~35 trading days before
# the first training day. Fifteen months of training windows: the router's p_optimistic drifts, and a shorter
# slice left AAPL's validation tail with 8 Pessimistic windows under the training median (too few to early-stop).
SLICE_START, SLICE_END = "2012-04-01", "2013-09-30"
SPLIT = {"train_start": "2012-06-01", "train_end": "2013-08-30", "test_start": "2013-09-03", "validation_fraction": 0.3}
MLFLOW_EXPERIMENT = "llmoe-e2e"
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"  # git-ignored: screenshots and the dagster dev log
SERVER_START_TIMEOUT_S = 180
BIN_DIR = Path(sys.executable).parent


# ------------------------------------------------------------------------------------------ data slice
def cut_csv(source: Path, dest: Path, tickers=SLICE_TICKERS, start=SLICE_START, end=SLICE_END) -> pd.DataFrame:
    """Rows of a reference CSV for `tickers` between `start` and `end` (ISO dates), written verbatim."""
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    keep = frame["ticker"].isin(tickers) & (frame["date"] >= start) & (frame["date"] <= end)
    out = frame[keep].reset_index(drop=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(dest, index=False)
    return out


def write_slice(reference_dir: Path, dest: Path) -> Path:
    cut_csv(reference_dir / "prices.csv", dest / "prices.csv")
    cut_csv(reference_dir / "headlines.csv", dest / "headlines.csv")
    return dest


def write_config(path: Path, data_dir: Path, test_end: str | None = SLICE_END) -> Path:
    """The e2e protocol: the slice's split, two seeds, one expert grid point, one baseline trial, 10 epochs;
    the default router (SmolLM2-135M on this machine's default path) explaining test windows; the nightly
    schedule on. vLLM itself is tested by the router, leakage and cluster tests."""
    config = {
        "data": {
            "data_dir": str(data_dir),
            "price_files": ["prices.csv"],
            "headline_files": ["headlines.csv"],
            "tickers": list(SLICE_TICKERS),
        },
        "split": {**SPLIT, "test_end": test_end},
        "router": {"explain_splits": ["test", "live"]},
        **small_training([32, 16, 8], epochs=10, patience=5),
        "mlflow": {"experiment_name": MLFLOW_EXPERIMENT},
        "schedule": {"enabled": True, "data_sensor_enabled": False},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------ homes
def fresh_home(path: Path, converted_models: Path, label_cache: Path) -> Path:
    """An empty LLMOE home that shares the session's converted model and router label cache."""
    path.mkdir(parents=True)
    (path / "models").symlink_to(converted_models, target_is_directory=True)
    (path / "router_cache.sqlite").symlink_to(label_cache)  # sqlite follows the link (WAL files beside the target)
    return path


def mlflow_runs(home: Path) -> pd.DataFrame:
    """Every active MLflow run of the e2e experiment in the home's sqlite store (parents and children)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    exp = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    assert exp is not None, f"no MLflow experiment {MLFLOW_EXPERIMENT!r} in {home / 'mlflow.db'}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return pd.DataFrame(
        [
            {
                "run_id": r.info.run_id,
                "parent": r.data.tags.get("mlflow.parentRunId"),
                "status": r.info.status,
                **r.data.params,
                **{f"tag.{k}": v for k, v in r.data.tags.items()},
            }
            for r in runs
        ]
    )


# ------------------------------------------------------------------------------------------ dagster dev
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DagsterDev:
    url: str
    port: int
    home: Path  # LLMOE_HOME of the code location and its runs
    dagster_home: Path
    log_path: Path
    process: subprocess.Popen

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        assert not payload.get("errors"), payload["errors"]
        return payload["data"]

    def log_tail(self, n_chars: int = 4000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- dagster dev log ({self.log_path}) ---\n{text[-n_chars:]}"


LOCATION_QUERY = """
query { workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def wait_for_code_location(server: DagsterDev, timeout_s: float) -> None:
    """Until the webserver answers and the llmoe_pipeline code location has loaded (or failed to)."""
    deadline = time.time() + timeout_s
    last = "no answer yet"
    while time.time() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {server.process.returncode}\n{server.log_tail()}")
        try:
            entries = server.graphql(LOCATION_QUERY, timeout=10)["workspaceOrError"]["locationEntries"]
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError) as exc:
            last = repr(exc)
        else:
            ours = [e for e in entries if e["name"] == "llmoe_pipeline"]
            if ours and ours[0]["loadStatus"] == "LOADED":
                loaded = ours[0]["locationOrLoadError"]
                if loaded["__typename"] != "RepositoryLocation":
                    raise RuntimeError(f"code location failed to load: {loaded.get('message')}")
                return
            last = f"location entries: {entries}"
        time.sleep(1)
    raise TimeoutError(f"dagster dev not ready after {timeout_s} s ({last})\n{server.log_tail()}")


def stop_process_group(process: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGTERM the whole group `dagster dev` leads (webserver, daemon, code servers, run workers: Dagster
    starts them all in its group), give them `grace_s` to shut down, then SIGKILL whatever is left."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the group is gone: every member has exited
            break
        deadline = time.time() + wait_s
        while time.time() < deadline and _group_alive(process.pid):
            process.poll()  # reap the leader, so its zombie does not keep the group "alive"
            time.sleep(0.5)
    process.wait(timeout=10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
