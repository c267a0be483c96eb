"""Dagster resources: the protocol, the language model (an external system), MLflow (another) and the model store.

Each resource carries the values of one typed, pure config section (so the UI shows values, not a file path)
and hands the assets the pure object they use; the sections are validated once, in `settings.load_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from llmoe_pipeline.config.protocol import PipelineConfig
from llmoe_pipeline.config.settings import MLflowConfig, Settings
from llmoe_pipeline.core.paths import resolve_inside
from llmoe_pipeline.core.storage import open_store, sync_down, sync_up
from llmoe_pipeline.defs.io_manager import LocalAssetIOManager
from llmoe_pipeline.router.backends.config import RouterBackendConfig
from llmoe_pipeline.router.cache import open_label_cache
from llmoe_pipeline.tracking.redaction import redact_url

ROUTER_URL_ENV = "LLMOE_ROUTER_BASE_URL"  # set by build_resources when the URL carries a secret
MLFLOW_URI_ENV = "LLMOE_MLFLOW_TRACKING_URI"


class ProtocolResource(dg.ConfigurableResource):
    """The experiment protocol (data files, split, grids, seeds, costs); defaults are the paper's."""

    protocol: dict  # a plain dict is a permissive config mapping: its values may be null (e.g. split.test_end)

    @property
    def config(self) -> PipelineConfig:
        return PipelineConfig.model_validate(self.protocol)


class LLMRouterResource(dg.ConfigurableResource):
    """The language model that labels windows Optimistic/Pessimistic, and its label cache under the home."""

    backend: dict
    home: str
    base_url: str = ""  # the server URL (openai backend), kept apart so that one with credentials is an EnvVar
    label_cache_url: str = ""  # storage.label_cache_url: a postgresql:// cache shared by every worker

    @property
    def config(self) -> RouterBackendConfig:
        return RouterBackendConfig.model_validate({**self.backend, "base_url": self.base_url or None})

    def backend_factory(self):
        """The backend, not built yet: its model id is known (for the cache key) without loading the model,
        so a fully cached run never loads it; calling it builds the backend."""
        from llmoe_pipeline.router.backends import BackendSpec

        return BackendSpec(self.config, home=Path(self.home))

    def cache(self):
        """SQLite under the home (one machine), or PostgreSQL when `label_cache_url` is set (a cluster)."""

        return open_label_cache(self.label_cache_url or Path(self.home) / "router_cache.sqlite")


class MLflowResource(dg.ConfigurableResource):
    """MLflow tracking: one parent run per (config, ticker, model), one child run per seed."""

    tracking: dict
    home: str
    tracking_uri: str = ""  # kept apart, like LLMRouterResource.base_url

    @property
    def config(self) -> MLflowConfig:
        return MLflowConfig.model_validate({**self.tracking, "tracking_uri": self.tracking_uri})

    def tracker(self, experiment_name: str | None = None):
        from mlflow.exceptions import MlflowException

        from llmoe_pipeline.tracking import ExperimentTracker

        cfg, home = self.config, Path(self.home)
        server = cfg.tracking_uri.startswith(("http://", "https://"))
        # A tracking server (a cluster) decides where artifacts go (`mlflow server --serve-artifacts`: clients upload
        # through it); a local folder of this worker's home would be unreachable from the others.
        default_location = None if server else str(home / "mlartifacts")
        for attempt in range(2):
            try:
                return ExperimentTracker(
                    tracking_uri=cfg.tracking_uri or f"sqlite:///{home / 'mlflow.db'}",
                    experiment_name=experiment_name or cfg.experiment_name,
                    artifact_location=cfg.artifact_location or default_location,
                    ui_base_url=cfg.ui_base_url,
                )
            except MlflowException as exc:  # two workers created the experiment at once: the second finds it
                if attempt or not server or exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
        raise AssertionError("unreachable")


class ModelStoreResource(dg.ConfigurableResource):
    """Where trained model sets are kept by training fingerprint (`<home>/model_cache`), and where result files
    are written (`<home>/artifacts/<ticker>`). With `storage_url` (a cluster: `storage.shared_url`) both live
    there instead: result files are written to this worker's `<home>/artifacts/<ticker>` as before, copied from
    the shared `artifacts/<ticker>` when a step asks for the folder and back when the step ends, so that a step on
    another worker (e.g. mlflow_runs logging the backtest's plots) finds them."""

    home: str
    storage_url: str = ""
    _synced: set = PrivateAttr(default_factory=set)  # tickers whose artifacts this step copied down

    def store(self):
        from llmoe_pipeline.models.store import ModelStore

        if self.storage_url:
            return ModelStore(open_store(self.storage_url).child("model_cache"))
        return ModelStore(Path(self.home) / "model_cache")

    def signals_dir(self) -> Path:
        """The signal history: one Parquet file per ticker and day (llmoe_pipeline/trading/signals.py)."""
        return resolve_inside(self.home, "signals", "the LLMOE home folder")

    def artifacts_dir(self, ticker: str) -> Path:
        folder = resolve_inside(self.home, Path("artifacts", ticker), "the LLMOE home folder")
        if self.storage_url and ticker not in self._synced:
            sync_down(open_store(self.storage_url), f"artifacts/{ticker}", folder)
            self._synced.add(ticker)
        return folder

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:

        for ticker in sorted(self._synced):
            sync_up(
                resolve_inside(self.home, Path("artifacts", ticker), "the LLMOE home folder"),
                open_store(self.storage_url),
                f"artifacts/{ticker}",
            )


def secret_safe(url: str | None, env_name: str) -> Any:
    """A URL as resource config: as is, or, when it carries credentials or query values, a `dg.EnvVar` set in this
    process, so that Dagster's storage and UI keep only the variable's name (every process that loads the code
    location sets it again)."""

    if not url or redact_url(url) == url:
        return url or ""
    os.environ[env_name] = url
    return dg.EnvVar(env_name)


def build_resources(settings: Settings) -> dict[str, Any]:

    home = str(settings.home)
    router = settings.router_backend.model_dump(mode="json", exclude={"base_url"})
    tracking = settings.mlflow.model_dump(mode="json", exclude={"tracking_uri"})
    return {
        "protocol": ProtocolResource(protocol=settings.protocol.model_dump(mode="json")),
        "llm_router": LLMRouterResource(
            backend=router,
            home=home,
            base_url=secret_safe(settings.router_backend.base_url, ROUTER_URL_ENV),
            label_cache_url=settings.storage.label_cache_url,
        ),
        "mlflow": MLflowResource(
            tracking=tracking, home=home, tracking_uri=secret_safe(settings.mlflow.tracking_uri, MLFLOW_URI_ENV)
        ),
        "model_store": ModelStoreResource(home=home, storage_url=settings.storage.shared_url),
        "io_manager": LocalAssetIOManager(home=home, storage_url=settings.storage.shared_url),
    }
