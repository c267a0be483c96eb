"""The seven metrics: hand-computed values, the NaN policy, validation errors, properties.

The metrics call empyrical, so the cross-checks against empyrical only guard the wiring (argument names,
annualization); the values are proved by hand-computed cases and a plain-numpy reference.
"""

import math

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmoe_pipeline.trading.metrics import (
    METRIC_NAMES,
    annual_return,
    annual_volatility,
    calmar_ratio,
    compute_metrics,
    drawdown_from_equity,
    max_drawdown,
    sharpe_ratio,
    sortino_ratio,
    total_return,
)

UNDEFINED_WHEN_SHORT = ("annual_volatility", "sharpe_ratio", "sortino_ratio")


def _reference(r, periods, risk_free):
    """The conventions written out in plain numpy, independently of empyrical."""
    r = np.asarray(r, dtype=float)
    growth = np.prod(1 + r)
    cagr = growth ** (periods / r.size) - 1
    equity = np.cumprod(1 + r)
    mdd = np.min(equity / np.maximum.accumulate(np.maximum(equity, 1.0)) - 1)
    excess = r - risk_free
    downside = np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2) * periods)
    return {
        "total_return": growth - 1,
        "annual_return": cagr,
        "annual_volatility": np.std(r, ddof=1) * np.sqrt(periods),
        "sharpe_ratio": excess.mean() / np.std(excess, ddof=1) * np.sqrt(periods),
        "sortino_ratio": excess.mean() * periods / downside,
        "calmar_ratio": cagr / abs(mdd),
        "max_drawdown": mdd,
    }


def _empyrical_metrics(r: np.ndarray, periods: int, risk_free: float) -> dict:
    return {
        "total_return": ep.cum_returns_final(r),
        "annual_return": ep.annual_return(r, annualization=periods),
        "annual_volatility": ep.annual_volatility(r, annualization=periods),
        "sharpe_ratio": ep.sharpe_ratio(r, risk_free=risk_free, annualization=periods),
        "sortino_ratio": ep.sortino_ratio(r, required_return=risk_free, annualization=periods),
        "calmar_ratio": ep.calmar_ratio(r, annualization=periods),
        "max_drawdown": ep.max_drawdown(r),
    }


def _assert_matches(r, periods=252, risk_free=0.0):
    """Against the plain-numpy reference (the proof) and empyrical (a guard on how it is called)."""
    ours = compute_metrics(r, periods=periods, risk_free=risk_free)
    assert set(ours) == set(METRIC_NAMES)
    r = np.asarray(r, dtype=float)
    for expected in (_reference(r, periods, risk_free), _empyrical_metrics(r, periods, risk_free)):
        for name in METRIC_NAMES:
            assert ours[name] == pytest.approx(float(expected[name]), rel=1e-9, abs=1e-12), name


# --- hand-computed values ---------------------------------------------------------------------------


def test_hand_computed_small_series_daily():
    # r = [0.01, -0.02, 0.03]: equity 1.01, 0.9898, 1.019494; mean 1/150; deviations (1, -8, 7)/300, so
    # the sample variance is (1 + 64 + 49) / 90000 / 2 = 57/90000 and std = sqrt(57)/300.
    m = compute_metrics([0.01, -0.02, 0.03], periods=252)
    cagr = ((1 + 0.01) * (1 - 0.02) * (1 + 0.03)) ** (252 / 3) - 1  # = 1.019494 ** 84 - 1
    assert m["total_return"] == pytest.approx(0.019494, abs=1e-12)
    assert m["annual_return"] == pytest.approx(cagr, abs=1e-12)
    assert m["annual_return"] == pytest.approx(4.0618891594160, abs=1e-12)
    assert m["annual_volatility"] == pytest.approx(math.sqrt(57) / 300 * math.sqrt(252), abs=1e-12)
    # Sharpe = (1/150) / (sqrt(57)/300) * sqrt(252) = 2 sqrt(252/57)
    assert m["sharpe_ratio"] == pytest.approx(2 * math.sqrt(252 / 57), abs=1e-12)
    # downside deviation sqrt(0.02^2 / 3 * 252) = 0.02 sqrt(84); Sortino = (1/150 * 252) / that = sqrt(84)
    assert m["sortino_ratio"] == pytest.approx(math.sqrt(84), abs=1e-12)
    # the peak 1.01 falls to 0.9898 = 1.01 * 0.98
    assert m["max_drawdown"] == pytest.approx(-0.02, abs=1e-12)
    assert m["calmar_ratio"] == pytest.approx(cagr / 0.02, abs=1e-12)


def test_hand_computed_three_days():
    # Equity 1.1, 0.88, 0.924. periods=3 makes the series exactly one year, so CAGR = total return.
    r = [0.10, -0.20, 0.05]
    m = compute_metrics(r, periods=3)
    mean = -0.05 / 3
    std = math.sqrt(((0.10 - mean) ** 2 + (-0.20 - mean) ** 2 + (0.05 - mean) ** 2) / 2)
    assert m["total_return"] == pytest.approx(-0.076, abs=1e-15)
    assert m["annual_return"] == pytest.approx(-0.076, abs=1e-15)
    assert m["max_drawdown"] == pytest.approx(0.88 / 1.1 - 1, abs=1e-15)  # -0.2
    assert m["calmar_ratio"] == pytest.approx(-0.076 / 0.2, abs=1e-12)
    assert m["annual_volatility"] == pytest.approx(std * math.sqrt(3), abs=1e-15)
    assert m["sharpe_ratio"] == pytest.approx(mean / std * math.sqrt(3), abs=1e-12)
    # downside deviation: sqrt(0.2^2 / 3) * sqrt(3) = 0.2; Sortino = mean * 3 / 0.2
    assert m["sortino_ratio"] == pytest.approx(-0.05 / 0.2, abs=1e-12)


def test_hand_computed_cagr_and_risk_free():
    # Two years of 252 days each growing 1% in total per year -> CAGR 1%.
    daily = 1.01 ** (1 / 252) - 1
    m = compute_metrics(np.full(504, daily), periods=252)
    assert m["annual_return"] == pytest.approx(0.01, abs=1e-12)
    assert m["total_return"] == pytest.approx(1.01**2 - 1, abs=1e-12)
    # Sharpe with a per-period risk-free rate: excess = r - rf
    r = np.array([0.01, 0.03, -0.01, 0.02])
    rf = 0.005
    excess = r - rf
    expected = excess.mean() / excess.std(ddof=1) * math.sqrt(252)
    assert compute_metrics(r, risk_free=rf)["sharpe_ratio"] == pytest.approx(expected, abs=1e-12)
    # Sortino's required return is the risk-free rate: excess 0.005, 0.025, -0.015, 0.015 -> one shortfall
    downside = math.sqrt(0.015**2 / 4 * 252)
    assert compute_metrics(r, risk_free=rf)["sortino_ratio"] == pytest.approx(excess.mean() * 252 / downside, abs=1e-12)


def test_single_functions_match_compute_metrics():
    r = [0.01, -0.02, 0.03, 0.004]
    m = compute_metrics(r, periods=12, risk_free=0.001)
    assert total_return(r) == m["total_return"]
    assert annual_return(r, 12) == m["annual_return"]
    assert annual_volatility(r, 12) == m["annual_volatility"]
    assert sharpe_ratio(r, 0.001, 12) == m["sharpe_ratio"]
    assert sortino_ratio(r, 0.001, 12) == m["sortino_ratio"]
    assert calmar_ratio(r, 12) == m["calmar_ratio"]
    assert max_drawdown(r) == m["max_drawdown"]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("periods,risk_free", [(252, 0.0), (252, 0.0001), (12, 0.002)])
def test_matches_reference_and_empyrical_on_random_series(seed, periods, risk_free):
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0005, 0.02, size=int(rng.integers(2, 800)))
    _assert_matches(r, periods, risk_free)


def test_matches_reference_and_empyrical_on_real_aapl_returns(aapl_prices):
    adj = aapl_prices.set_index("date")["adj_close"]
    returns = adj.pct_change().dropna()
    test_period = returns.loc["2014-12-03":"2016-11-29"]
    assert len(test_period) > 400
    _assert_matches(test_period.to_numpy())
    _assert_matches(test_period.to_numpy(), risk_free=0.02 / 252)
    _assert_matches(returns.to_numpy())  # the full history, ~10 years
    _assert_matches(test_period)  # a Series works the same


def test_loss_on_first_day_is_a_drawdown_and_total_loss_is_minus_one():
    assert max_drawdown([-0.5, 0.5]) == pytest.approx(-0.5)
    m = compute_metrics([0.1, -1.0, 0.2])
    assert m["total_return"] == -1.0 and m["max_drawdown"] == -1.0 and m["annual_return"] == -1.0
    assert m["calmar_ratio"] == -1.0


def test_drawdown_from_equity_two_dimensional():
    equity = np.array([[1.1, 0.9], [0.99, 0.95], [1.2, 0.8]])
    expected = np.array([[0.0, -0.1], [0.99 / 1.1 - 1, -0.05], [0.0, -0.2]])
    np.testing.assert_allclose(drawdown_from_equity(equity), expected, atol=1e-15)


def test_drawdown_from_equity_agrees_with_max_drawdown():
    r = np.random.default_rng(3).normal(0, 0.02, 300)
    assert drawdown_from_equity(np.cumprod(1 + r)).min() == pytest.approx(max_drawdown(r), abs=1e-12)


# --- the NaN policy ---------------------------------------------------------------------------------


def test_single_day():
    m = compute_metrics([-0.01])
    assert m["total_return"] == pytest.approx(-0.01)
    assert m["annual_return"] == pytest.approx(0.99**252 - 1)
    assert m["max_drawdown"] == pytest.approx(-0.01)
    assert m["calmar_ratio"] == pytest.approx((0.99**252 - 1) / 0.01)
    for name in UNDEFINED_WHEN_SHORT:  # need two points
        assert math.isnan(m[name])


def test_all_cash_strategy_has_undefined_ratios():
    m = compute_metrics(np.zeros(30))
    assert m["total_return"] == 0 and m["annual_return"] == 0 and m["max_drawdown"] == 0
    assert m["annual_volatility"] == 0
    # zero deviation: Sharpe and Sortino divide by 0; no drawdown: Calmar divides by 0
    assert math.isnan(m["sharpe_ratio"]) and math.isnan(m["sortino_ratio"]) and math.isnan(m["calmar_ratio"])


def test_constant_positive_return_gives_nan_not_inf():
    r = np.full(10, 0.001)
    m = compute_metrics(r)
    assert math.isnan(m["sharpe_ratio"]) and math.isnan(m["sortino_ratio"]) and math.isnan(m["calmar_ratio"])
    assert m["annual_volatility"] == 0  # exactly, without the residue of a rounded mean
    assert m["total_return"] == pytest.approx(1.001**10 - 1, abs=1e-15)
    assert not math.isfinite(ep.sharpe_ratio(r))  # the policy is ours: empyrical is not finite here


@pytest.mark.parametrize(
    "r,risk_free",
    [
        ([0.0, 1e-170], 0.0),  # the deviation underflows to 0
        ([1e-20, 2e-20], 1e-4),  # the excess returns round to the same value
        ([-0.01, -0.01, -0.01], 0.0),  # a constant loss: empyrical gives -inf or NaN
    ],
)
def test_zero_deviation_sharpe_is_nan(r, risk_free):
    assert math.isnan(compute_metrics(r, risk_free=risk_free)["sharpe_ratio"])
    assert math.isnan(sharpe_ratio(r, risk_free))


@pytest.mark.parametrize("r", [[0.01, 0.0, 0.02], [0.01, -1e-170], [0.03, 0.02]])
def test_no_downside_sortino_is_nan(r):
    m = compute_metrics(r)
    assert math.isnan(m["sortino_ratio"]) and math.isfinite(m["sharpe_ratio"])
    assert math.isnan(sortino_ratio(r))
    assert not math.isfinite(ep.sortino_ratio(np.asarray(r)))  # empyrical: inf


def test_sortino_is_defined_with_a_single_shortfall_below_the_required_return():
    assert math.isfinite(compute_metrics([0.01, 0.0, 0.02], risk_free=0.005)["sortino_ratio"])


@pytest.mark.parametrize("r", [[0.01, 0.02], [0.0, 0.0], [0.05]])
def test_no_drawdown_calmar_is_nan(r):
    m = compute_metrics(r)
    assert m["max_drawdown"] == 0 and math.isnan(m["calmar_ratio"])
    assert math.isnan(calmar_ratio(r))


# --- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad,pos", [(np.nan, 2), (np.inf, 0), (-np.inf, 4)])
def test_non_finite_return_names_its_position(bad, pos):
    r = np.full(5, 0.01)
    r[pos] = bad
    message = rf"daily_returns\[{pos}\] is -?(nan|inf): returns must be finite \(1 such value"
    with pytest.raises(ValueError, match=message):
        compute_metrics(r)


def test_nan_in_series_names_the_date():
    r = pd.Series([0.01, np.nan, 0.02], index=pd.to_datetime(["2015-01-02", "2015-01-05", "2015-01-06"]))
    with pytest.raises(ValueError, match=r"daily_returns\[1\] \(label 2015-01-05"):
        compute_metrics(r)


@pytest.mark.parametrize(
    "bad,message",
    [
        ([], r"daily_returns is empty"),
        ([-1.5, 0.1], r"daily_returns\[0\] is -1.5: a return below -1 loses more than everything"),
        ([[0.1, 0.2]], r"daily_returns must be one-dimensional, got shape \(1, 2\)"),
        (["a", "b"], r"daily_returns must be numeric"),
    ],
)
def test_invalid_inputs_raise(bad, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(bad)
    for func in (
        total_return,
        annual_return,
        annual_volatility,
        sharpe_ratio,
        sortino_ratio,
        calmar_ratio,
        max_drawdown,
    ):
        with pytest.raises(ValueError, match=message):
            func(bad)


def test_invalid_parameters_raise():
    with pytest.raises(ValueError, match="periods must be positive, got 0"):
        compute_metrics([0.01, 0.02], periods=0)
    for func in (annual_return, annual_volatility, calmar_ratio):
        with pytest.raises(ValueError, match="periods must be positive, got -1"):
            func([0.01, -0.02], periods=-1)
    for func in (sharpe_ratio, sortino_ratio):
        with pytest.raises(ValueError, match="periods must be positive, got 0"):
            func([0.01, -0.02], 0.0, 0)
    for rf in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="risk_free must be a finite per-period rate above -1"):
            compute_metrics([0.01, 0.02], risk_free=rf)


def test_overflow_is_an_error_not_inf():
    with pytest.raises(ValueError, match="too extreme"):
        compute_metrics([1e200, 1e200])
    # the deviation overflows (empyrical's would be inf, and Sharpe a silent 0)
    with pytest.raises(ValueError, match="annual_volatility: returns too extreme"):
        annual_volatility([1e160, 0.0])
    with pytest.raises(ValueError, match="sharpe_ratio: returns too extreme"):
        sharpe_ratio([1e160, 0.0])
    # a finite CAGR (~1e295) over a drawdown of ~1e-15 (empyrical would give NaN)
    with pytest.raises(ValueError, match="calmar_ratio: returns too extreme"):
        calmar_ratio([219.0, -1e-15])


# --- properties -------------------------------------------------------------------------------------

_valid_returns = st.lists(st.floats(min_value=-1.0, max_value=1.0, allow_nan=False), min_size=1, max_size=300)


@settings(max_examples=150, deadline=None)
@given(_valid_returns, st.sampled_from([0.0, 0.0001]), st.sampled_from([252, 12, 1]))
def test_property_valid_returns_give_finite_or_nan_metrics(returns, risk_free, periods):
    m = compute_metrics(returns, periods=periods, risk_free=risk_free)  # |r| <= 1: no overflow (2**252)
    for name in METRIC_NAMES:
        assert math.isfinite(m[name]) or math.isnan(m[name]), name  # never inf
    for name in ("total_return", "annual_return", "max_drawdown"):  # always defined
        assert math.isfinite(m[name]), name
    assert -1.0 <= m["max_drawdown"] <= 0.0 and m["total_return"] >= -1.0
    if len(returns) < 2:
        assert all(math.isnan(m[name]) for name in UNDEFINED_WHEN_SHORT)
    else:
        assert math.isfinite(m["annual_volatility"]) and m["annual_volatility"] >= 0
        excess = np.asarray(returns) - risk_free
        # Sharpe is defined when excess returns vary (by more than deviations whose squares underflow)
        if excess.max() - excess.min() > 1e-150:
            assert math.isfinite(m["sharpe_ratio"])
        elif excess.max() == excess.min():
            assert math.isnan(m["sharpe_ratio"])
        if excess.min() < -1e-150:  # some shortfall below the required return: Sortino is defined
            assert math.isfinite(m["sortino_ratio"])
        elif excess.min() >= 0:
            assert math.isnan(m["sortino_ratio"])
    if m["max_drawdown"] < 0:
        assert math.isfinite(m["calmar_ratio"])
    else:
        assert math.isnan(m["calmar_ratio"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=50))
def test_property_any_floats_give_valid_metrics_or_value_error(returns):
    valid_input = bool(returns) and all(math.isfinite(x) and x >= -1 for x in returns)
    try:
        m = compute_metrics(returns)
    except ValueError as exc:
        if not valid_input:
            assert "too extreme" not in str(exc)
            return
        # valid returns may only fail when a true metric value is beyond floating point
        assert "too extreme" in str(exc)
        log_growth = 252 / len(returns) * sum(math.log1p(x) for x in returns if x > -1)
        assert log_growth > 700 or max(map(abs, returns)) > 1e150
        return
    assert valid_input
    assert all(not math.isinf(v) for v in m.values())
