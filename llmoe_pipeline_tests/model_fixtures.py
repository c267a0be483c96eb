"""Small real data for the model tests: AAPL 2010-2013 for training/validation, H1 2014 as test."""

import datetime as dt

import numpy as np
import pandas as pd

from llmoe_pipeline import SplitConfig, build_features

SMALL_SPLIT = SplitConfig(
    train_start=dt.date(2010, 1, 1),
    train_end=dt.date(2013, 12, 31),
    test_start=dt.date(2014, 1, 2),
    test_end=dt.date(2014, 6, 30),
)


def small_features(aapl_prices: pd.DataFrame) -> pd.DataFrame:
    """~800 train, ~200 validation, ~120 test rows (other rows are split 'none')."""
    prices = aapl_prices[aapl_prices["date"] <= pd.Timestamp("2014-07-31")]
    return build_features(prices, SMALL_SPLIT)


def rule_labels(features: pd.DataFrame) -> pd.DataFrame:
    """Router labels without an LLM: Optimistic when day t's adjusted close rose."""
    label = np.where(features["n_adj_close_lag0"] > 0, "Optimistic", "Pessimistic")
    return features[["ticker", "date"]].assign(label=label)


# Every model the default config evaluates, spelled out (not read from the registry) so that a registry change shows.
ALL_MODELS = {
    "LLMoE",
    "LLMoE-soft",
    "LLMoE[momentum]",
    "LLMoE[random]",
    "LLMoE[single]",
    "LLMoE[oracle]",
    "LLMoE[llm_probe]",
    "LLMoE[llm_probe]-soft",
    "LLMoE[features_probe]",
    "MoE",
    "LSTM",
    "MLP",
    "LightGBM",
    "Buy&Hold",
}


def small_training(hidden: list[int], epochs: int, patience: int, thresholds: list[float] | None = None) -> dict:
    """Config sections for a quick but real protocol: one expert grid point, one baseline trial, two seeds."""
    experts = {
        "hidden_sizes_grid": [hidden],
        "dropout_grid": [0.1],
        "learning_rate_grid": [0.003],
        "max_epochs": epochs,
        "patience": patience,
    }
    if thresholds is not None:
        experts["threshold_quantile_grid"] = thresholds
    return {
        "experts": experts,
        "baselines": {"n_trials": 1, "max_epochs": epochs, "patience": patience},
        "seeds": [0, 1],
    }
