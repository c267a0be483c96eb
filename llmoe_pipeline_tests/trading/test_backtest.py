"""Backtest: a hand-worked 6-day example with and without costs, a plain-loop cross-check, validation."""

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.trading.backtest import BACKTEST_COLUMNS, backtest, buy_and_hold

DATES = pd.bdate_range("2015-01-05", periods=6)
PREDICTIONS = pd.Series([1, 1, 0, 1, 0, 0], index=DATES)
NEXT_RETURNS = pd.Series([0.01, -0.02, 0.03, 0.05, -0.01, 0.02], index=DATES)


def test_six_days_without_costs():
    bt = backtest(PREDICTIONS, NEXT_RETURNS)
    assert list(bt.columns) == BACKTEST_COLUMNS and bt.index.equals(DATES)
    assert bt["position"].tolist() == [1, 1, 0, 1, 0, 0]
    # starts from cash: enter day 1, hold, exit day 3, enter day 4, exit day 5, stay out day 6
    assert bt["trade"].tolist() == [1, 0, 1, 1, 1, 0]
    np.testing.assert_allclose(bt["asset_return"], NEXT_RETURNS)
    np.testing.assert_allclose(bt["strategy_return"], [0.01, -0.02, 0.0, 0.05, 0.0, 0.0], atol=1e-15)
    e1 = 1.01
    e2 = e1 * 0.98
    e4 = e2 * 1.05
    np.testing.assert_allclose(bt["equity"], [e1, e2, e2, e4, e4, e4], rtol=1e-14)
    assert bt["equity"].iloc[-1] == pytest.approx(1.039290, abs=1e-12)


def test_six_days_with_10_bps_costs():
    bt = backtest(PREDICTIONS, NEXT_RETURNS, cost_bps=10)
    c = 0.001  # 10 bps per unit of position change
    expected_returns = [0.01 - c, -0.02, 0.0 - c, 0.05 - c, 0.0 - c, 0.0]
    np.testing.assert_allclose(bt["strategy_return"], expected_returns, atol=1e-15)
    expected_equity = np.cumprod([1.009, 0.98, 0.999, 1.049, 0.999, 1.0])
    np.testing.assert_allclose(bt["equity"], expected_equity, rtol=1e-14)
    assert bt["equity"].iloc[-1] == pytest.approx(1.009 * 0.98 * 0.999 * 1.049 * 0.999, abs=1e-15)


def test_buy_and_hold():
    bh = buy_and_hold(NEXT_RETURNS)
    assert list(bh.columns) == BACKTEST_COLUMNS
    assert bh["position"].tolist() == [1] * 6 and bh["trade"].tolist() == [1, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(bh["strategy_return"], NEXT_RETURNS)  # the entry costs nothing
    assert bh["equity"].iloc[-1] == pytest.approx(np.prod(1 + NEXT_RETURNS.to_numpy()), rel=1e-14)


def test_probabilities_with_threshold():
    probs = pd.Series([0.9, 0.51, 0.5, 0.7, 0.2, 0.0], index=DATES)
    assert backtest(probs, NEXT_RETURNS)["position"].tolist() == [1, 1, 0, 1, 0, 0]  # 0.5 stays in cash
    assert backtest(probs, NEXT_RETURNS, threshold=0.6)["position"].tolist() == [1, 0, 0, 1, 0, 0]
    booleans = PREDICTIONS.astype(bool)
    pd.testing.assert_frame_equal(backtest(booleans, NEXT_RETURNS), backtest(PREDICTIONS, NEXT_RETURNS))


@pytest.mark.parametrize("seed", range(3))
def test_equity_matches_a_plain_loop(seed):
    rng = np.random.default_rng(seed)
    n = 300
    dates = pd.bdate_range("2014-12-03", periods=n)
    preds = pd.Series(rng.integers(0, 2, n), index=dates)
    rets = pd.Series(rng.normal(0.0005, 0.02, n), index=dates)
    cost_bps = float(rng.uniform(0, 20))
    bt = backtest(preds, rets, cost_bps=cost_bps)
    wealth, held, equity = 1.0, 0, []
    for p, r in zip(preds, rets):
        cost = cost_bps / 10_000 * abs(p - held)
        wealth *= 1 + p * r - cost
        held = p
        equity.append(wealth)
    np.testing.assert_allclose(bt["equity"], equity, rtol=1e-12)
    assert bt["trade"].sum() == np.abs(np.diff(np.r_[0, preds.to_numpy()])).sum()


def test_validation_errors():
    with pytest.raises(ValueError, match="same index"):
        backtest(PREDICTIONS.iloc[1:], NEXT_RETURNS)
    with pytest.raises(ValueError, match="same index"):
        backtest(PREDICTIONS.iloc[::-1], NEXT_RETURNS)
    rets = NEXT_RETURNS.copy()
    rets.iloc[3] = np.nan
    with pytest.raises(ValueError, match=r"next_returns\[3\] \(label 2015-01-08"):
        backtest(PREDICTIONS, rets)
    preds = PREDICTIONS.astype(float)
    preds.iloc[2] = np.nan
    with pytest.raises(ValueError, match="2015-01-07.*nan"):
        backtest(preds, NEXT_RETURNS)
    with pytest.raises(ValueError, match="2015-01-05.*2"):
        backtest(PREDICTIONS.replace(1, 2), NEXT_RETURNS)
    with pytest.raises(ValueError, match="cost_bps"):
        backtest(PREDICTIONS, NEXT_RETURNS, cost_bps=-1)
    with pytest.raises(ValueError, match="threshold"):
        backtest(PREDICTIONS, NEXT_RETURNS, threshold=1.0)
    unsorted = NEXT_RETURNS.iloc[[1, 0, 2, 3, 4, 5]]
    with pytest.raises(ValueError, match="sorted"):
        backtest(PREDICTIONS.iloc[[1, 0, 2, 3, 4, 5]], unsorted)
    with pytest.raises(TypeError):
        backtest(PREDICTIONS.to_numpy(), NEXT_RETURNS)
