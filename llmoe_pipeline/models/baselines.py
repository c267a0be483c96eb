"""Baselines on the same 55 inputs, split and seeds as the LLMoE experts, but trained on all days.

LightGBM (GBDT), MLP (one feed-forward net), LSTM over the (window, 11) day sequence, a traditional
2-expert MoE with a learned softmax gate, and buy-and-hold (always up). Hyperparameters: random search
over `SEARCH_SPACES` (`search_baseline`), then one fit per seed with the winner (`fit_baseline`).
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from llmoe_pipeline.config import BaselineConfig
from llmoe_pipeline.features import FEATURE_NAMES
from llmoe_pipeline.models.common import FittedModel, fit_network_model, input_columns, split_mask
from llmoe_pipeline.models.nets import FeedForwardNet, GatedMoENet, LSTMNet
from llmoe_pipeline.models.search import SearchResult, run_search, sample_candidates

BASELINES = ("lightgbm", "mlp", "lstm", "moe", "buy_and_hold")
NETWORK_BASELINES = ("mlp", "lstm", "moe")

# Choices the random search draws from (distinct combinations, uniformly). LightGBM names are its own.
SEARCH_SPACES: dict[str, dict[str, list]] = {
    "lightgbm": {"num_leaves": [7, 15, 31], "learning_rate": [0.01, 0.03, 0.1], "min_data_in_leaf": [20, 50, 100],
                 "feature_fraction": [0.5, 0.8], "bagging_fraction": [0.7, 0.9], "lambda_l2": [0.0, 1.0, 10.0]},
    "mlp": {"hidden_sizes": [[32, 16], [64, 32], [64, 32, 16], [128, 64, 32]], "dropout": [0.1, 0.3, 0.5],
            "learning_rate": [3e-4, 1e-3, 3e-3]},
    "lstm": {"hidden_size": [16, 32, 64], "dropout": [0.0, 0.2, 0.4], "learning_rate": [1e-3, 3e-3, 1e-2]},
    "moe": {"n_experts": [2], "hidden_sizes": [[16], [32, 16], [64, 32]], "dropout": [0.1, 0.3],
            "learning_rate": [1e-3, 3e-3]},
}
LIGHTGBM_MAX_ROUNDS = 1000  # an upper bound: early stopping on validation log loss picks the rounds


def _train_validation_masks(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return split_mask(features, "train"), split_mask(features, "validation")


def fit_lightgbm(features: pd.DataFrame, params: dict, seed: int) -> FittedModel:
    """GBDT on the raw inputs (trees need no scaling), early-stopped on validation log loss; the kept
    Booster holds only the best rounds. Deterministic: deterministic=True, row-wise, one thread, seeded
    bagging and feature sampling (so different seeds give different trees)."""
    cols = input_columns(features)
    train, val = _train_validation_masks(features)
    x, y = features[cols].to_numpy(np.float64), features["target"].to_numpy(np.float64)
    tree_params = {k: v for k, v in params.items() if k not in ("num_boost_round", "early_stopping_rounds")}
    booster_params = {**tree_params, "objective": "binary", "metric": "binary_logloss", "seed": seed,
                      "deterministic": True, "force_row_wise": True, "num_threads": 1, "verbosity": -1}
    dtrain = lgb.Dataset(x[train], y[train])
    dval = lgb.Dataset(x[val], y[val], reference=dtrain)
    booster = lgb.train(booster_params, dtrain, num_boost_round=params["num_boost_round"], valid_sets=[dval],
                        callbacks=[lgb.early_stopping(params["early_stopping_rounds"], verbose=False)])
    best = booster.best_iteration or booster.current_iteration()
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return FittedModel(name="lightgbm", params=dict(params), seed=seed, estimator=booster, flavor="lightgbm",
                       n_inputs=len(cols), best_epoch=best, train_rows=features.index[train].to_numpy(),
                       validation_rows=features.index[val].to_numpy())


def fit_mlp(features: pd.DataFrame, params: dict, seed: int) -> FittedModel:
    """One feed-forward net on all days (the LLMoE expert's architecture without routing)."""
    return fit_network_model(
        "mlp", lambda n: FeedForwardNet(n, params["hidden_sizes"], params["dropout"]),
        features, *_train_validation_masks(features), params, seed)


def fit_lstm(features: pd.DataFrame, params: dict, seed: int) -> FittedModel:
    """LSTM over the window reshaped to (n, window, 11), oldest day first."""
    return fit_network_model(
        "lstm", lambda n: LSTMNet(n, len(FEATURE_NAMES), params["hidden_size"], params["dropout"]),
        features, *_train_validation_masks(features), params, seed)


def fit_moe(features: pd.DataFrame, params: dict, seed: int) -> FittedModel:
    """Traditional MoE: softmax gate (linear on the inputs) over feed-forward experts, trained end to end."""
    return fit_network_model(
        "moe", lambda n: GatedMoENet(n, params["n_experts"], params["hidden_sizes"], params["dropout"]),
        features, *_train_validation_masks(features), params, seed)


def fit_buy_and_hold(features: pd.DataFrame, params: dict | None = None, seed: int | None = None) -> FittedModel:
    """Always predicts up (P = 1): nothing is fitted, so params and seed are ignored."""
    return FittedModel(name="buy_and_hold", params={}, seed=None, estimator=None, flavor=None,
                       n_inputs=len(input_columns(features)))


_FITTERS = {"lightgbm": fit_lightgbm, "mlp": fit_mlp, "lstm": fit_lstm, "moe": fit_moe,
            "buy_and_hold": fit_buy_and_hold}


def fit_baseline(name: str, features: pd.DataFrame, params: dict, seed: int | None) -> FittedModel:
    """Fit baseline `name` (one of BASELINES) with full params (as `search_baseline` returns them)."""
    if name not in _FITTERS:
        raise ValueError(f"unknown baseline {name!r} (expected one of {BASELINES})")
    return _FITTERS[name](features, params, seed)


def baseline_candidates(name: str, cfg: BaselineConfig) -> list[dict]:
    """cfg.n_trials random draws from SEARCH_SPACES[name] (seeded by cfg.search_seed), with the fixed
    training settings added: epochs/patience/batch size for networks, rounds/early stopping for LightGBM."""
    if name == "lightgbm":
        fixed = {"bagging_freq": 1, "num_boost_round": LIGHTGBM_MAX_ROUNDS, "early_stopping_rounds": cfg.patience}
    elif name in NETWORK_BASELINES:
        fixed = {"max_epochs": cfg.max_epochs, "patience": cfg.patience, "batch_size": cfg.batch_size}
    else:
        raise ValueError(f"baseline {name!r} has no hyperparameters to search")
    return [{**draw, **fixed} for draw in sample_candidates(SEARCH_SPACES[name], cfg.n_trials, cfg.search_seed)]


def search_baseline(name: str, features: pd.DataFrame, cfg: BaselineConfig) -> SearchResult:
    """Random search: every candidate trained with seed cfg.search_seed and scored on the validation rows
    (accuracy, ties by log loss). Buy-and-hold has nothing to search: ({}, empty table)."""
    if name == "buy_and_hold":
        return SearchResult({}, pd.DataFrame(columns=["trial", "val_accuracy", "val_log_loss"]))
    return run_search(baseline_candidates(name, cfg),
                      lambda params: fit_baseline(name, features, params, cfg.search_seed), features)
