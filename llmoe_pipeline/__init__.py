"""llmoe-pipeline: LLM-routed mixture of experts for trading (Liu & Lo, arXiv 2501.09636)."""

import os

# No usage telemetry from the libraries the pipeline drives, whatever the entry point (CLI, `dagster dev`, a
# notebook): set before any of them is imported, without overriding a user's explicit choice. Dagster's own
# telemetry is off in the instance config (dagster.yaml) that `llmoe` uses.
for _key, _value in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_key, _value)

from llmoe_pipeline.config.protocol import PipelineConfig, SplitConfig  # noqa: E402
from llmoe_pipeline.data import DataValidationError, daily_news, load_headlines, load_prices  # noqa: E402
from llmoe_pipeline.features.windows import FEATURE_NAMES, build_features, window_columns  # noqa: E402

__all__ = [
    "DataValidationError",
    "FEATURE_NAMES",
    "PipelineConfig",
    "SplitConfig",
    "build_features",
    "daily_news",
    "load_headlines",
    "load_prices",
    "window_columns",
]
