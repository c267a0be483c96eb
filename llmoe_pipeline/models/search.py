"""Hyperparameter selection on the validation rows only (the test period never influences it).

Score, for the expert grid and every baseline search alike: validation accuracy (P(up) > 0.5 predicts
up), higher is better; ties broken by lower validation log loss, then by the earlier trial.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from llmoe_pipeline.core.parallel import map_fits
from llmoe_pipeline.models.common import FittedModel, input_columns

LOG_LOSS_EPS = 1e-7


class SearchResult(NamedTuple):
    best_params: dict  # the winning trial's params (for the experts: regime → params)
    table: pd.DataFrame  # one row per trial: trial, searched params, val_accuracy, val_log_loss, ...
    best_model: Any = None  # the winning trial's fitted model (for the experts: regime → model), so no refit
    predictions: Any = None  # with predict_rows: P(up) of every trial on those rows (rows × trials; experts: by regime)


def validation_score(y_true: np.ndarray, p_up: np.ndarray) -> dict[str, float]:
    """Accuracy (up predicted when P(up) > 0.5) and mean log loss (probabilities clipped to [eps, 1-eps])."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(p_up, dtype=np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    if len(y) == 0 or len(y) != len(p):
        raise ValueError(f"validation_score: {len(y)} targets and {len(p)} predictions")
    accuracy = float(np.mean((p > 0.5) == (y == 1)))
    log_loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return {"val_accuracy": accuracy, "val_log_loss": log_loss}


def best_trial(table: pd.DataFrame) -> int:
    """Position (0-based) of the winning row: highest accuracy, then lowest log loss, then earliest trial."""
    order = table.assign(_pos=np.arange(len(table))).sort_values(
        ["val_accuracy", "val_log_loss", "trial"], ascending=[False, True, True], kind="mergesort"
    )
    return int(order["_pos"].iloc[0])


def grid(space: dict[str, list]) -> list[dict]:
    """Every combination of the choices, in a fixed order (keys sorted)."""
    keys = sorted(space)
    return [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]


def sample_candidates(space: dict[str, list], n_trials: int, search_seed: int) -> list[dict]:
    """`n_trials` distinct combinations drawn uniformly from the grid of choices (all of it if smaller)."""
    combos = grid(space)
    rng = np.random.default_rng(search_seed)
    picks = rng.choice(len(combos), size=min(n_trials, len(combos)), replace=False)
    return [combos[i] for i in picks]


def _cell(value):
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


def run_search(
    candidates: list[dict],
    fit: Callable[[dict], FittedModel],
    features: pd.DataFrame,
    predict_rows: pd.DataFrame | None = None,
) -> SearchResult:
    """Fit every candidate, score it on the validation rows it early-stopped on (its `validation_rows`
    in `features`), return the best params, the trial table and the winning model; with `predict_rows`, also
    every trial's P(up) on them (what the selection-bias statistics need of the configurations not chosen).

    Table columns: trial, one column per param (lists as JSON text), val_accuracy, val_log_loss,
    best_epoch, n_train, n_validation, params (the full params as JSON).
    """
    if not candidates:
        raise ValueError("run_search: no candidates")
    cols = input_columns(features)
    rows, models = [], map_fits(fit, candidates)
    for trial, (params, model) in enumerate(zip(candidates, models)):
        val = features.loc[model.validation_rows]
        rows.append(
            {
                "trial": trial,
                **{k: _cell(v) for k, v in params.items()},
                **validation_score(val["target"].to_numpy(), model.predict_proba(val[cols].to_numpy())),
                "best_epoch": model.best_epoch,
                "n_train": len(model.train_rows),
                "n_validation": len(model.validation_rows),
                "params": json.dumps(params, sort_keys=True),
            }
        )
    table = pd.DataFrame(rows)
    best = best_trial(table)
    predictions = None
    if predict_rows is not None:
        x = predict_rows[cols].to_numpy()
        predictions = pd.DataFrame({t: m.predict_proba(x) for t, m in enumerate(models)}, index=predict_rows.index)
    return SearchResult(dict(candidates[best]), table, models[best], predictions)
