"""The paper's 11 daily features, stacked over a 5-day window, with the next-day target and the split.

Every feature of day t uses prices up to and including day t only; the target and `next_return`
use day t+1 and are labels, never inputs. Rows whose window is incomplete (the first 33 trading days
of a ticker: 29 for the 30-day average, 4 more for the window) and the last day (no target yet) are
dropped, never filled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmoe_pipeline.config.protocol import SplitConfig
from llmoe_pipeline.data import PRICE_FIELDS

MA_WINDOWS = (5, 10, 15, 20, 25, 30)
FEATURE_NAMES = ["c_open", "c_high", "c_low", "n_close", "n_adj_close"] + [f"ma_{k}" for k in MA_WINDOWS]
DEFAULT_WINDOW = 5
LIVE = "live"  # windows whose target is not known yet: the ones a nightly refresh trades on
SPLITS = ("train", "validation", "test", "none", LIVE)


def window_columns(window: int = DEFAULT_WINDOW) -> list[str]:
    """Input columns, oldest day first: `<feature>_lag<k>` with k = window-1 .. 0 (0 = day t).

    Reshaping the values to (n, window, 11) gives chronological sequences (for the LSTM).
    """
    return [f"{name}_lag{lag}" for lag in range(window - 1, -1, -1) for name in FEATURE_NAMES]


def _check_positive_prices(prices: pd.DataFrame) -> None:
    """Ratios of zero, negative or NaN prices are garbage (inf, sign flips), not features: refuse them.

    `load_prices` already rejects such rows; this guards frames built by other means.
    """
    for col in PRICE_FIELDS:
        values = prices[col].to_numpy(dtype=float)
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            first = prices.loc[bad].iloc[0]
            day = pd.Timestamp(first["date"]).date()
            raise ValueError(
                f"prices: {col} must be a finite positive number, got {first[col]} for "
                f"{first['ticker']} on {day} ({int(bad.sum())} such row(s))"
            )


def daily_features(prices: pd.DataFrame) -> pd.DataFrame:
    """The 11 features per (ticker, date); NaN where history is too short. Input: `load_prices` output."""
    _check_positive_prices(prices)
    frames = []
    for _, g in prices.sort_values(["ticker", "date"]).groupby("ticker", sort=True):
        close, adj = g["close"], g["adj_close"]
        f = pd.DataFrame({"ticker": g["ticker"], "date": g["date"]})
        f["c_open"] = g["open"] / close - 1
        f["c_high"] = g["high"] / close - 1
        f["c_low"] = g["low"] / close - 1
        f["n_close"] = close / close.shift(1) - 1
        f["n_adj_close"] = adj / adj.shift(1) - 1
        for k in MA_WINDOWS:
            # Trailing window ending on day t (inclusive): no future price enters.
            f[f"ma_{k}"] = adj.rolling(k, min_periods=k).mean() / adj - 1
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def assign_split(dates: pd.Series, split: SplitConfig) -> pd.Series:
    """train / validation (last fraction of the training dates) / test / none, for one ticker's dates."""
    d = pd.to_datetime(dates)
    out = pd.Series("none", index=dates.index, dtype=object)
    in_train = (d >= pd.Timestamp(split.train_start)) & (d <= pd.Timestamp(split.train_end))
    train_dates = np.sort(d[in_train].unique())
    if len(train_dates):
        n_val = int(round(len(train_dates) * split.validation_fraction))
        cut = train_dates[len(train_dates) - n_val] if n_val else None
        out[in_train] = "train"
        if cut is not None:
            out[in_train & (d >= cut)] = "validation"
    test_end = pd.Timestamp(split.test_end) if split.test_end else pd.Timestamp.max
    out[(d >= pd.Timestamp(split.test_start)) & (d <= test_end)] = "test"
    return out


def _windows(prices: pd.DataFrame, window: int) -> pd.DataFrame:
    """Every row with a complete window: 55 window columns, next_return and target (NaN on the last day)."""
    daily = daily_features(prices)
    cols = window_columns(window)
    out = []
    for tkr, g in daily.groupby("ticker", sort=True):
        g = g.reset_index(drop=True)
        stacked = {}
        for lag in range(window - 1, -1, -1):
            shifted = g[FEATURE_NAMES].shift(lag)
            for name in FEATURE_NAMES:
                stacked[f"{name}_lag{lag}"] = shifted[name].to_numpy()
        frame = pd.DataFrame(stacked)[cols]
        adj = prices.loc[prices["ticker"] == tkr].sort_values("date")["adj_close"].to_numpy()
        frame.insert(0, "date", g["date"].to_numpy())
        frame.insert(0, "ticker", tkr)
        nxt = np.append(adj[1:], np.nan)
        frame["next_return"] = nxt / adj - 1
        frame["target"] = (nxt > adj).astype("int64")
        out.append(frame[frame[cols].notna().all(axis=1)].reset_index(drop=True))
    if not out:
        raise ValueError("build_features: no price rows")
    return pd.concat(out, ignore_index=True)


def build_features(
    prices: pd.DataFrame, split: SplitConfig | None = None, window: int = DEFAULT_WINDOW
) -> pd.DataFrame:
    """One row per (ticker, window end date t): 55 window columns, target, next_return, split.

    - target = 1 if adj_close[t+1] > adj_close[t] else 0 (the label to predict at the close of t)
    - next_return = adj_close[t+1] / adj_close[t] - 1 (what an all-in position held over t+1 earns)
    Pure: same input, same output; nothing after day t+1 is read for row t. The last day has no target yet:
    it is not here (see `live_windows`).
    """
    split = split or SplitConfig()
    frames = _windows(prices, window)
    result = frames[frames["next_return"].notna()].reset_index(drop=True)
    if result.empty:
        raise ValueError(
            f"build_features: no ticker has the {window + max(MA_WINDOWS)} trading days a complete window needs"
        )
    parts = [assign_split(g["date"], split) for _, g in result.groupby("ticker", sort=True)]
    result["split"] = pd.concat(parts).reindex(result.index).to_numpy()
    return result


def live_windows(prices: pd.DataFrame, window: int = DEFAULT_WINDOW) -> pd.DataFrame:
    """The windows whose next day has not happened yet (each ticker's last trading day), split "live": the same
    55 inputs, next_return and target NaN (unknown, never filled). Never trained, validated or scored on."""
    frames = _windows(prices, window)
    live = frames[frames["next_return"].isna()].reset_index(drop=True)
    return live.assign(target=np.nan, split=LIVE)


def dropped_row_counts(prices: pd.DataFrame, features: pd.DataFrame) -> dict[str, int]:
    """Trading days per ticker that produced no feature row (incomplete window or no target yet)."""
    n_prices = prices.groupby("ticker").size()
    n_feat = features.groupby("ticker").size().reindex(n_prices.index, fill_value=0)
    return {t: int(n_prices[t] - n_feat[t]) for t in n_prices.index}
