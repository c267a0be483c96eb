"""The models of the comparison: one entry per model, and everything else (assets, predictions, report order,
plots, MLflow flavour) reads this list.

Adding a baseline is one `ModelSpec` here plus its fit function (see README, "Extending").
LLMoE models (one per router variant) come from `llmoe_pipeline.catalog`; buy-and-hold has nothing to fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from llmoe_pipeline.catalog import BUY_AND_HOLD, SOFT_SUFFIX, VARIANTS
from llmoe_pipeline.config.protocol import BaselineConfig
from llmoe_pipeline.models.baselines import LIGHTGBM_MAX_ROUNDS, fit_lightgbm, fit_lstm, fit_mlp, fit_moe
from llmoe_pipeline.models.common import FittedModel
from llmoe_pipeline.models.search import SearchResult, run_search, sample_candidates

BUY_AND_HOLD_SEED = 0  # buy-and-hold has no randomness: one run, reported once


def network_settings(cfg: BaselineConfig) -> dict:
    """Fixed training settings of every network baseline."""
    return {"max_epochs": cfg.max_epochs, "patience": cfg.patience, "batch_size": cfg.batch_size}


def boosting_settings(cfg: BaselineConfig) -> dict:
    """Fixed training settings of LightGBM: an upper bound on rounds, early stopping picks the rest."""
    return {"bagging_freq": 1, "num_boost_round": LIGHTGBM_MAX_ROUNDS, "early_stopping_rounds": cfg.patience}


@dataclass(frozen=True)
class ModelSpec:
    """A baseline: how it is fitted, what its random search draws from, how it is shown and logged."""

    name: str  # asset key part (`baseline_models/<name>`), model-store key
    display_name: str  # results tables, plots, MLflow parent runs
    flavor: Literal["pytorch", "lightgbm"]  # MLflow flavour of its estimator
    fit: Callable[[pd.DataFrame, dict, int], FittedModel]  # (feature table, full params, seed) -> model
    search_space: Mapping[str, Sequence]  # choices the random search draws from (distinct combinations)
    fixed_settings: Callable[[BaselineConfig], dict]  # added to every draw (epochs, rounds, ...)
    description: str = ""

    def candidates(self, cfg: BaselineConfig) -> list[dict]:
        """cfg.n_trials random draws from the search space (seeded by cfg.search_seed), with the fixed settings."""
        draws = sample_candidates({k: list(v) for k, v in self.search_space.items()}, cfg.n_trials, cfg.search_seed)
        return [{**draw, **self.fixed_settings(cfg)} for draw in draws]

    def search(self, features: pd.DataFrame, cfg: BaselineConfig) -> SearchResult:
        """Random search: every candidate fitted with cfg.search_seed, scored on the validation rows."""
        return run_search(self.candidates(cfg), lambda params: self.fit(features, params, cfg.search_seed), features)


BASELINES: tuple[ModelSpec, ...] = (
    ModelSpec(
        "moe",
        "MoE",
        "pytorch",
        fit_moe,
        {
            "n_experts": [2],
            "hidden_sizes": [[16], [32, 16], [64, 32]],
            "dropout": [0.1, 0.3],
            "learning_rate": [1e-3, 3e-3],
        },
        network_settings,
        "Traditional mixture of experts: a softmax gate over feed-forward experts, trained end to end.",
    ),
    ModelSpec(
        "lstm",
        "LSTM",
        "pytorch",
        fit_lstm,
        {"hidden_size": [16, 32, 64], "dropout": [0.0, 0.2, 0.4], "learning_rate": [1e-3, 3e-3, 1e-2]},
        network_settings,
        "LSTM over the window's (day, 11 features) sequence, oldest day first.",
    ),
    ModelSpec(
        "mlp",
        "MLP",
        "pytorch",
        fit_mlp,
        {
            "hidden_sizes": [[32, 16], [64, 32], [64, 32, 16], [128, 64, 32]],
            "dropout": [0.1, 0.3, 0.5],
            "learning_rate": [3e-4, 1e-3, 3e-3],
        },
        network_settings,
        "One feed-forward network on all days (an LLMoE expert's architecture without routing).",
    ),
    ModelSpec(
        "lightgbm",
        "LightGBM",
        "lightgbm",
        fit_lightgbm,
        {
            "num_leaves": [7, 15, 31],
            "learning_rate": [0.01, 0.03, 0.1],
            "min_data_in_leaf": [20, 50, 100],
            "feature_fraction": [0.5, 0.8],
            "bagging_fraction": [0.7, 0.9],
            "lambda_l2": [0.0, 1.0, 10.0],
        },
        boosting_settings,
        "Gradient-boosted trees on the raw inputs, early-stopped on validation log loss.",
    ),
)


def baseline(name: str) -> ModelSpec:
    """The registry entry called `name`."""
    for spec in BASELINES:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown baseline {name!r} (expected one of {[s.name for s in BASELINES]})")


def model_rank(display_name: str) -> tuple:
    """Sort key of a display name in tables: LLMoE, then its router variants (`LLMoE[...]`) in the order of
    `catalog.VARIANTS`, the baselines in registry order, buy-and-hold, then any other model alphabetically."""
    baselines = [s.display_name for s in BASELINES]
    variants = [v.display_name for v in VARIANTS]  # LLMoE first
    top_1 = display_name.removesuffix(SOFT_SUFFIX)
    if top_1 in variants:
        return (0, 2 * variants.index(top_1) + (top_1 != display_name), "")  # soft routing after its top-1
    if display_name in baselines:
        return (1, baselines.index(display_name), "")
    if display_name == BUY_AND_HOLD:
        return (2, 0, "")
    return (3, 0, display_name)
