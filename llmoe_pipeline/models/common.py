"""The fitted-model interface shared by the experts and the baselines, and feature-table helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from llmoe_pipeline.features.windows import FEATURE_NAMES, window_columns
from llmoe_pipeline.models.nets import ProbabilityNet, predict_network, train_network

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss"]


@dataclass
class FittedModel:
    """One trained model. Picklable; `predict_proba` is deterministic.

    - estimator: the object to log to MLflow under `flavor`: "pytorch" (a `ProbabilityNet`: raw float32
      (n, 55) inputs → P(up) (n,), z-scoring inside), "lightgbm" (a `lightgbm.Booster`, binary objective:
      `predict` gives P(up)).
    - params: the full hyperparameters it was trained with (JSON-native values).
    - history: per-epoch train/val loss for networks; empty for LightGBM.
    - best_epoch: epoch (boosting round for LightGBM) whose weights were kept; 0 when not applicable.
    - train_rows / validation_rows: index labels of the feature-table rows used to fit / early-stop.
    """

    name: str
    params: dict
    seed: int
    estimator: Any
    flavor: Literal["pytorch", "lightgbm"]
    n_inputs: int
    history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HISTORY_COLUMNS))
    best_epoch: int = 0
    train_rows: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    validation_rows: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(next day up) for raw window inputs of shape (n, n_inputs), as float64 of shape (n,)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"{self.name}: expected inputs of shape (n, {self.n_inputs}), got {x.shape}")
        if self.flavor == "pytorch":
            return predict_network(self.estimator, x)
        if self.flavor == "lightgbm":
            return np.asarray(self.estimator.predict(x.astype(np.float64)), dtype=np.float64)
        raise ValueError(f"{self.name}: unknown flavor {self.flavor!r}")


def input_columns(features: pd.DataFrame) -> list[str]:
    """The window columns of a `build_features` table (55 for the default 5-day window), oldest day first."""
    window = sum(1 for c in features.columns if c.startswith(f"{FEATURE_NAMES[0]}_lag"))
    if window == 0:
        raise ValueError("the feature table has no window columns (expected build_features output)")
    cols = window_columns(window)
    missing = [c for c in cols if c not in features.columns]
    if missing:
        raise ValueError(f"the feature table lacks window columns {missing[:5]}")
    return cols


def split_mask(features: pd.DataFrame, split: str) -> np.ndarray:
    return (features["split"] == split).to_numpy()


def fit_network_model(
    name: str,
    build: Callable[[int], ProbabilityNet],
    features: pd.DataFrame,
    train_mask: np.ndarray,
    validation_mask: np.ndarray,
    params: dict,
    seed: int,
) -> FittedModel:
    """Train `build(n_inputs)` on the masked training rows, early-stopping on the masked validation rows."""
    cols = input_columns(features)
    x = features[cols].to_numpy(np.float64)
    y = features["target"].to_numpy(np.float64)
    net, history, best_epoch = train_network(
        lambda: build(len(cols)),
        x[train_mask],
        y[train_mask],
        x[validation_mask],
        y[validation_mask],
        learning_rate=params["learning_rate"],
        max_epochs=params["max_epochs"],
        patience=params["patience"],
        batch_size=params["batch_size"],
        seed=seed,
    )
    return FittedModel(
        name=name,
        params=dict(params),
        seed=seed,
        estimator=net,
        flavor="pytorch",
        n_inputs=len(cols),
        history=history,
        best_epoch=best_epoch,
        train_rows=features.index[train_mask].to_numpy(),
        validation_rows=features.index[validation_mask].to_numpy(),
    )
