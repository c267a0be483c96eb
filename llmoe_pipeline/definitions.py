"""The Dagster code location: `dagster dev` (workspace.yaml) and `llmoe run` both load `defs` from here."""

import dagster as dg

from llmoe_pipeline.defs.assets.data import raw_headlines, raw_prices
from llmoe_pipeline.defs.assets.features import feature_windows
from llmoe_pipeline.defs.io_manager import LocalAssetIOManager
from llmoe_pipeline.defs.resources import LLMRouterResource, MLflowResource, ProtocolResource
from llmoe_pipeline.defs.settings import config_file_from_env

ALL_ASSETS = [raw_prices, raw_headlines, feature_windows]


def default_resources(config_file: str | None = None) -> dict:
    return {
        "protocol": ProtocolResource(config_file=config_file),
        "llm_router": LLMRouterResource(),
        "mlflow": MLflowResource(),
        "io_manager": LocalAssetIOManager(),
    }


defs = dg.Definitions(assets=ALL_ASSETS, resources=default_resources(config_file_from_env()))
