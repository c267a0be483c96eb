"""Probabilistic Sharpe Ratio: a hand computation, its normal limit, and calibration under a zero Sharpe."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from llmoe_pipeline.research.significance.sharpe import probabilistic_sharpe_ratio
from llmoe_pipeline.trading.metrics import sharpe_ratio


def test_matches_a_hand_computation():
    x = [0.012, -0.004, 0.007, 0.021, -0.015, 0.003, 0.009, -0.001, 0.030, -0.008]
    n = len(x)
    mean = sum(x) / n
    m2, m3, m4 = (sum((v - mean) ** k for v in x) / n for k in (2, 3, 4))
    sr = mean / math.sqrt(m2 * n / (n - 1))
    skew, kurt = m3 / m2**1.5, m4 / m2**2
    sr_star = 1.0 / math.sqrt(252)
    expected = norm.cdf((sr - sr_star) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    res = probabilistic_sharpe_ratio(x, benchmark_sharpe=1.0)
    assert res.psr == pytest.approx(expected, rel=1e-12)
    assert (res.skewness, res.kurtosis) == (pytest.approx(skew), pytest.approx(kurt))
    assert res.sharpe == pytest.approx(sharpe_ratio(x), rel=1e-12) and res.n == n and res.reason is None


def test_limits():
    rng = np.random.default_rng(0)
    x = 0.0005 + 0.01 * rng.standard_normal(1000)
    res = probabilistic_sharpe_ratio(x)
    sr = x.mean() / x.std(ddof=1)
    assert res.psr == pytest.approx(norm.cdf(sr * math.sqrt(999)), abs=0.01)  # normal returns, small SR
    assert probabilistic_sharpe_ratio(x, benchmark_sharpe=res.sharpe).psr == pytest.approx(0.5, abs=1e-12)
    psrs = [probabilistic_sharpe_ratio(x, benchmark_sharpe=s).psr for s in (-1.0, 0.0, 1.0, 2.0)]
    assert psrs == sorted(psrs, reverse=True)  # a higher bar is less likely to be cleared
    assert probabilistic_sharpe_ratio(np.r_[x, x]).psr > res.psr > 0.5  # more evidence of a positive SR


@pytest.mark.parametrize("dist", ["normal", "t4"])
def test_zero_sharpe_gives_uniform_psr(dist):
    rng = np.random.default_rng(1 if dist == "normal" else 2)
    draws = rng.standard_normal((1500, 250)) if dist == "normal" else rng.standard_t(4, (1500, 250))
    psr = np.array([probabilistic_sharpe_ratio(0.01 * d).psr for d in draws])
    assert psr.mean() == pytest.approx(0.5, abs=0.03)
    assert 0.03 <= (psr > 0.95).mean() <= 0.075 and 0.03 <= (psr < 0.05).mean() <= 0.075


def test_degenerate_series():
    cash = probabilistic_sharpe_ratio(np.zeros(100))
    assert math.isnan(cash.psr) and "constant" in cash.reason
    assert "too few" in probabilistic_sharpe_ratio([0.01, 0.02]).reason
    with pytest.raises(ValueError, match="periods"):
        probabilistic_sharpe_ratio([0.01, 0.02, 0.03], periods=0)
