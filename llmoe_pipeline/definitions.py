"""The Dagster code location: `dagster dev` (workspace.yaml) and `llmoe run` both load `defs` from here.

Asset graph (left to right), each asset a thin wrapper over one pure module:
raw_prices, raw_headlines (data.py) → feature_windows (features.py) → router_labels (router/) →
expert_models/{optimistic,pessimistic} (models/experts.py), baseline_models/* (models/baselines.py) →
backtest_results (backtest.py, metrics.py, tracking.py, plots.py).
"""

from __future__ import annotations

from typing import Optional

import dagster as dg

from llmoe_pipeline.config import load_yaml_section
from llmoe_pipeline.defs.assets.data import raw_headlines, raw_prices
from llmoe_pipeline.defs.assets.evaluation import backtest_results
from llmoe_pipeline.defs.assets.features import feature_windows
from llmoe_pipeline.defs.assets.models import baseline_models, expert_models
from llmoe_pipeline.defs.assets.router import router_labels
from llmoe_pipeline.defs.io_manager import LocalAssetIOManager
from llmoe_pipeline.defs.resources import LLMRouterResource, MLflowResource, ProtocolResource
from llmoe_pipeline.defs.schedules import data_files_sensor, llmoe_job, nightly_refresh_schedule
from llmoe_pipeline.defs.settings import config_file_from_env

ALL_ASSETS = [raw_prices, raw_headlines, feature_windows, router_labels, expert_models, baseline_models,
              backtest_results]


def build_resources(config_file: Optional[str] = None, n_seeds: Optional[int] = None,
                    router_backend: Optional[str] = None) -> dict:
    """Resources from the YAML config file's sections, with the CLI's overrides on top."""
    router = load_yaml_section(config_file, "router_backend")
    if router_backend:
        router["backend"] = router_backend
    return {
        "protocol": ProtocolResource(config_file=config_file, n_seeds=n_seeds),
        "llm_router": LLMRouterResource(**router),
        "mlflow": MLflowResource(**load_yaml_section(config_file, "mlflow")),
        "io_manager": LocalAssetIOManager(),
    }


defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=[llmoe_job],
    schedules=[nightly_refresh_schedule],
    sensors=[data_files_sensor],
    resources=build_resources(config_file_from_env()),
)
