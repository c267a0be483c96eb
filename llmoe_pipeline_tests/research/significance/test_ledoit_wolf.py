"""Ledoit-Wolf test of equal Sharpe ratios: hand computation, invariances, degenerate inputs, the bootstrap
against arch's resampling, and by simulation its size, power and agreement with the HAC test."""

import math

import numpy as np
import pytest
from arch.bootstrap import CircularBlockBootstrap
from scipy.stats import norm

from llmoe_pipeline.research.significance.hac import kernel_weight
from llmoe_pipeline.research.significance.ledoit_wolf import (
    _bootstrap_statistics,
    _influence,
    circular_block_starts,
    sharpe_diff_bootstrap,
    sharpe_diff_hac,
)
from llmoe_pipeline.trading.metrics import sharpe_ratio
from llmoe_pipeline_tests.research.significance.simulate import garch_pairs, strategy_pairs

REPS = 399  # bootstrap replications in the simulations: a 5 % test rejects when at most 19 of 399 exceed


def _pair(n=500, seed=1, sharpe=(1.0, 0.5)):
    return garch_pairs(1, n, np.random.default_rng(seed), sharpe=sharpe)[0].T


def _hand_hac_statistic(a, b, bandwidth, prewhiten):
    """Ledoit & Wolf's delta-method statistic by explicit loops (Parzen kernel, fixed bandwidth), on the
    series divided by their standard deviations (which only matters for the cap on the VAR(1) coefficients)."""
    n = len(a)
    a, b = [x / float(np.std(a)) for x in a], [x / float(np.std(b)) for x in b]
    mu_a, mu_b = sum(a) / n, sum(b) / n
    g_a, g_b = sum(x * x for x in a) / n, sum(x * x for x in b) / n
    delta = mu_a / math.sqrt(g_a - mu_a**2) - mu_b / math.sqrt(g_b - mu_b**2)
    grad = np.array([g_a / (g_a - mu_a**2) ** 1.5, -g_b / (g_b - mu_b**2) ** 1.5,
                     -mu_a / (2 * (g_a - mu_a**2) ** 1.5), mu_b / (2 * (g_b - mu_b**2) ** 1.5)])  # fmt: skip
    v = np.array([[a[t] - mu_a, b[t] - mu_b, a[t] ** 2 - g_a, b[t] ** 2 - g_b] for t in range(n)])
    if prewhiten:
        lagged, current = v[:-1], v[1:]
        coef = sum(np.outer(current[t], lagged[t]) for t in range(n - 1)) @ np.linalg.inv(
            sum(np.outer(lagged[t], lagged[t]) for t in range(n - 1))
        )
        u, d, vt = np.linalg.svd(coef)
        coef = u @ np.diag([min(x, 0.97) for x in d]) @ vt  # singular values capped, as in Ledoit & Wolf's code
        v = current - lagged @ coef.T
    t_len = len(v)
    psi = sum(np.outer(v[t], v[t]) for t in range(t_len)) / t_len
    for j in range(1, t_len):
        w = float(kernel_weight("parzen", np.array(j / bandwidth)))
        gamma = sum(np.outer(v[t], v[t - j]) for t in range(j, t_len)) / t_len
        psi = psi + w * (gamma + gamma.T)
    psi = psi * t_len / (t_len - 4)
    if prewhiten:
        recolour = np.linalg.inv(np.eye(4) - coef)
        psi = recolour @ psi @ recolour.T
    return delta, delta / math.sqrt(grad @ psi @ grad / n)


@pytest.mark.parametrize("prewhiten", [False, True])
def test_hac_statistic_matches_a_hand_computation(prewhiten):
    rng = np.random.default_rng(3)
    a = 0.001 + 0.01 * rng.standard_normal(30)
    b = 0.5 * a + 0.01 * rng.standard_normal(30)
    a, b = list(a), list(b)
    delta, z = _hand_hac_statistic(a, b, bandwidth=3.0, prewhiten=prewhiten)
    res = sharpe_diff_hac(a, b, periods=1, prewhiten=prewhiten, bandwidth=3.0)
    assert res.statistic == pytest.approx(z, rel=1e-9)
    assert res.p_value == pytest.approx(2 * norm.sf(abs(z)), rel=1e-9)
    assert res.diff == pytest.approx(delta * math.sqrt(29 / 30), rel=1e-12)  # ddof=1 Sharpe ratios
    assert res.se == pytest.approx(res.diff / res.statistic, rel=1e-12)


def test_sharpe_ratios_are_the_metrics_ones_and_the_tests_are_scale_free():
    a, b = _pair()
    boot, hac = sharpe_diff_bootstrap(a, b, reps=199, seed=4), sharpe_diff_hac(a, b)
    for res in (boot, hac):
        assert res.sharpe_a == pytest.approx(sharpe_ratio(a), rel=1e-12)
        assert res.sharpe_b == pytest.approx(sharpe_ratio(b), rel=1e-12)
        assert res.diff == pytest.approx(sharpe_ratio(a) - sharpe_ratio(b), rel=1e-10)
    assert (boot.method, hac.method, boot.reps, hac.reps) == ("bootstrap", "hac", 199, None)
    scaled = sharpe_diff_bootstrap(3 * a, 0.5 * b, reps=199, seed=4)
    assert (scaled.p_value, scaled.block_length) == (boot.p_value, boot.block_length)
    assert sharpe_diff_hac(3 * a, 0.5 * b).p_value == pytest.approx(hac.p_value, rel=1e-9)
    assert sharpe_diff_bootstrap(a, b, reps=199, seed=4) == boot  # seeded: reproducible
    swapped = sharpe_diff_bootstrap(b, a, reps=199, seed=4)
    assert swapped.diff == pytest.approx(-boot.diff) and swapped.p_value == boot.p_value


def test_degenerate_inputs_give_a_reason_not_an_error():
    a, b = _pair()
    for test in (sharpe_diff_hac, sharpe_diff_bootstrap):
        cash = test(a, np.zeros_like(a))
        assert math.isnan(cash.p_value) and "b constant" in cash.reason and math.isnan(cash.sharpe_b)
        assert cash.sharpe_a == pytest.approx(sharpe_ratio(a))
        both = test(np.full(50, 0.001), np.zeros(50))
        assert math.isnan(both.p_value) and "a and b constant" in both.reason
        same = test(a, a.copy())
        assert (same.p_value, same.diff, same.reason) == (1.0, 0.0, "identical series")
        short = test(a[:10], b[:10])
        assert math.isnan(short.p_value) and "too few days" in short.reason
        nearly = a.copy()
        nearly[[5, 300]] = 0.0  # out of the market on two days
        close = test(a, nearly)
        assert 0.0 < close.p_value <= 1.0 and close.reason is None
        with pytest.raises(ValueError, match="same days"):
            test(a, b[:-1])
        with pytest.raises(ValueError, match="finite"):
            test(np.where(np.arange(len(a)) == 7, np.nan, a), b)
    with pytest.raises(ValueError, match="block_length"):
        sharpe_diff_bootstrap(a, b, block_length=len(a))


def test_resampling_is_arch_circular_block_bootstrap():
    n, b, reps = 103, 7, 5
    bs = CircularBlockBootstrap(b, np.arange(n), seed=np.random.default_rng(11))
    arch_idx = np.stack([pos[0] for pos, _ in bs.bootstrap(reps)])
    starts = circular_block_starts(n, b, reps, np.random.default_rng(11))
    ours = ((starts[:, :, None] + np.arange(b)) % n).reshape(reps, -1)
    assert ours.shape == (reps, (n // b) * b)
    np.testing.assert_array_equal(ours, arch_idx[:, : ours.shape[1]])


def test_bootstrap_statistics_match_direct_resampling():
    a, b = _pair(n=203)
    x = np.column_stack([a / a.std(), b / b.std()])
    delta = _influence(x)[0]
    block, starts = 5, circular_block_starts(len(x), 5, 4, np.random.default_rng(2))
    fast = _bootstrap_statistics(x, delta, block, starts)
    for r in range(len(starts)):
        xs = x[((starts[r][:, None] + np.arange(block)) % len(x)).ravel()]
        delta_s, grad, y = _influence(xs)
        zeta = np.sqrt(block) * y.reshape(len(starts[r]), block, 4).mean(axis=1)
        psi = zeta.T @ zeta / len(zeta)
        assert fast[r] == pytest.approx(abs(delta_s - delta) / math.sqrt(grad @ psi @ grad / len(xs)), rel=1e-9)


def _simulate(pairs, seed):
    rng = np.random.default_rng(seed)
    boot = np.array([sharpe_diff_bootstrap(x[:, 0], x[:, 1], reps=REPS, seed=rng).p_value for x in pairs])
    hac = np.array([sharpe_diff_hac(x[:, 0], x[:, 1]).p_value for x in pairs])
    return boot, hac


@pytest.fixture(scope="module")
def null_pvalues():
    """Equal Sharpe ratios, 500 days: 400 correlated GARCH-t AR(1) pairs and 300 pairs of long/cash strategies."""
    garch = _simulate(garch_pairs(400, 500, np.random.default_rng(100)), seed=101)
    strategies = _simulate(strategy_pairs(300, 500, np.random.default_rng(200)), seed=201)
    return {"garch": garch, "strategies": strategies}


@pytest.mark.parametrize("case", ["garch", "strategies"])
def test_five_percent_test_is_calibrated(null_pvalues, case):
    boot, hac = null_pvalues[case]
    for name, p in (("bootstrap", boot), ("hac", hac)):
        rate = float((p <= 0.05).mean())
        assert 0.02 <= rate <= 0.09, f"{case} {name}: rejection rate {rate:.3f} over {len(p)} simulations"


@pytest.mark.parametrize("case", ["garch", "strategies"])
def test_bootstrap_and_hac_p_values_agree(null_pvalues, case):
    boot, hac = null_pvalues[case]
    close = float((np.abs(boot - hac) < 0.05).mean())
    same = float(((boot <= 0.05) == (hac <= 0.05)).mean())
    assert close >= 0.9 and same >= 0.9, f"{case}: |dp| < 0.05 in {close:.3f}, same decision in {same:.3f}"


def test_power_against_sharpe_0_vs_2():
    pairs = garch_pairs(200, 500, np.random.default_rng(300), sharpe=(0.0, 2.0), rho=0.5)
    boot, hac = _simulate(pairs, seed=301)
    power = float((boot <= 0.05).mean())
    assert power >= 0.6, f"bootstrap rejects in {power:.3f} of 200 simulations"
    assert abs(power - float((hac <= 0.05).mean())) <= 0.05


def test_agreement_on_real_prices(aapl_msft_prices):
    """AAPL vs MSFT and each stock vs a 20-day trend rule on it, in 500-day windows: the two p-values agree."""
    ret = aapl_msft_prices.pivot(index="date", columns="ticker", values="adj_close").pct_change().dropna()
    pairs = []
    for start in range(0, len(ret) - 499, 500):
        window = ret.iloc[start : start + 500]
        pairs.append((window["AAPL"].to_numpy(), window["MSFT"].to_numpy()))
        for ticker in ("AAPL", "MSFT"):
            trend = (ret[ticker].rolling(20).sum().shift(1) > 0).iloc[start : start + 500].to_numpy()
            pairs.append((trend * window[ticker].to_numpy(), window[ticker].to_numpy()))
    agree = []
    for i, (a, b) in enumerate(pairs):
        boot, hac = sharpe_diff_bootstrap(a, b, reps=999, seed=i), sharpe_diff_hac(a, b)
        agree.append(abs(boot.p_value - hac.p_value) < 0.05 or (boot.p_value <= 0.05) == (hac.p_value <= 0.05))
    assert len(pairs) >= 12 and np.mean(agree) >= 0.9
