"""Each figure renders to a real, non-trivial PNG from backtests of AAPL's test period."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from llmoe_pipeline.reporting.plots import plot_drawdown, plot_equity, plot_regimes
from llmoe_pipeline.trading.backtest import backtest, buy_and_hold


@pytest.fixture(scope="module")
def aapl_test_period(aapl_prices):
    adj = aapl_prices.set_index("date")["adj_close"].loc["2014-12-03":"2016-11-30"]
    next_returns = (adj.shift(-1) / adj - 1).dropna()  # the feature table's next_return
    return adj.loc[next_returns.index].rename("AAPL adj. close"), next_returns


@pytest.fixture(scope="module")
def curves(aapl_test_period):
    _, next_returns = aapl_test_period
    curves = {}
    for model, p_up in (("LLMoE", 0.7), ("MLP", 0.5)):  # random predictions, 3 seeds each
        curves[model] = pd.concat(
            {
                seed: backtest(
                    pd.Series(np.random.default_rng(seed).random(len(next_returns)) < p_up, index=next_returns.index),
                    next_returns,
                )["equity"]
                for seed in range(3)
            },
            axis=1,
        )
    return curves


def _assert_png(path, min_bytes=20_000):
    assert path.exists() and path.stat().st_size > min_bytes
    image = imread(path)
    assert image.shape[0] >= 400 and image.shape[1] >= 1000  # 10 x 4.5 in at 110 dpi
    assert image[..., :3].std() > 0.05  # not a blank canvas
    assert not list(path.parent.glob(".*.tmp"))  # the atomic write left no temp file


def test_plot_equity(tmp_path, curves, aapl_test_period):
    _, next_returns = aapl_test_period
    path = plot_equity(curves, buy_and_hold(next_returns)["equity"], tmp_path / "figs" / "equity.png")
    _assert_png(path)


def test_plot_drawdown(tmp_path, curves, aapl_test_period):
    _, next_returns = aapl_test_period
    path = plot_drawdown(curves, buy_and_hold(next_returns)["equity"], tmp_path / "drawdown.png")
    _assert_png(path)


def test_plot_regimes(tmp_path, aapl_test_period):
    prices, next_returns = aapl_test_period
    # a stand-in router: optimistic after an up day
    labels = pd.Series(np.where(prices.pct_change().fillna(0) > 0, "Optimistic", "Pessimistic"), index=prices.index)
    path = plot_regimes(prices, labels.iloc[:-20], tmp_path / "regimes.png")  # last days unlabelled
    _assert_png(path)
    with pytest.raises(ValueError, match="Neutral"):
        plot_regimes(prices, labels.replace("Optimistic", "Neutral"), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_empty_curves_raise(tmp_path, aapl_test_period):
    _, next_returns = aapl_test_period
    with pytest.raises(ValueError, match="no equity curves"):
        plot_equity({}, buy_and_hold(next_returns)["equity"], tmp_path / "x.png")
