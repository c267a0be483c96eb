"""From fitted models to trading results: predictions on validation/test days, backtests, metrics.

Pure: takes the feature table, the router labels and the fitted models; returns long DataFrames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmoe_pipeline.catalog import BUY_AND_HOLD, TRADING_DAYS_PER_YEAR
from llmoe_pipeline.models import FittedModel, input_columns, llmoe_predict, router_labels_for
from llmoe_pipeline.models.experts import llmoe_soft_predict
from llmoe_pipeline.models.registry import BUY_AND_HOLD_SEED
from llmoe_pipeline.router.regimes import soft_weights
from llmoe_pipeline.trading.backtest import backtest, buy_and_hold
from llmoe_pipeline.trading.metrics import compute_metrics

EVAL_SPLITS = ("validation", "test")


@dataclass(frozen=True)
class RoutedExperts:
    """One LLMoE model: its experts and the regime label of every day it predicts."""

    experts: Mapping[str, Mapping[int, FittedModel]]  # regime -> seed -> expert
    labels: pd.DataFrame  # ticker, date, label (one of the experts' regimes) [, weight] for every day
    soft: bool = False  # both experts on every day, weighted by `labels.weight` (the Optimistic expert's share)

    def soft_weights_of(self, rows: pd.DataFrame) -> np.ndarray:
        """The Optimistic expert's weight on each row (soft routing), matched on (ticker, date)."""
        keys = pd.MultiIndex.from_frame(rows[["ticker", "date"]])
        weights = self.labels.assign(date=pd.to_datetime(self.labels["date"])).set_index(["ticker", "date"])["weight"]
        return weights.reindex(keys).to_numpy()

    def predict(self, rows: pd.DataFrame, seed: int, routing: np.ndarray) -> np.ndarray:
        """P(up) of the seed's experts on `rows`, routed by `routing`: each row's regime label (top-1) or its
        Optimistic weight (soft), matched to the rows once for all seeds."""
        experts = {regime: by_seed[seed] for regime, by_seed in self.experts.items()}
        return llmoe_soft_predict(experts, rows, routing) if self.soft else llmoe_predict(experts, rows, routing)


def soft_routed(routed: RoutedExperts, quantile: float) -> RoutedExperts:
    """The same experts with soft routing: each day weighted by the rank of its routing score among the training
    windows' (`regimes.soft_weights`; `quantile` is the top-1 threshold's, which weighs one half)."""
    return RoutedExperts(routed.experts, routed.labels.assign(weight=soft_weights(routed.labels, quantile)), soft=True)


def predict_all(
    features: pd.DataFrame, llmoe: Mapping[str, RoutedExperts], baselines: Mapping[str, Mapping[int, FittedModel]]
) -> pd.DataFrame:
    """P(up) of every model × seed on every validation and test day, plus buy-and-hold.

    llmoe and baselines are keyed by display name. Returns the long table
    ticker, date, split, model, seed, p_up, next_return, regime (the routed regime of LLMoE rows, else None).
    """
    rows = features[features["split"].isin(EVAL_SPLITS)].reset_index(drop=True)
    x = rows[input_columns(rows)].to_numpy()
    frames = []

    def add(model: str, seed: int, p_up: np.ndarray, regime=None) -> None:
        frames.append(
            rows[["ticker", "date", "split", "next_return"]].assign(model=model, seed=seed, p_up=p_up, regime=regime)
        )

    for name, routed in llmoe.items():
        seeds = sorted(set.intersection(*(set(by_seed) for by_seed in routed.experts.values())))
        regime = router_labels_for(rows, routed.labels).to_numpy()
        routing = routed.soft_weights_of(rows) if routed.soft else regime
        for seed in seeds:
            add(name, seed, routed.predict(rows, seed, routing), regime)
    for name, by_seed in baselines.items():
        for seed, model in sorted(by_seed.items()):
            add(name, seed, model.predict_proba(x))
    add(BUY_AND_HOLD, BUY_AND_HOLD_SEED, np.ones(len(rows)))
    return pd.concat(frames, ignore_index=True)


def evaluate(
    predictions: pd.DataFrame, costs_bps: list[float], periods: int = TRADING_DAYS_PER_YEAR, risk_free: float = 0.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Backtest every (ticker, model, seed, split) at every cost; returns (metrics, daily).

    metrics: ticker, model, seed, split, cost_bps + the seven metrics.
    daily: ticker, model, seed, split, cost_bps, date, position, strategy_return, equity.
    """
    metric_rows, daily = [], []
    for (ticker, model, seed, split), g in predictions.groupby(["ticker", "model", "seed", "split"], sort=False):
        g = g.sort_values("date")
        p_up = pd.Series(g["p_up"].to_numpy(), index=pd.DatetimeIndex(g["date"]))
        next_return = pd.Series(g["next_return"].to_numpy(), index=p_up.index)
        for cost in costs_bps:
            bt = buy_and_hold(next_return) if model == BUY_AND_HOLD else backtest(p_up, next_return, cost_bps=cost)
            keys = {"ticker": ticker, "model": model, "seed": int(seed), "split": split, "cost_bps": float(cost)}
            metric_rows.append({**keys, **compute_metrics(bt["strategy_return"], periods=periods, risk_free=risk_free)})
            daily.append(bt[["position", "strategy_return", "equity"]].rename_axis("date").reset_index().assign(**keys))
    return pd.DataFrame(metric_rows), pd.concat(daily, ignore_index=True)


def equity_curves(daily: pd.DataFrame, split: str = "test", cost_bps: float = 0.0) -> dict[str, pd.DataFrame]:
    """model → DataFrame (index date, one column per seed) of equity, for plotting."""
    sel = daily[(daily["split"] == split) & (daily["cost_bps"] == cost_bps)]
    return {m: g.pivot(index="date", columns="seed", values="equity") for m, g in sel.groupby("model", sort=False)}
