"""The paper's seven performance metrics of a daily return series, following empyrical's conventions.

Each metric is one small function of simple (non-compounded) per-period returns, as in empyrical's
`stats.py`; `compute_metrics` returns all seven. The tests cross-check every function against
empyrical (empyrical-reloaded) to 1e-9.

Conventions (all as in empyrical):
- annual return is the CAGR: (prod(1 + r)) ** (periods / n) - 1;
- volatility and the Sharpe ratio use the sample standard deviation (ddof=1), annualized by sqrt(periods);
- `risk_free` is a per-period rate; the Sortino ratio uses it as its required return;
- max drawdown is compounded and <= 0 (the running peak starts at the initial wealth of 1);
- Calmar = CAGR / |max drawdown|.

Where a ratio is undefined the value is NaN, never inf, so that results stay averageable and JSON-safe:
- fewer than two returns: volatility, Sharpe and Sortino are NaN (a sample deviation needs two points);
- zero volatility, e.g. an all-cash strategy whose returns are all 0: Sharpe is NaN because its
  denominator, the deviation of excess returns, is 0 (empyrical gives 0/0 = NaN here too, but +-inf
  for a constant non-zero return; we give NaN for both);
- zero downside deviation (no return below the required return): Sortino is NaN (empyrical: inf or NaN);
  "zero" is in floating point: deviations below ~1e-154 square to 0 and count as none;
- no drawdown (equity never below its running peak): Calmar is NaN (as in empyrical).
Invalid input raises ValueError: an empty series, a NaN or inf (the message names its position and
label), a return below -1 (a loss of more than everything), or returns so extreme that a metric
overflows floating point.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import pandas as pd

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


def _metric(func: Callable[..., float]) -> Callable[..., float]:
    """Validate the returns, and turn a floating-point overflow into a ValueError instead of inf/garbage."""

    @functools.wraps(func)
    def wrapper(daily_returns, *args, **kwargs) -> float:
        returns = validate_returns(daily_returns)
        try:
            with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
                value = float(func(returns, *args, **kwargs))
        except FloatingPointError as exc:
            raise ValueError(f"{func.__name__}: returns too extreme for floating point ({exc})") from None
        if np.isinf(value):
            raise ValueError(f"{func.__name__}: returns too extreme for floating point (result is {value})")
        return value

    return wrapper


def _check_periods(periods: int) -> None:
    if periods <= 0:
        raise ValueError(f"periods must be positive, got {periods}")


def _sample_std(values: np.ndarray) -> float:
    """Sample standard deviation (ddof=1); exactly 0 for identical values (no floating-point residue)."""
    if values.max() == values.min():
        return 0.0
    return float(np.std(values, ddof=1))


@_metric
def total_return(returns: np.ndarray) -> float:
    """Compounded return over the whole series: prod(1 + r) - 1."""
    return np.prod(1.0 + returns) - 1.0


@_metric
def annual_return(returns: np.ndarray, periods: int = 252) -> float:
    """CAGR: the final wealth of 1 invested, to the power periods / n, minus 1. A single day works."""
    _check_periods(periods)
    return np.prod(1.0 + returns) ** (periods / returns.size) - 1.0


@_metric
def annual_volatility(returns: np.ndarray, periods: int = 252) -> float:
    """Sample standard deviation (ddof=1) times sqrt(periods); NaN for fewer than two returns."""
    _check_periods(periods)
    if returns.size < 2:
        return np.nan
    return _sample_std(returns) * np.sqrt(periods)


@_metric
def sharpe_ratio(returns: np.ndarray, risk_free: float = 0.0, periods: int = 252) -> float:
    """mean(r - rf) / std(r - rf, ddof=1) * sqrt(periods), rf per period.

    NaN for fewer than two returns, and for zero deviation (e.g. all cash): the ratio divides by 0.
    """
    _check_periods(periods)
    excess = returns - risk_free
    if excess.size < 2:
        return np.nan
    std = _sample_std(excess)
    if std == 0.0:
        return np.nan
    return np.mean(excess) / std * np.sqrt(periods)


@_metric
def downside_risk(returns: np.ndarray, required_return: float = 0.0, periods: int = 252) -> float:
    """Downside deviation: sqrt(mean(min(r - required, 0) ** 2)) * sqrt(periods) (over all n returns)."""
    _check_periods(periods)
    shortfall = np.minimum(returns - required_return, 0.0)
    return np.sqrt(np.mean(shortfall**2)) * np.sqrt(periods)


@_metric
def sortino_ratio(returns: np.ndarray, required_return: float = 0.0, periods: int = 252) -> float:
    """mean(r - required) * periods / downside_risk (empyrical's formula).

    NaN for fewer than two returns, and when no return falls below the required return (the downside
    deviation, the denominator, is 0).
    """
    if returns.size < 2:
        return np.nan
    risk = downside_risk(returns, required_return, periods)
    if risk == 0.0:
        return np.nan
    return np.mean(returns - required_return) * periods / risk


def drawdown_from_equity(equity) -> np.ndarray:
    """Drawdown of equity curve(s) that start from wealth 1: equity / running peak - 1 (<= 0).

    `equity` is 1-D (one curve) or 2-D (dates x curves); the peak includes the initial wealth of 1, so
    a loss on the first day is already a drawdown.
    """
    equity = np.asarray(equity, dtype=float)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0), axis=0)
    return equity / peak - 1.0


@_metric
def max_drawdown(returns: np.ndarray) -> float:
    """Largest compounded peak-to-trough loss, as a negative number (0 when there is no drawdown)."""
    return np.min(drawdown_from_equity(np.cumprod(1.0 + returns)))


@_metric
def calmar_ratio(returns: np.ndarray, periods: int = 252) -> float:
    """CAGR / |max drawdown|; NaN when there is no drawdown (the ratio divides by 0)."""
    mdd = max_drawdown(returns)
    if mdd >= 0.0:
        return np.nan
    return annual_return(returns, periods) / abs(mdd)


def compute_metrics(daily_returns, periods: int = 252, risk_free: float = 0.0) -> dict[str, float]:
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
