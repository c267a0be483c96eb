"""Features against values computed by hand from the raw rows, and the no-look-ahead property."""

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline import FEATURE_NAMES, SplitConfig, build_features, window_columns
from llmoe_pipeline.features.windows import assign_split


def _raw(prices, date):
    g = prices[prices["ticker"] == "AAPL"].reset_index(drop=True)
    i = int(g.index[g["date"] == pd.Timestamp(date)][0])
    return g, i


@pytest.mark.parametrize("date", ["2010-03-15", "2013-07-01", "2015-06-30"])
def test_features_match_hand_computation(aapl_prices, date):
    feats = build_features(aapl_prices)
    row = feats[feats["date"] == pd.Timestamp(date)].iloc[0]
    g, i = _raw(aapl_prices, date)
    for lag in range(5):
        d = g.iloc[i - lag]
        prev = g.iloc[i - lag - 1]
        assert row[f"c_open_lag{lag}"] == pytest.approx(d["open"] / d["close"] - 1, abs=1e-12)
        assert row[f"c_high_lag{lag}"] == pytest.approx(d["high"] / d["close"] - 1, abs=1e-12)
        assert row[f"c_low_lag{lag}"] == pytest.approx(d["low"] / d["close"] - 1, abs=1e-12)
        assert row[f"n_close_lag{lag}"] == pytest.approx(d["close"] / prev["close"] - 1, abs=1e-12)
        assert row[f"n_adj_close_lag{lag}"] == pytest.approx(d["adj_close"] / prev["adj_close"] - 1, abs=1e-12)
        for k in (5, 10, 15, 20, 25, 30):
            window = [g.iloc[j]["adj_close"] for j in range(i - lag - k + 1, i - lag + 1)]
            assert row[f"ma_{k}_lag{lag}"] == pytest.approx(sum(window) / k / d["adj_close"] - 1, abs=1e-12)
    nxt = g.iloc[i + 1]["adj_close"]
    assert row["target"] == int(nxt > g.iloc[i]["adj_close"])
    assert row["next_return"] == pytest.approx(nxt / g.iloc[i]["adj_close"] - 1, abs=1e-12)


def test_window_columns_are_55_and_oldest_first():
    cols = window_columns()
    assert len(cols) == 55 and len(FEATURE_NAMES) == 11
    assert cols[0] == "c_open_lag4" and cols[10] == "ma_30_lag4" and cols[-1] == "ma_30_lag0"


def test_incomplete_windows_are_dropped_not_filled(aapl_prices):
    feats = build_features(aapl_prices)
    first_complete = aapl_prices["date"].iloc[33]  # 30-day average needs 30 rows, the window 4 more
    assert feats["date"].min() == first_complete
    assert feats["date"].max() == aapl_prices["date"].iloc[-2]  # the last day has no target yet
    assert len(feats) == len(aapl_prices) - 34
    assert np.isfinite(feats[window_columns()].to_numpy()).all()


def test_no_look_ahead_changing_future_prices_leaves_past_features_unchanged(aapl_prices):
    cut = pd.Timestamp("2012-06-01")
    base = build_features(aapl_prices)
    rng = np.random.default_rng(0)
    perturbed = aapl_prices.copy()
    after = perturbed["date"] > cut
    for col in ("open", "high", "low", "close", "adj_close"):
        perturbed.loc[after, col] *= rng.uniform(0.5, 1.5, after.sum())
    perturbed.loc[after, "high"] = perturbed.loc[after, ["open", "high", "low", "close"]].max(axis=1)
    perturbed.loc[after, "low"] = perturbed.loc[after, ["open", "high", "low", "close"]].min(axis=1)
    changed = build_features(perturbed)
    cols = window_columns()
    upto = base["date"] <= cut
    pd.testing.assert_frame_equal(base.loc[upto, cols], changed.loc[upto, cols])
    # Targets of days before the cut are unchanged; the cut day's target legitimately looks one day ahead.
    before = base["date"] < cut
    assert (base.loc[before, "target"] == changed.loc[before, "target"]).all()
    assert not base.loc[~upto, cols].equals(changed.loc[~upto, cols])


def test_paper_split_defaults(aapl_prices):
    feats = build_features(aapl_prices)
    spans = feats.groupby("split")["date"].agg(["min", "max", "size"])
    assert spans.loc["train", "min"] == pd.Timestamp("2006-12-07")
    assert spans.loc["validation", "max"] == pd.Timestamp("2014-12-02")
    assert spans.loc["test", "min"] == pd.Timestamp("2014-12-03")
    assert spans.loc["test", "max"] == pd.Timestamp("2016-11-29")
    assert spans.loc["test", "size"] == 502
    n_train_period = spans.loc["train", "size"] + spans.loc["validation", "size"]
    assert spans.loc["validation", "size"] == round(0.2 * n_train_period)
    assert spans.loc["train", "max"] < spans.loc["validation", "min"]


def test_assign_split_custom_fraction_and_open_ended_test():
    dates = pd.Series(pd.bdate_range("2020-01-01", periods=20))
    split = SplitConfig(
        train_start="2020-01-01",
        train_end="2020-01-14",
        test_start="2020-01-15",
        test_end=None,
        validation_fraction=0.3,
    )
    s = assign_split(dates, split)
    assert list(s) == ["train"] * 7 + ["validation"] * 3 + ["test"] * 10


def test_split_config_rejects_end_before_start():
    with pytest.raises(ValueError, match="test_end .* is before test_start"):
        SplitConfig(test_start="2016-01-01", test_end="2015-01-01")
