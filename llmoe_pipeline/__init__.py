"""llmoe-pipeline: LLM-routed mixture of experts for trading (Liu & Lo, arXiv 2501.09636)."""

from llmoe_pipeline.config import PipelineConfig, SplitConfig
from llmoe_pipeline.data import DataValidationError, daily_news, load_headlines, load_prices
from llmoe_pipeline.features import FEATURE_NAMES, build_features, window_columns

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
