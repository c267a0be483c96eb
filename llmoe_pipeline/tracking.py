"""Experiment tracking in MLflow 3: one parent run per (experiment config, ticker, model), one child run per seed.

Pure (no Dagster). Dagster runs steps in separate processes, so everything goes through `MlflowClient` with
explicit run ids; the only fluent run is the short `mlflow.start_run(run_id=...)` block a flavor's
`log_model` needs. Nothing secret is logged: every params/tags mapping (and argv) passes through `redact`.
MLflow is imported inside functions: its import takes seconds, and Dagster imports this module often.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from llmoe_pipeline.io import write_text_atomic
from llmoe_pipeline.paths import REPO_ROOT

# Tags (namespaced so they never clash with MLflow's own `mlflow.*` tags).
PARENT_RUN_ID_TAG = "mlflow.parentRunId"  # MLflow's own tag: the UI nests children under it
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's own tag: the UI shows it as the run's commit
IDENTITY_TAG = "llmoe.identity"
ROLE_TAG = "llmoe.role"  # "parent" or "seed"
TICKER_TAG = "llmoe.ticker"
MODEL_TAG = "llmoe.model"
CONFIG_HASH_TAG = "llmoe.config_hash"
CODE_VERSION_TAG = "llmoe.code_version"
DATA_HASH_TAG = "llmoe.data_hash"
SEED_TAG = "llmoe.seed"
# Copied from a parent onto its children, so children can be filtered on their own.
_IDENTITY_TAGS = (TICKER_TAG, MODEL_TAG, CONFIG_HASH_TAG, CODE_VERSION_TAG, DATA_HASH_TAG)

SEED_TABLE_ARTIFACT = "seed_table.csv"
DEFAULT_UI_BASE_URL = "http://127.0.0.1:5000"

# ---------------------------------------------------------------------------------------------------------
# Secrets: never logged.

REDACTED = "***redacted***"
# A key is secret when one of these words is a whole word in it: HF_TOKEN, OPENAI_API_KEY, db_password,
# but not max_new_tokens or tokenizer.
_SECRET_KEY = re.compile(
    r"(^|[^a-z])(token|secret|passwd|password|pwd|credentials?|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|auth|authorization|bearer)([^a-z]|$)",
    re.IGNORECASE,
)
# Well-known token formats, masked wherever they appear in a value (Hugging Face, OpenAI, GitHub, AWS).
_SECRET_VALUE = re.compile(
    r"\b(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})\b"
)
_MIN_SECRET_LENGTH = 6  # shorter env values ("1", "true") would mask harmless text


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(str(key)))


def _environment_secrets() -> list[str]:
    """Values of secret-looking environment variables, so that they are masked even under innocent keys."""
    return sorted(
        (v for k, v in os.environ.items() if is_secret_key(k) and len(v) >= _MIN_SECRET_LENGTH),
        key=len,
        reverse=True,  # longest first, so a secret containing another is masked whole
    )


def _scrub(text: str, env_secrets: list[str]) -> str:
    for secret in env_secrets:
        text = text.replace(secret, REDACTED)
    return _SECRET_VALUE.sub(REDACTED, text)


def redact(mapping: Mapping[str, Any] | None) -> dict[str, str]:
    """String copy of `mapping` that is safe to log: secret-looking keys get their value masked, and
    secret values (token formats, values of secret environment variables) are masked anywhere."""
    env_secrets = _environment_secrets()
    return {
        str(k): REDACTED if is_secret_key(k) else _scrub(str(v), env_secrets) for k, v in (mapping or {}).items()
    }


def redact_argv(argv: list[str]) -> list[str]:
    """argv with the values of secret-looking options masked (`--hf-token X`, `--api-key=X`)."""
    env_secrets = _environment_secrets()
    out: list[str] = []
    mask_next = False
    for arg in argv:
        if mask_next:
            out.append(REDACTED)
            mask_next = False
            continue
        name, eq, _ = arg.partition("=")
        if arg.startswith("-") and is_secret_key(name.lstrip("-")):
            if eq:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(arg)
                mask_next = True
            continue
        out.append(_scrub(arg, env_secrets))
    return out


# ---------------------------------------------------------------------------------------------------------
# Provenance.


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in chunks: data files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, check=True, timeout=30
        )
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
        code_version = f"{sha}-dirty-{hashlib.sha256(changes.encode()).hexdigest()[:12]}"
    return {
        GIT_COMMIT_TAG: sha,
        "llmoe.git_dirty": str(dirty).lower(),
        CODE_VERSION_TAG: code_version,
        "llmoe.argv": " ".join(redact_argv(sys.argv))[:5000],
    }


# ---------------------------------------------------------------------------------------------------------
# Tracker.


def model_uri_tag(model_name: str) -> str:
    """Tag of a seed run holding the `models:/` URI of its model called `model_name`."""
    return f"llmoe.model_uri.{model_name}"


@dataclass(frozen=True)
class ModelToLog:
    """A trained model for `log_seed_run`: the raw estimator, its MLflow flavor, and a few input rows
    (float32, e.g. n×55; at least 2 rows, so that the exported PyTorch graph keeps a dynamic batch size)."""

    estimator: Any  # torch.nn.Module, or a LightGBM sklearn model / Booster
    flavor: Literal["pytorch", "lightgbm"]
    input_example: np.ndarray
    name: str = "model"


def _model_output(model: ModelToLog) -> np.ndarray:
    """The estimator's output on the input example (the signature's output schema is inferred from it)."""
    if model.flavor == "pytorch":
        import torch

        model.estimator.eval()
        with torch.no_grad():
            return model.estimator(torch.from_numpy(model.input_example)).numpy()
    if hasattr(model.estimator, "predict_proba"):
        return model.estimator.predict_proba(model.input_example)
    return np.asarray(model.estimator.predict(model.input_example))


def _pip_requirements(model: ModelToLog) -> list[str]:
    """Explicit requirements: MLflow's inference would re-load the model in a subprocess (seconds per call).
    MLflow adds its own pin. torch's local label (+cpu) is dropped because PyPI cannot resolve it."""
    if model.flavor == "pytorch":
        return [f"torch=={package_version('torch').split('+')[0]}"]
    import lightgbm

    requirements = [f"lightgbm=={package_version('lightgbm')}"]
    if not isinstance(model.estimator, lightgbm.Booster):  # sklearn models are saved with skops
        requirements.append(f"skops=={package_version('skops')}")
    return requirements


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
        self._lock_path = _sqlite_lock_path(tracking_uri)
        with self._store_lock():
            self.client = MlflowClient(tracking_uri=tracking_uri)
            self.experiment_id = self._ensure_experiment(artifact_location)

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
        provenance = provenance_tags()
        if code_version is not None:
            provenance[CODE_VERSION_TAG] = code_version
        identity = {
            TICKER_TAG: ticker,
            MODEL_TAG: model,
            CONFIG_HASH_TAG: config_hash,
            CODE_VERSION_TAG: provenance[CODE_VERSION_TAG],
            DATA_HASH_TAG: data_hash,
        }
        identity_key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
        all_tags = {**redact(tags), **provenance, **identity, IDENTITY_TAG: identity_key, ROLE_TAG: "parent"}
        with self._store_lock():
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
                run_name = f"{ticker}-{model}-{config_hash[:8]}"
                # Tagged at creation, inside the lock: the next process's search must already see it.
                run = self.client.create_run(self.experiment_id, run_name=run_name, tags=redact(all_tags))
                run_id = run.info.run_id
        self._log_batch(run_id, params=params, tags=all_tags)  # a reused parent gets this run's provenance
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
            **{k: parent.data.tags[k] for k in _IDENTITY_TAGS if k in parent.data.tags},
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
            self._log_batch(run_id, params={"seed": seed, **(params or {})}, metrics=scalars + series)
            self._log_artifacts(run_id, artifacts)
            if models:
                self._log_models(run_id, models)  # ends the run
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
        self._log_batch(
            parent_id,
            metrics=[Metric(key, value, now, 0) for key, value in summary.items()],
            tags={"llmoe.n_seeds": len(seed_table)},
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

    @contextlib.contextmanager
    def _store_lock(self) -> Iterator[None]:
        if self._lock_path is None:  # a tracking server: no shared file to lock (parent look-up is unguarded)
            yield
            return
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _log_batch(self, run_id: str, params=None, tags=None, metrics=()) -> None:
        from mlflow.entities import Param, RunTag

        self.client.log_batch(
            run_id,
            metrics=list(metrics),
            params=[Param(k, v) for k, v in redact(params).items()],
            tags=[RunTag(k, v) for k, v in redact(tags).items()],
        )

    def _log_artifacts(self, run_id: str, artifacts: Mapping[str, str | os.PathLike] | None) -> None:
        for folder, path in (artifacts or {}).items():
            if Path(path).is_dir():
                self.client.log_artifacts(run_id, str(path), artifact_path=folder or None)
            else:
                self.client.log_artifact(run_id, str(path), artifact_path=folder or None)

    def _log_models(self, run_id: str, models: Sequence[ModelToLog]) -> None:
        """Log `models` into run `run_id` with their flavors and tag their URIs. Ends the run (FINISHED, or
        FAILED if logging raises): `log_model` only logs into the fluent active run."""
        import mlflow
        from mlflow.models import infer_signature

        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ValueError(f"models logged in one run need distinct names, got {names}")
        with fluent_tracking_uri(self.tracking_uri), mlflow.start_run(run_id=run_id), warnings.catch_warnings():
            # Saving an LSTM makes torch warn once per model that its flat weights are plain attributes; the
            # saved model loads and predicts identically (test_tracking), so the warning is only noise.
            warnings.filterwarnings("ignore", message=r".*were assigned during export", category=UserWarning)
            for model in models:
                flavor = mlflow.pytorch if model.flavor == "pytorch" else mlflow.lightgbm
                info = flavor.log_model(
                    model.estimator,
                    name=model.name,
                    signature=infer_signature(model.input_example, _model_output(model)),
                    input_example=model.input_example,
                    pip_requirements=_pip_requirements(model),
                )
                self.client.set_tag(run_id, model_uri_tag(model.name), info.model_uri)


@contextlib.contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-global (fluent) tracking URI at `uri` for the block, then restore the previous
    setting exactly (unset stays unset, and so does $MLFLOW_TRACKING_URI, which MLflow rewrites). Needed by
    `log_model`, and by `mlflow.<flavor>.load_model` of a `models:/` URI. MLflow's own helper: no public one."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        if env_before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_before


def _sqlite_lock_path(tracking_uri: str) -> Path | None:
    """`<db>.lock` beside a `sqlite:///<db>` store; None for any other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(db + ".lock") if db and db != ":memory:" else None
