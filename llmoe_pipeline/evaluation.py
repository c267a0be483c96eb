"""From fitted models to trading results: predictions on validation/test days, backtests, metrics.

Pure: takes the feature table, the router labels and the fitted models; returns long DataFrames.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from llmoe_pipeline.backtest import backtest, buy_and_hold
from llmoe_pipeline.metrics import compute_metrics
from llmoe_pipeline.models import FittedModel, input_columns, llmoe_predict

DISPLAY_NAMES = {"llmoe": "LLMoE", "moe": "MoE", "lstm": "LSTM", "mlp": "MLP", "lightgbm": "LightGBM",
                 "buy_and_hold": "Buy&Hold"}
EVAL_SPLITS = ("validation", "test")
BUY_AND_HOLD_SEED = 0  # buy-and-hold has no randomness: one run, reported once


def predict_all(features: pd.DataFrame, labels: pd.DataFrame, experts: Mapping[str, Mapping[int, FittedModel]],
                baselines: Mapping[str, Mapping[int, FittedModel]]) -> pd.DataFrame:
    """P(up) of every model × seed on every validation and test day.

    experts: regime → {seed: expert}; baselines: name → {seed: model}. Returns the long table
    ticker, date, split, model, seed, p_up, next_return (model = display name).
    """
    rows = features[features["split"].isin(EVAL_SPLITS)].reset_index(drop=True)
    x = rows[input_columns(rows)].to_numpy()
    frames = []

    def add(model: str, seed: int, p_up: np.ndarray) -> None:
        frames.append(rows[["ticker", "date", "split", "next_return"]].assign(model=model, seed=seed, p_up=p_up))

    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in experts.values())))
    for seed in seeds:
        add("LLMoE", seed, llmoe_predict({r: experts[r][seed] for r in experts}, rows, labels))
    for name, by_seed in baselines.items():
        for seed, model in sorted(by_seed.items()):
            add(DISPLAY_NAMES.get(name, name), seed, model.predict_proba(x))
    add("Buy&Hold", BUY_AND_HOLD_SEED, np.ones(len(rows)))
    return pd.concat(frames, ignore_index=True)


def evaluate(predictions: pd.DataFrame, costs_bps: list[float], periods: int = 252,
             risk_free: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
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
            bt = buy_and_hold(next_return) if model == "Buy&Hold" else backtest(p_up, next_return, cost_bps=cost)
            keys = {"ticker": ticker, "model": model, "seed": int(seed), "split": split, "cost_bps": float(cost)}
            metric_rows.append({**keys, **compute_metrics(bt["strategy_return"], periods=periods, risk_free=risk_free)})
            daily.append(bt[["position", "strategy_return", "equity"]].rename_axis("date").reset_index().assign(**keys))
    return pd.DataFrame(metric_rows), pd.concat(daily, ignore_index=True)


def equity_curves(daily: pd.DataFrame, split: str = "test", cost_bps: float = 0.0) -> dict[str, pd.DataFrame]:
    """model → DataFrame (index date, one column per seed) of equity, for plotting."""
    sel = daily[(daily["split"] == split) & (daily["cost_bps"] == cost_bps)]
    return {m: g.pivot(index="date", columns="seed", values="equity") for m, g in sel.groupby("model", sort=False)}
