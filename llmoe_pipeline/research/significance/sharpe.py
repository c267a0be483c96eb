"""Probabilistic Sharpe Ratio (Bailey & Lopez de Prado 2012, "The Sharpe ratio efficient frontier").

PSR(SR*) = Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - skew SR + (kurt - 1) / 4 SR^2)), with SR the per-period
Sharpe ratio (ddof=1), skew and kurt (non-excess, 3 for the normal) the sample moments (biased estimators,
as in the paper): the probability that the true Sharpe ratio exceeds SR*, allowing for fat tails and skew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import kurtosis, norm, skew

from llmoe_pipeline.catalog import TRADING_DAYS_PER_YEAR
from llmoe_pipeline.trading.metrics import validate_returns


@dataclass(frozen=True)
class PSRResult:
    """PSR of one series; NaN with a reason where the Sharpe ratio is undefined."""

    psr: float
    sharpe: float  # annualised, ddof=1 (as metrics.sharpe_ratio)
    benchmark_sharpe: float  # annualised
    skewness: float
    kurtosis: float  # non-excess
    n: int
    reason: str | None = None


def probabilistic_sharpe_ratio(
    returns, benchmark_sharpe: float = 0.0, periods: int = TRADING_DAYS_PER_YEAR
) -> PSRResult:
    """P(true Sharpe > benchmark_sharpe) for a daily return series; benchmark_sharpe is annualised."""
    if periods <= 0:
        raise ValueError(f"periods must be positive, got {periods}")
    x = validate_returns(returns, "returns")
    n = x.size
    nan = math.nan
    if n < 3:
        return PSRResult(nan, nan, benchmark_sharpe, nan, nan, n, reason=f"too few days ({n} < 3)")
    if np.ptp(x) == 0:
        return PSRResult(nan, nan, benchmark_sharpe, nan, nan, n, reason="constant series: Sharpe ratio undefined")
    sr = float(x.mean() / x.std(ddof=1))
    g3, g4 = float(skew(x)), float(kurtosis(x, fisher=False))
    ann = math.sqrt(periods)
    psr = psr_from_moments(sr, benchmark_sharpe / ann, n, g3, g4)
    if math.isnan(psr):
        return PSRResult(nan, sr * ann, benchmark_sharpe, g3, g4, n, reason="zero variance of the Sharpe estimate")
    return PSRResult(psr, sr * ann, benchmark_sharpe, g3, g4, n)


def psr_from_moments(sr: float, sr_star: float, n: int, skewness: float, kurtosis: float) -> float:
    """PSR from per-period Sharpe ratios, the number of returns and the non-excess kurtosis (NaN if undefined)."""
    var = 1.0 - skewness * sr + (kurtosis - 1.0) / 4.0 * sr**2  # >= (1 - g3 SR / 2)^2 >= 0, as kurt >= skew^2 + 1
    if not var > 0:
        return math.nan
    return float(norm.cdf((sr - sr_star) * math.sqrt(n - 1) / math.sqrt(var)))


def minimum_track_record(psr: PSRResult, confidence: float = 0.95, periods: int = TRADING_DAYS_PER_YEAR) -> float:
    """Minimum track record length in days (Bailey & Lopez de Prado 2012) for the measured Sharpe ratio to exceed
    psr.benchmark_sharpe with `confidence`: 1 + (1 - g3 SR + (g4 - 1) / 4 SR^2) (z / (SR - SR*))^2, per-period
    Sharpe ratios, g4 non-excess. Infinite where SR <= SR*; NaN where the PSR is undefined."""
    if psr.reason is not None:
        return math.nan
    root = math.sqrt(periods)
    sr, sr_star = psr.sharpe / root, psr.benchmark_sharpe / root
    if sr <= sr_star:
        return math.inf
    var = 1.0 - psr.skewness * sr + (psr.kurtosis - 1.0) / 4.0 * sr**2
    return 1.0 + var * (float(norm.ppf(confidence)) / (sr - sr_star)) ** 2
