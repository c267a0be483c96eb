"""Trading models: the LLMoE experts and the baselines, behind one fitted-model interface.

Pure (no Dagster, no MLflow): every fit function takes the `build_features` table and returns a
`FittedModel` whose `predict_proba` maps the raw window inputs to P(next day up). `registry` lists the
baselines; `experts` trains and routes the LLMoE experts; `search` selects hyperparameters on validation.
"""

from llmoe_pipeline.models.common import FittedModel, input_columns, split_mask
from llmoe_pipeline.models.experts import (
    LLMoESearch,
    expert_param_grid,
    grid_search_experts,
    llmoe_predict,
    router_labels_for,
    search_router_threshold,
    train_expert,
)
from llmoe_pipeline.models.model_set import ModelSet
from llmoe_pipeline.models.registry import BASELINES, ModelSpec, baseline, model_rank
from llmoe_pipeline.models.search import SearchResult, run_search, validation_score

__all__ = [
    "BASELINES",
    "FittedModel",
    "LLMoESearch",
    "ModelSet",
    "ModelSpec",
    "SearchResult",
    "baseline",
    "expert_param_grid",
    "grid_search_experts",
    "input_columns",
    "llmoe_predict",
    "model_rank",
    "router_labels_for",
    "run_search",
    "search_router_threshold",
    "split_mask",
    "train_expert",
    "validation_score",
]
