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
