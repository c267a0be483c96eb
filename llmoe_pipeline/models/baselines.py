"""Fit functions of the baselines: the same 55 inputs, split and seeds as the LLMoE experts, trained on all days.

Each takes (feature table, full params, seed) and returns a `FittedModel`; their search spaces, names and
MLflow flavours are registry entries (`models/registry.py`).
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from llmoe_pipeline.features.windows import FEATURE_NAMES
from llmoe_pipeline.models.common import FittedModel, fit_network_model, input_columns, split_mask
from llmoe_pipeline.models.nets import FeedForwardNet, GatedMoENet, LSTMNet

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
    booster_params = {
        **tree_params,
        "objective": "binary",
        "metric": "binary_logloss",
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    dtrain = lgb.Dataset(x[train], y[train])
    dval = lgb.Dataset(x[val], y[val], reference=dtrain)
    booster = lgb.train(
        booster_params,
        dtrain,
        num_boost_round=params["num_boost_round"],
        valid_sets=[dval],
        callbacks=[lgb.early_stopping(params["early_stopping_rounds"], verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return FittedModel(
        name="lightgbm",
        params=dict(params),
        seed=seed,
        estimator=booster,
        flavor="lightgbm",
        n_inputs=len(cols),
        best_epoch=best,
        train_rows=features.index[train].to_numpy(),
        validation_rows=features.index[val].to_numpy(),
    )


def fit_mlp(features: pd.DataFrame, params: dict, seed: int) -> FittedModel:
    """One feed-forward net on all days (the LLMoE expert's architecture without routing)."""
    return fit_network_model(
        "mlp",
        lambda n: FeedForwardNet(n, params["hidden_sizes"], params["dropout"]),
        features,
        *_train_validation_masks(features),
        params,
        seed,
    )


def fit_lstm(features: pd.DataFrame, params: dict, seed: int) -> FittedModel:
    """LSTM over the window reshaped to (n, window, 11), oldest day first."""
    return fit_network_model(
        "lstm",
        lambda n: LSTMNet(n, len(FEATURE_NAMES), params["hidden_size"], params["dropout"]),
        features,
        *_train_validation_masks(features),
        params,
        seed,
    )


def fit_moe(features: pd.DataFrame, params: dict, seed: int) -> FittedModel:
    """Traditional MoE: softmax gate (linear on the inputs) over feed-forward experts, trained end to end."""
    return fit_network_model(
        "moe",
        lambda n: GatedMoENet(n, params["n_experts"], params["hidden_sizes"], params["dropout"]),
        features,
        *_train_validation_masks(features),
        params,
        seed,
    )
