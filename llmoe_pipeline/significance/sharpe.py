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

from llmoe_pipeline.metrics import validate_returns


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


def probabilistic_sharpe_ratio(returns, benchmark_sharpe: float = 0.0, periods: int = 252) -> PSRResult:
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
    ann, sr_star = math.sqrt(periods), benchmark_sharpe / math.sqrt(periods)
    var = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2  # >= (1 - g3 SR / 2)^2 >= 0, as kurt >= skew^2 + 1
    if not var > 0:
        return PSRResult(nan, sr * ann, benchmark_sharpe, g3, g4, n, reason="zero variance of the Sharpe estimate")
    psr = float(norm.cdf((sr - sr_star) * math.sqrt(n - 1) / math.sqrt(var)))
    return PSRResult(psr, sr * ann, benchmark_sharpe, g3, g4, n)
