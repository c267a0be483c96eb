"""The ticker's router-diagnostics run in MLflow: one run named `router-diagnostics-<ticker>`, reused on
re-materialization.

Like `ExperimentTracker.parent_run`, a run's identity is (ticker, role, config hash, code version, data hash),
stored as one `llmoe.identity` tag: the active run with that identity is reused (its metrics get the new values,
its artifacts are overwritten), and a run that differs in config, code or data is a new run beside the old one.
Only the bootstrap settings are params (immutable in MLflow, identical for one identity); the routing thresholds,
which come from the models, are tags.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from llmoe_pipeline.core.files import write_text_atomic
from llmoe_pipeline.tracking.tags import CONFIG_HASH_TAG, DATA_HASH_TAG, ROLE_TAG, TICKER_TAG
from llmoe_pipeline.tracking.tracker import ExperimentTracker

ROLE = "diagnostics"


def run_name(ticker: str) -> str:
    return f"router-diagnostics-{ticker}"


def diagnostics_run(
    tracker: ExperimentTracker,
    ticker: str,
    config_hash: str,
    data_hash: str,
    tags: Mapping[str, str] | None = None,
    code_version: str | None = None,
) -> str:
    """Run id of the ticker's diagnostics run for (config, code, data): the existing active one, else a new one."""
    identity = {TICKER_TAG: ticker, ROLE_TAG: ROLE, CONFIG_HASH_TAG: config_hash, DATA_HASH_TAG: data_hash}
    return tracker.identified_run(identity, run_name(ticker), tags=tags, code_version=code_version)


def log_diagnostics(
    tracker: ExperimentTracker,
    ticker: str,
    config_hash: str,
    data_hash: str,
    metrics: Mapping[str, float],
    tables: Mapping[str, pd.DataFrame],
    params: Mapping[str, object] | None = None,
    tags: Mapping[str, str] | None = None,
    plots: Mapping[str, str | os.PathLike] | None = None,
    code_version: str | None = None,
) -> str:
    """Log the diagnostics of one ticker (metrics, `tables/<name>.csv`, `plots/<file>`) to its run, mark it
    finished and return the run's URL. A failure marks the run FAILED (never left RUNNING)."""
    run_id = diagnostics_run(tracker, ticker, config_hash, data_hash, tags, code_version)
    with tracker.failed_on_error(run_id), tempfile.TemporaryDirectory(prefix="llmoe-diagnostics-") as tmp:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        tracker.log_batch(run_id, params=params, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        for name, table in tables.items():
            path = write_text_atomic(table.to_csv(index=False), Path(tmp) / f"{name}.csv")
            tracker.client.log_artifact(run_id, str(path), artifact_path="tables")
        for plot in (plots or {}).values():
            tracker.client.log_artifact(run_id, str(plot), artifact_path="plots")
        tracker.client.set_terminated(run_id, "FINISHED")
    return tracker.run_url(run_id)
