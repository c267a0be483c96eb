"""The LLMoE experts: one feed-forward network per router regime (Liu & Lo, arXiv 2501.09636).

Each expert sees only the days the LLM router labelled with its regime: it trains on that regime's
training rows and early-stops / is selected on that regime's validation rows. At prediction time each
day goes to the expert of its router label. The LLMoE grid search also chooses the router's threshold
(`search_router_threshold`): a quantile of the training windows' p_optimistic, scored on validation.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from llmoe_pipeline.config.protocol import ExpertConfig
from llmoe_pipeline.models.common import FittedModel, fit_network_model, input_columns, split_mask
from llmoe_pipeline.models.nets import FeedForwardNet
from llmoe_pipeline.models.search import SearchResult, best_trial, grid, run_search, validation_score
from llmoe_pipeline.router.regimes import (
    MIN_ROWS_PER_REGIME,
    REGIMES,
    apply_threshold,
    fit_threshold,
    regime_counts,
    too_few_windows,
)


@dataclass(frozen=True)
class LLMoESearch:
    """The LLMoE grid's choice: the router threshold and each regime's network hyperparameters."""

    threshold_quantile: float  # of the training windows' routing score
    threshold: float  # the score above which a window is routed to REGIMES[0]
    params: Mapping[str, dict[str, Any]]  # regime -> network hyperparameters
    table: pd.DataFrame  # one row per threshold quantile: regime counts, validation score, skipped
    # Every configuration of the grid (threshold × one network per regime): its position (0/1) on each test day,
    # columns date and one per configuration; what the selection-bias statistics need (significance.selection).
    configurations: pd.DataFrame = field(default_factory=pd.DataFrame)

    def expert_params(self, regime: str) -> dict[str, Any]:
        """The regime's hyperparameters, with the threshold they were chosen under (recorded with the models)."""
        return {**self.params[regime], "threshold_quantile": self.threshold_quantile, "threshold": self.threshold}


def router_labels_for(features: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    """The router label of every feature row (index = features.index; NaN where the router gave none).

    `labels`: columns ticker, date, label ∈ REGIMES, at most one row per (ticker, date).
    """
    missing = {"ticker", "date", "label"} - set(labels.columns)
    if missing:
        raise ValueError(f"router labels lack columns {sorted(missing)}")
    bad = sorted(set(labels["label"].dropna()) - set(REGIMES))
    if bad:
        raise ValueError(f"router labels must be one of {REGIMES}, got {bad[:5]}")
    if labels.duplicated(["ticker", "date"]).any():
        raise ValueError("router labels have more than one label for some (ticker, date)")
    keys = pd.MultiIndex.from_frame(features[["ticker", "date"]])
    by_key = labels.assign(date=pd.to_datetime(labels["date"])).set_index(["ticker", "date"])["label"]
    return pd.Series(by_key.reindex(keys).to_numpy(), index=features.index, name="label")


def _regime_masks(features: pd.DataFrame, labels: pd.DataFrame, regime: str) -> tuple[np.ndarray, np.ndarray]:
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r} (expected one of {REGIMES})")
    routed = router_labels_for(features, labels)
    used = split_mask(features, "train") | split_mask(features, "validation")
    unlabelled = used & routed.isna().to_numpy()
    if unlabelled.any():
        raise ValueError(f"{int(unlabelled.sum())} training/validation rows have no router label")
    in_regime = (routed == regime).to_numpy()
    return split_mask(features, "train") & in_regime, split_mask(features, "validation") & in_regime


def expert_name(regime: str) -> str:
    return f"llmoe_expert_{regime.lower()}"


def train_expert(features: pd.DataFrame, labels: pd.DataFrame, regime: str, params: dict, seed: int) -> FittedModel:
    """Train the `regime` expert. params: hidden_sizes [h1, h2, h3], dropout, learning_rate,
    max_epochs, patience, batch_size. The model's train_rows / validation_rows record the rows used."""
    train_mask, validation_mask = _regime_masks(features, labels, regime)
    return fit_network_model(
        expert_name(regime),
        lambda n_inputs: FeedForwardNet(n_inputs, params["hidden_sizes"], params["dropout"]),
        features,
        train_mask,
        validation_mask,
        params,
        seed,
    )


def expert_param_grid(cfg: ExpertConfig) -> list[dict]:
    """hidden sizes × dropout × learning rate, each with the fixed training settings (JSON-native values)."""
    space: dict[str, list] = {
        "hidden_sizes": [list(h) for h in cfg.hidden_sizes_grid],
        "dropout": list(cfg.dropout_grid),
        "learning_rate": list(cfg.learning_rate_grid),
    }
    fixed = {"max_epochs": cfg.max_epochs, "patience": cfg.patience, "batch_size": cfg.batch_size}
    return [{**combo, **fixed} for combo in grid(space)]


def grid_search_experts(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    cfg: ExpertConfig,
    seed: int,
    predict_rows: pd.DataFrame | None = None,
) -> SearchResult:
    """Grid search per regime, each config trained with `seed` and scored on that regime's validation rows
    (validation accuracy, ties by log loss; see `search`). Returns best_params = {regime: params}, the
    table of all trials with a `regime` column, best_model = {regime: the winning expert} and, with
    `predict_rows`, predictions = {regime: every trial's P(up) on those rows}."""
    best, models, tables, predictions = {}, {}, [], {}
    for regime in REGIMES:

        def fit(params: dict, regime: str = regime) -> FittedModel:
            return train_expert(features, labels, regime, params, seed)

        result = run_search(expert_param_grid(cfg), fit, features, predict_rows)
        best[regime], models[regime] = result.best_params, result.best_model
        predictions[regime] = result.predictions
        tables.append(result.table.assign(regime=regime))
    table = pd.concat(tables, ignore_index=True)
    columns = ["regime"] + [c for c in table.columns if c != "regime"]
    return SearchResult(best, table[columns], models, predictions if predict_rows is not None else None)


def configuration_positions(
    q: float, predictions: Mapping[str, pd.DataFrame], routed: pd.Series
) -> dict[str, np.ndarray]:
    """Positions (1 = long) of every grid configuration under threshold quantile q: each day's P(up) from the
    network chosen for its regime, one network per regime. Named "q=<q> <regime>#<trial> ..." in REGIMES order."""
    trials = [list(predictions[r].columns) for r in REGIMES]
    out = {}
    for combo in itertools.product(*trials):
        p_up = np.full(len(routed), np.nan)
        for regime, trial in zip(REGIMES, combo):
            rows = (routed == regime).to_numpy()
            p_up[rows] = predictions[regime][trial].to_numpy()[rows]
        name = f"q={q:g} " + " ".join(f"{r}#{t}" for r, t in zip(REGIMES, combo))
        out[name] = (p_up > 0.5).astype(np.int8)
    return out


def search_router_threshold(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    cfg: ExpertConfig,
    seed: int,
    score_column: str = "p_optimistic",
    quantiles: Sequence[float] | None = None,
    fixed_threshold: float | None = None,
) -> LLMoESearch:
    """The outer dimension of the LLMoE grid: the router's decision threshold.

    For each quantile q (`quantiles`, default `cfg.threshold_quantile_grid`), the threshold is the q-quantile of
    the *training* windows' `score_column` (`fit_threshold`); every window is relabelled with it, each regime's
    network is grid-searched on its own validation rows (`grid_search_experts`), and LLMoE as a whole is scored on
    all validation rows, each through the expert of its label, with the score every search uses (accuracy, then
    log loss). Quantiles that leave a regime short of MIN_ROWS_PER_REGIME are skipped. `fixed_threshold` replaces
    the quantiles by one given threshold (a rule such as the oracle's "up tomorrow").
    """
    validation = features[features["split"] == "validation"]
    test = features[features["split"] == "test"]
    rows: list[dict] = []
    choices: list[LLMoESearch] = []
    positions: dict[str, np.ndarray] = {}
    points: list[tuple[float, float | None]] = [(q, None) for q in (quantiles or cfg.threshold_quantile_grid)]
    if fixed_threshold is not None:
        points = [(np.nan, float(fixed_threshold))]
    for q, given in points:
        threshold = fit_threshold(labels, q, score_column) if given is None else given
        relabelled = apply_threshold(labels, threshold, score_column)
        counts = regime_counts(relabelled)
        row = {
            "trial": len(rows),
            "threshold_quantile": q,
            "threshold": threshold,
            **{
                f"n_{split}_{r.lower()}": counts.get(split, {}).get(r, 0)
                for split in MIN_ROWS_PER_REGIME
                for r in REGIMES
            },
        }
        if too_few_windows(counts):
            rows.append({**row, "val_accuracy": np.nan, "val_log_loss": np.nan, "skipped": True})
            continue
        searched = grid_search_experts(features, relabelled, cfg, seed, predict_rows=test)
        if len(test):
            positions |= configuration_positions(q, searched.predictions, router_labels_for(test, relabelled))
        score = validation_score(
            validation["target"].to_numpy(), llmoe_predict(searched.best_model, validation, relabelled)
        )
        rows.append({**row, **score, "skipped": False})
        choices.append(LLMoESearch(q, threshold, searched.best_params, pd.DataFrame()))
    table = pd.DataFrame(rows)
    scored = table[~table["skipped"]].reset_index(drop=True)
    if scored.empty:
        raise ValueError(
            f"every router threshold quantile in {cfg.threshold_quantile_grid} leaves a regime with "
            f"fewer windows than {MIN_ROWS_PER_REGIME} (per split)"
        )
    best = choices[best_trial(scored)]
    configurations = pd.DataFrame({"date": pd.to_datetime(test["date"]).to_numpy(), **positions})
    return LLMoESearch(best.threshold_quantile, best.threshold, best.params, table, configurations)


def llmoe_soft_predict(
    experts_by_regime: dict[str, FittedModel], features_rows: pd.DataFrame, weights: np.ndarray
) -> np.ndarray:
    """Soft routing: every row's P(up) from both experts, w × Optimistic's + (1 - w) × Pessimistic's."""
    weights = np.asarray(weights, dtype=float)
    if len(weights) != len(features_rows) or np.isnan(weights).any():
        raise ValueError(f"soft routing needs one weight per row: {len(weights)} for {len(features_rows)} rows")
    missing = sorted(set(REGIMES) - set(experts_by_regime))
    if missing:
        raise ValueError(f"soft routing needs both experts; missing {missing}")
    x = features_rows[input_columns(features_rows)].to_numpy()
    optimistic, pessimistic = (experts_by_regime[r].predict_proba(x) for r in REGIMES)
    return weights * optimistic + (1.0 - weights) * pessimistic


def llmoe_predict(
    experts_by_regime: dict[str, FittedModel], features_rows: pd.DataFrame, labels_rows: pd.DataFrame | Sequence[str]
) -> np.ndarray:
    """P(up) for every row of `features_rows`, each from the expert of its router label.

    labels_rows: a router-label table (ticker, date, label), matched on (ticker, date), or one label per
    row in row order. Every row needs a label, and every label used needs an expert.
    """
    if isinstance(labels_rows, pd.DataFrame):
        routed = router_labels_for(features_rows, labels_rows).to_numpy()
    else:
        routed = np.asarray(labels_rows, dtype=object)
        if len(routed) != len(features_rows):
            raise ValueError(f"{len(routed)} labels for {len(features_rows)} rows")
    if pd.isna(routed).any():
        raise ValueError(f"{int(pd.isna(routed).sum())} rows to predict have no router label")
    unknown = sorted(set(routed) - set(experts_by_regime))
    if unknown:
        raise ValueError(f"rows routed to {unknown}, which have no expert (experts: {sorted(experts_by_regime)})")
    x = features_rows[input_columns(features_rows)].to_numpy()
    probs = np.empty(len(x), dtype=np.float64)
    for regime, expert in experts_by_regime.items():
        rows = routed == regime
        if rows.any():
            probs[rows] = expert.predict_proba(x[rows])
    return probs
