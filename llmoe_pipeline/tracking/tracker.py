"""Experiment tracking in MLflow 3: one parent run per (experiment config, ticker, model), one child run per seed.

Pure (no Dagster). Dagster runs steps in separate processes, so everything goes through `MlflowClient` with
explicit run ids; the only fluent run is the short `mlflow.start_run(run_id=...)` block a flavor's
`log_model` needs. Nothing secret is logged: every params/tags mapping (and argv) passes through `redact`.
MLflow is imported inside functions: its import takes seconds, and Dagster imports this module often.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from llmoe_pipeline.core.files import file_lock, write_text_atomic
from llmoe_pipeline.core.hashing import sha256_json
from llmoe_pipeline.tracking.models import ModelToLog, log_models
from llmoe_pipeline.tracking.provenance import provenance_tags
from llmoe_pipeline.tracking.redaction import redact
from llmoe_pipeline.tracking.store import sqlite_lock_path
from llmoe_pipeline.tracking.tags import (
    CODE_VERSION_TAG,
    CONFIG_HASH_TAG,
    DATA_HASH_TAG,
    IDENTITY_TAG,
    IDENTITY_TAGS,
    MODEL_TAG,
    N_SEEDS_TAG,
    PARENT_RUN_ID_TAG,
    ROLE_TAG,
    SEED_TABLE_ARTIFACT,
    SEED_TAG,
    TICKER_TAG,
)

DEFAULT_UI_BASE_URL = "http://127.0.0.1:5000"


class ExperimentTracker:
    """Logs the pipeline's parent/seed runs to one MLflow experiment.

    Re-running policy: a parent's identity is (config hash, ticker, model, code version, data hash), stored
    as one `llmoe.identity` tag. `parent_run` *reuses* the active parent with that identity instead of
    creating another, and `log_seed_run` soft-deletes the earlier child of the same seed once its
    replacement is logged. So the UI shows one parent with exactly one child per seed, the parent's run id
    (and the URL Dagster shows for it) stays stable across re-materializations, and the replaced children
    are still recoverable (soft-deleted, restorable until `mlflow gc`). A parent that differs in config,
    code or data is a new parent, side by side with the old one. Params of a reused parent cannot change
    (MLflow params are immutable; identical config gives identical params, anything else fails loudly).
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str = "llmoe",
        artifact_location: str | os.PathLike | None = None,
        ui_base_url: str = DEFAULT_UI_BASE_URL,
    ):
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.ui_base_url = ui_base_url.rstrip("/")
        # A sqlite store is shared by the pipeline's processes: creating its tables (which the client does on
        # construction), the experiment and a parent are check-then-create sequences, serialized across
        # processes by a lock file beside the database.
        self._lock_path = sqlite_lock_path(tracking_uri)
        with file_lock(self._lock_path):
            self.client = MlflowClient(tracking_uri=tracking_uri)
            self.experiment_id = self._ensure_experiment(artifact_location)

    def __reduce__(self):
        """Sent to another process (a fit worker logging seeds), a tracker reconnects to the same experiment."""
        return _connect, (self.tracking_uri, self.experiment_name, self.ui_base_url)

    # -- runs -----------------------------------------------------------------------------------------

    def parent_run(
        self,
        ticker: str,
        model: str,
        config_hash: str,
        data_hash: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        code_version: str | None = None,
    ) -> str:
        """Run id of the parent for (config, ticker, model, code, data): the existing active one, else a new one.

        `code_version` defaults to the git-derived one of `provenance_tags()`. Call it before logging the
        seeds; calling it again (a retry, another process, even at the same moment) returns the same parent.
        """
        identity = {TICKER_TAG: ticker, MODEL_TAG: model, CONFIG_HASH_TAG: config_hash, DATA_HASH_TAG: data_hash}
        return self.identified_run(
            identity,
            run_name=f"{ticker}-{model}-{config_hash[:8]}",
            params=params,
            tags={**(tags or {}), ROLE_TAG: "parent"},
            code_version=code_version,
        )

    def identified_run(
        self,
        identity: Mapping[str, str],
        run_name: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        code_version: str | None = None,
    ) -> str:
        """Run id of the active run whose identity (`identity` + the code version) matches, else a new one.

        The identity is stored hashed in one `llmoe.identity` tag. Search and create happen under the store's
        lock, so two processes asking at the same moment get the same run. A reused run goes back to RUNNING
        and gets this call's tags and provenance."""
        provenance = provenance_tags()
        if code_version is not None:
            provenance[CODE_VERSION_TAG] = code_version
        identity = {**identity, CODE_VERSION_TAG: provenance[CODE_VERSION_TAG]}
        identity_key = sha256_json(identity)[:24]
        all_tags = redact({**(tags or {}), **provenance, **identity, IDENTITY_TAG: identity_key})
        with file_lock(self._lock_path):
            existing = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{IDENTITY_TAG}` = '{identity_key}'",
                order_by=["attributes.start_time ASC"],
                max_results=1,
            )
            if existing:
                run_id = existing[0].info.run_id
                self.client.update_run(run_id, status="RUNNING")
            else:
                # Tagged at creation, inside the lock: the next process's search must already see it.
                run_id = self.client.create_run(self.experiment_id, run_name=run_name, tags=all_tags).info.run_id
        self.log_batch(run_id, params=params, tags=all_tags)
        return run_id

    def log_seed_run(
        self,
        parent_id: str,
        seed: int,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        curves: Mapping[str, list[float]] | None = None,
        tags: Mapping[str, Any] | None = None,
        artifacts: Mapping[str, str | os.PathLike] | None = None,
        models: Sequence[ModelToLog] = (),
    ) -> str:
        """Log one seed as a finished child of `parent_id`; returns the child's run id.

        `curves` are per-epoch series (e.g. train/validation loss), logged with step = epoch index.
        `artifacts` maps a run-relative folder ("" for the root) to a local file or folder.
        Each of `models` (e.g. the two experts of one LLMoE seed; distinct names) is logged with its flavor's
        `log_model` (signature inferred from the input example and the model's output on it); its `models:/`
        URI goes into the tag `model_uri_tag(name)`.
        An earlier active child of the same seed is soft-deleted once this one is complete.
        """
        parent = self.client.get_run(parent_id)
        previous = self.child_runs(parent_id, seed=seed)
        child_tags = {
            **redact(tags),
            **{k: parent.data.tags[k] for k in IDENTITY_TAGS if k in parent.data.tags},
            PARENT_RUN_ID_TAG: parent_id,
            ROLE_TAG: "seed",
            SEED_TAG: str(seed),
        }
        run = self.client.create_run(self.experiment_id, run_name=f"seed-{seed}", tags=redact(child_tags))
        run_id = run.info.run_id
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        series = [
            Metric(key, float(value), now, step)
            for key, values in (curves or {}).items()
            for step, value in enumerate(values)
        ]
        scalars = [Metric(key, float(value), now, 0) for key, value in (metrics or {}).items()]
        with self.failed_on_error(run_id):
            self.log_batch(run_id, params={"seed": seed, **(params or {})}, metrics=scalars + series)
            self._log_artifacts(run_id, artifacts)
            if models:
                log_models(self.client, self.tracking_uri, run_id, models)  # ends the run
            else:
                self.client.set_terminated(run_id, "FINISHED")
        for old in previous:
            self.client.delete_run(old.info.run_id)
        return run_id

    def finish_parent(
        self,
        parent_id: str,
        seed_table: pd.DataFrame,
        artifacts: Mapping[str, str | os.PathLike] | None = None,
    ) -> dict[str, float]:
        """Summarize the seeds on the parent and mark it finished; returns the summary metrics it logged.

        `seed_table` has one row per seed: a `seed` column and one column per metric. Every numeric metric
        gets `<metric>_mean` and `<metric>_std` (sample std, ddof=1: NaN with a single seed). The table is
        logged as a CSV artifact rather than with `log_table`, which appends to an existing table and would
        duplicate rows on a reused parent. The seeds must match the parent's active children.
        """
        if "seed" not in seed_table.columns:
            raise ValueError("seed_table needs a 'seed' column (one row per seed)")
        child_seeds = sorted(int(r.data.tags[SEED_TAG]) for r in self.child_runs(parent_id))
        table_seeds = sorted(int(s) for s in seed_table["seed"])
        if child_seeds != table_seeds:
            raise ValueError(f"seed_table seeds {table_seeds} differ from the logged seed runs {child_seeds}")
        values = seed_table.drop(columns="seed").select_dtypes("number")
        summary = {f"{name}_mean": float(values[name].mean()) for name in values.columns}
        summary |= {f"{name}_std": float(values[name].std(ddof=1)) for name in values.columns}
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.log_batch(
            parent_id,
            metrics=[Metric(key, value, now, 0) for key, value in summary.items()],
            tags={N_SEEDS_TAG: len(seed_table)},
        )
        with tempfile.TemporaryDirectory() as tmp:
            table_path = write_text_atomic(seed_table.to_csv(index=False), Path(tmp) / SEED_TABLE_ARTIFACT)
            self.client.log_artifact(parent_id, str(table_path))
        self._log_artifacts(parent_id, artifacts)
        self.client.set_terminated(parent_id, "FINISHED")
        return summary

    @contextlib.contextmanager
    def failed_on_error(self, run_id: str):
        """Mark `run_id` FAILED if the block raises (also on Ctrl-C), so that no run is left RUNNING forever.
        A reused parent goes back to RUNNING when the next attempt picks it up."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # the original error matters more than this one
                self.client.set_terminated(run_id, "FAILED")
            raise

    def child_runs(self, parent_id: str, seed: int | None = None) -> list:
        """Active (not deleted) seed runs of a parent, optionally of one seed."""
        filters = [f"tags.`{PARENT_RUN_ID_TAG}` = '{parent_id}'"]
        if seed is not None:
            filters.append(f"tags.`{SEED_TAG}` = '{seed}'")
        return self.client.search_runs([self.experiment_id], filter_string=" and ".join(filters), max_results=10000)

    def run_url(self, run_id: str) -> str:
        """Link to a run in the MLflow UI (for Dagster's `MetadataValue.url`)."""
        return f"{self.ui_base_url}/#/experiments/{self.experiment_id}/runs/{run_id}"

    # -- internals ------------------------------------------------------------------------------------

    def _ensure_experiment(self, artifact_location: str | os.PathLike | None) -> str:
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            location = None
            if artifact_location:
                location = str(artifact_location)
                if "://" not in location:  # a local folder: MLflow wants a file:// URI
                    location = Path(location).expanduser().resolve().as_uri()
            return self.client.create_experiment(self.experiment_name, artifact_location=location)
        if experiment.lifecycle_stage == "deleted":
            self.client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def log_batch(self, run_id: str, params=None, tags=None, metrics=()) -> None:
        """Params and tags (redacted) and metrics, in as many `log_batch` calls as MLflow's limits need (per call:
        100 params, 100 tags, 1,000 entries in all)."""
        from mlflow.entities import Param, RunTag

        params = [Param(k, v) for k, v in redact(params).items()]
        tags = [RunTag(k, v) for k, v in redact(tags).items()]
        metrics = list(metrics)
        while params or tags or metrics:
            self.client.log_batch(run_id, metrics=metrics[:800], params=params[:100], tags=tags[:100])
            params, tags, metrics = params[100:], tags[100:], metrics[800:]

    def _log_artifacts(self, run_id: str, artifacts: Mapping[str, str | os.PathLike] | None) -> None:
        for folder, path in (artifacts or {}).items():
            if Path(path).is_dir():
                self.client.log_artifacts(run_id, str(path), artifact_path=folder or None)
            else:
                self.client.log_artifact(run_id, str(path), artifact_path=folder or None)


@functools.cache
def _connect(tracking_uri: str, experiment_name: str, ui_base_url: str) -> ExperimentTracker:
    """One tracker per process and experiment (a client costs a store check)."""
    return ExperimentTracker(tracking_uri, experiment_name, ui_base_url=ui_base_url)
