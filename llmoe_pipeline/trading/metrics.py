"""The paper's seven performance metrics of a daily return series, computed with empyrical.

Each metric calls empyrical (empyrical-reloaded) on the validated returns; `compute_metrics` returns all
seven. Returns are simple per-period returns. Conventions (empyrical's):
- total return is prod(1 + r) - 1; annual return is the CAGR, prod(1 + r) ** (periods / n) - 1;
- volatility and the Sharpe ratio use the sample standard deviation (ddof=1), annualized by sqrt(periods);
- `risk_free` is a per-period rate; the Sortino ratio uses it as its required return and divides
  mean(r - required) * periods by the downside deviation sqrt(mean(min(r - required, 0) ** 2) * periods);
- max drawdown is compounded and <= 0 (the running peak starts at the initial wealth of 1);
- Calmar = CAGR / |max drawdown|.

NaN policy: where a ratio is undefined the value is NaN, never +-inf, so that results stay averageable
and JSON-safe:
- fewer than two returns: volatility, Sharpe and Sortino are NaN (a sample deviation needs two points);
- zero deviation of the excess returns, e.g. all cash or a constant return: Sharpe is NaN (empyrical
  gives NaN or +-inf); identical returns have a volatility of exactly 0;
- zero downside deviation (no return below the required return): Sortino is NaN (empyrical: inf or
  NaN); "zero" is in floating point: shortfalls below ~1e-154 square to 0 and count as none;
- no drawdown (equity never below its running peak): Calmar is NaN.
Invalid input raises ValueError: an empty series, a NaN or inf (the message names its position and
label), a return below -1 (a loss of more than everything), periods <= 0, or returns so extreme that
a metric overflows floating point.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import empyrical
import numpy as np
import pandas as pd

from llmoe_pipeline.catalog import TRADING_DAYS_PER_YEAR

METRIC_NAMES = (
    "total_return",
    "annual_return",
    "annual_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown",
)


def validate_returns(daily_returns, name: str = "daily_returns") -> np.ndarray:
    """Return the returns as a 1-D float array, or raise ValueError saying what is wrong and where."""
    labels = daily_returns.index if isinstance(daily_returns, pd.Series) else None
    try:
        values = np.asarray(daily_returns, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric ({exc})") from None
    if values.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{name} is empty")

    def where(i: int) -> str:
        return f"{name}[{i}]" + (f" (label {labels[i]})" if labels is not None else "")

    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"{where(bad[0])} is {values[bad[0]]}: returns must be finite ({bad.size} such value(s))")
    bad = np.flatnonzero(values < -1.0)
    if bad.size:
        raise ValueError(f"{where(bad[0])} is {values[bad[0]]}: a return below -1 loses more than everything")
    return values


def _too_extreme(name: str, detail) -> ValueError:
    return ValueError(f"{name}: returns too extreme for floating point ({detail})")


def _metric(func: Callable[..., float]) -> Callable[..., float]:
    """Validate the returns, and turn a floating-point overflow into a ValueError instead of inf/garbage."""

    @functools.wraps(func)
    def wrapper(daily_returns, *args, **kwargs) -> float:
        returns = validate_returns(daily_returns)
        try:
            with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
                value = float(func(returns, *args, **kwargs))
        except FloatingPointError as exc:
            raise _too_extreme(func.__name__, exc) from None
        if np.isinf(value):
            raise _too_extreme(func.__name__, f"result is {value}")
        return value

    return wrapper


def _check_periods(periods: int) -> None:
    if periods <= 0:
        raise ValueError(f"periods must be positive, got {periods}")


@_metric
def total_return(returns: np.ndarray) -> float:
    """Compounded return over the whole series: prod(1 + r) - 1."""
    return empyrical.cum_returns_final(returns)


@_metric
def annual_return(returns: np.ndarray, periods: int = TRADING_DAYS_PER_YEAR) -> float:
    """CAGR: the final wealth of 1 invested, to the power periods / n, minus 1. A single day works."""
    _check_periods(periods)
    return empyrical.annual_return(returns, annualization=periods)


def _volatility(values: np.ndarray, periods: int) -> float:
    """empyrical's annual volatility, but exactly 0 for identical values (no residue of a rounded mean)
    and an error, not inf, when the deviation overflows."""
    _check_periods(periods)
    if values.size < 2:
        return np.nan
    if values.max() == values.min():
        return 0.0
    vol = empyrical.annual_volatility(values, annualization=periods)
    if np.isinf(vol):  # empyrical's deviation (bottleneck) overflows without a floating-point error
        raise FloatingPointError("overflow in the standard deviation")
    return vol


@_metric
def annual_volatility(returns: np.ndarray, periods: int = TRADING_DAYS_PER_YEAR) -> float:
    """Sample standard deviation (ddof=1) times sqrt(periods); NaN for fewer than two returns."""
    return _volatility(returns, periods)


@_metric
def sharpe_ratio(returns: np.ndarray, risk_free: float = 0.0, periods: int = TRADING_DAYS_PER_YEAR) -> float:
    """mean(r - rf) / std(r - rf, ddof=1) * sqrt(periods), rf per period.

    NaN for fewer than two returns, and for zero deviation (e.g. all cash): the ratio divides by 0.
    """
    vol = _volatility(returns - risk_free, periods)
    if np.isnan(vol) or vol == 0.0:
        return np.nan
    return empyrical.sharpe_ratio(returns, risk_free=risk_free, annualization=periods)


@_metric
def sortino_ratio(returns: np.ndarray, required_return: float = 0.0, periods: int = TRADING_DAYS_PER_YEAR) -> float:
    """mean(r - required) * periods / downside deviation (empyrical's formula).

    NaN for fewer than two returns, and when no return falls below the required return (the downside
    deviation, the denominator, is 0).
    """
    _check_periods(periods)
    if returns.size < 2:
        return np.nan
    risk = empyrical.downside_risk(returns, required_return=required_return, annualization=periods)
    if risk == 0.0:
        return np.nan
    return empyrical.sortino_ratio(returns, required_return=required_return, annualization=periods)


def drawdown_from_equity(equity) -> np.ndarray:
    """Drawdown of equity curve(s) that start from wealth 1: equity / running peak - 1 (<= 0).

    `equity` is 1-D (one curve) or 2-D (dates x curves); the peak includes the initial wealth of 1, so
    a loss on the first day is already a drawdown. (empyrical's drawdown works from returns; this is
    for equity curves, e.g. plots.)
    """
    equity = np.asarray(equity, dtype=float)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0), axis=0)
    return equity / peak - 1.0


@_metric
def max_drawdown(returns: np.ndarray) -> float:
    """Largest compounded peak-to-trough loss, as a negative number (0 when there is no drawdown)."""
    return empyrical.max_drawdown(returns)


@_metric
def calmar_ratio(returns: np.ndarray, periods: int = TRADING_DAYS_PER_YEAR) -> float:
    """CAGR / |max drawdown|; NaN when there is no drawdown (the ratio divides by 0)."""
    _check_periods(periods)
    value = empyrical.calmar_ratio(returns, annualization=periods)
    if np.isnan(value) and max_drawdown(returns) < 0.0:  # empyrical turns an overflowed ratio into NaN
        raise _too_extreme("calmar_ratio", "CAGR / |max drawdown| overflows")
    return value


def compute_metrics(daily_returns, periods: int = TRADING_DAYS_PER_YEAR, risk_free: float = 0.0) -> dict[str, float]:
    """All seven metrics of a daily return series, keyed by METRIC_NAMES (see the module docstring)."""
    if not np.isfinite(risk_free) or risk_free <= -1.0:
        raise ValueError(f"risk_free must be a finite per-period rate above -1, got {risk_free}")
    returns = validate_returns(daily_returns)
    return {
        "total_return": total_return(returns),
        "annual_return": annual_return(returns, periods),
        "annual_volatility": annual_volatility(returns, periods),
        "sharpe_ratio": sharpe_ratio(returns, risk_free, periods),
        "sortino_ratio": sortino_ratio(returns, risk_free, periods),
        "calmar_ratio": calmar_ratio(returns, periods),
        "max_drawdown": max_drawdown(returns),
    }
