"""Trading models: the LLMoE experts and the baselines, behind one fitted-model interface.

Pure (no Dagster, no MLflow): every fit function takes the `build_features` table and returns a
picklable `FittedModel` whose `predict_proba` maps the raw window inputs to P(next day up).
"""

from llmoe_pipeline.models.baselines import (
    BASELINES,
    SEARCH_SPACES,
    baseline_candidates,
    fit_baseline,
    fit_buy_and_hold,
    fit_lightgbm,
    fit_lstm,
    fit_mlp,
    fit_moe,
    search_baseline,
)
from llmoe_pipeline.models.common import FittedModel, input_columns, split_mask
from llmoe_pipeline.models.experts import (
    REGIMES,
    expert_param_grid,
    grid_search_experts,
    search_router_threshold,
    llmoe_predict,
    router_labels_for,
    train_expert,
)
from llmoe_pipeline.models.search import SearchResult, run_search, validation_score

__all__ = [
    "BASELINES",
    "FittedModel",
    "REGIMES",
    "SEARCH_SPACES",
    "SearchResult",
    "baseline_candidates",
    "expert_param_grid",
    "fit_baseline",
    "fit_buy_and_hold",
    "fit_lightgbm",
    "fit_lstm",
    "fit_mlp",
    "fit_moe",
    "grid_search_experts",
    "search_router_threshold",
    "input_columns",
    "llmoe_predict",
    "router_labels_for",
    "run_search",
    "search_baseline",
    "split_mask",
    "train_expert",
    "validation_score",
]
