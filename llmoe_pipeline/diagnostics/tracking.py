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

from llmoe_pipeline.hashing import sha256_json
from llmoe_pipeline.io import write_text_atomic
from llmoe_pipeline.tracking.provenance import provenance_tags
from llmoe_pipeline.tracking.redaction import redact
from llmoe_pipeline.tracking.store import sqlite_lock_path, store_lock
from llmoe_pipeline.tracking.tags import (
    CODE_VERSION_TAG,
    CONFIG_HASH_TAG,
    DATA_HASH_TAG,
    IDENTITY_TAG,
    ROLE_TAG,
    TICKER_TAG,
)
from llmoe_pipeline.tracking.tracker import ExperimentTracker

ROLE = "diagnostics"
MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit


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
    provenance = provenance_tags()
    if code_version is not None:
        provenance[CODE_VERSION_TAG] = code_version
    identity = {
        TICKER_TAG: ticker,
        ROLE_TAG: ROLE,
        CONFIG_HASH_TAG: config_hash,
        CODE_VERSION_TAG: provenance[CODE_VERSION_TAG],
        DATA_HASH_TAG: data_hash,
    }
    key = sha256_json(identity)[:24]
    all_tags = redact({**(tags or {}), **provenance, **identity, IDENTITY_TAG: key})
    with store_lock(sqlite_lock_path(tracker.tracking_uri)):
        existing = tracker.client.search_runs(
            [tracker.experiment_id],
            filter_string=f"tags.`{IDENTITY_TAG}` = '{key}'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        if existing:
            run_id = existing[0].info.run_id
            tracker.client.update_run(run_id, status="RUNNING")
        else:
            run_id = tracker.client.create_run(
                tracker.experiment_id, run_name=run_name(ticker), tags=all_tags
            ).info.run_id
    _log(tracker, run_id, tags=all_tags)
    return run_id


def _log(tracker: ExperimentTracker, run_id: str, params=None, tags=None, metrics: Mapping[str, float] | None = None):
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
    chunks = [items[i : i + MAX_METRICS_PER_BATCH] for i in range(0, len(items), MAX_METRICS_PER_BATCH)] or [[]]
    for i, chunk in enumerate(chunks):
        tracker.client.log_batch(
            run_id,
            metrics=chunk,
            params=[Param(k, str(v)) for k, v in redact(params).items()] if i == 0 else [],
            tags=[RunTag(k, str(v)) for k, v in redact(tags).items()] if i == 0 else [],
        )


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
        _log(tracker, run_id, params=params, metrics=metrics)
        for name, table in tables.items():
            path = write_text_atomic(table.to_csv(index=False), Path(tmp) / f"{name}.csv")
            tracker.client.log_artifact(run_id, str(path), artifact_path="tables")
        for plot in (plots or {}).values():
            tracker.client.log_artifact(run_id, str(plot), artifact_path="plots")
        tracker.client.set_terminated(run_id, "FINISHED")
    return tracker.run_url(run_id)
