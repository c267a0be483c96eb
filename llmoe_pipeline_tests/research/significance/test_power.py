"""Power and minimum detectable effect of the Sharpe-difference test: calibration under no effect, agreement of the
bootstrap power estimate with the Monte-Carlo rejection rate under a planted gap, closed forms and equivalence."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest, norm, wilcoxon

from llmoe_pipeline.research.significance.ledoit_wolf import sharpe_diff_bootstrap
from llmoe_pipeline.research.significance.power import (
    CURVE_GAPS,
    closed_form_power,
    closed_form_se,
    sharpe_diff_power,
    wilcoxon_power,
)
from llmoe_pipeline_tests.research.significance.simulate import garch_pairs

N_DAYS = 502  # the paper's test period
REPS = 499


def _rejection_rate(pairs: np.ndarray, seed: int) -> tuple[float, int]:
    rng = np.random.default_rng(seed)
    rejected = sum(sharpe_diff_bootstrap(x[:, 0], x[:, 1], reps=REPS, seed=rng).p_value <= 0.05 for x in pairs)
    return rejected / len(pairs), int(rejected)


def test_null_calibration_500_replications():
    """Equal Sharpe ratios (0.5), correlated 0.5, GARCH-t (8 df), AR(1) 0.1: at most 6 % rejections at 5 %."""
    pairs = garch_pairs(500, N_DAYS, np.random.default_rng(7))
    rate, rejected = _rejection_rate(pairs, seed=8)
    ci = binomtest(rejected, len(pairs)).proportion_ci(0.95)
    assert rate <= 0.06, f"rejected {rejected} of 500 (rate {rate:.3f}, 95 % CI [{ci.low:.3f}, {ci.high:.3f}])"


def _estimates(pairs: np.ndarray, gap: float) -> list[float]:
    out = []
    for i, x in enumerate(pairs):
        test = sharpe_diff_bootstrap(x[:, 0], x[:, 1], reps=1999, seed=i)
        out.append(sharpe_diff_power(x[:, 0], x[:, 1], test, gap=gap, simulations=1000, seed=i).power_at_gap)
    return out


@pytest.mark.parametrize("gap", [1.5, 2.2])
def test_bootstrap_power_matches_the_monte_carlo_rejection_rate(gap):
    """The same data-generating process with the gap planted: 500 Monte-Carlo samples give the test's true power;
    the bootstrap estimate (averaged over 20 samples, each estimating from its own data) is within 5 points."""
    rng = np.random.default_rng(int(gap * 10))
    pairs = garch_pairs(500, N_DAYS, rng, sharpe=(0.5 + gap, 0.5), rho=0.5)
    true_power, _ = _rejection_rate(pairs, seed=11)
    estimate = float(np.mean(_estimates(pairs[:20], gap)))
    assert abs(estimate - true_power) <= 0.05, f"gap {gap}: estimate {estimate:.3f}, Monte Carlo {true_power:.3f}"


@pytest.fixture(scope="module")
def one_pair():
    x = garch_pairs(1, N_DAYS, np.random.default_rng(3), sharpe=(1.0, 0.5), rho=0.6)[0]
    test = sharpe_diff_bootstrap(x[:, 0], x[:, 1], reps=1999, seed=0)
    return x[:, 0], x[:, 1], test, sharpe_diff_power(x[:, 0], x[:, 1], test, gap=1.0, seed=0)


def test_power_curve_rises_from_the_level_to_one_and_the_mde_reaches_the_target(one_pair):
    a, b, test, res = one_pair
    curve = dict(res.power_curve)
    assert tuple(curve) == CURVE_GAPS
    assert curve[0.0] == pytest.approx(0.05, abs=0.03)  # the level, where nothing is planted
    values = list(curve.values())
    assert all(later >= earlier - 0.02 for earlier, later in zip(values, values[1:]))  # monotone up to noise
    assert 0.0 < res.mde < 3.0 and res.power_at_gap == pytest.approx(curve[1.0])
    again = sharpe_diff_power(a, b, test, gap=res.mde, seed=0)
    assert again.power_at_gap == pytest.approx(0.8, abs=0.01)
    assert res.reason is None and res.n_days == N_DAYS and res.block_length == test.block_length


def test_closed_form_cross_check(one_pair):
    """Jobson-Korkie-Memmel/Mertens: within 25 % of the simulated MDE on these returns (iid formulas, GARCH data)."""
    a, b, test, res = one_pair
    assert res.mde_closed_form == pytest.approx(res.mde, rel=0.25)
    se = closed_form_se(a, b, 252)
    assert res.mde_closed_form == pytest.approx((norm.ppf(0.975) + norm.ppf(0.8)) * se)
    assert closed_form_power(res.mde_closed_form, se, 0.05) == pytest.approx(0.8, abs=0.001)


def test_closed_form_se_equals_jobson_korkie_memmel_for_normal_moments():
    """With skewness 0 and kurtosis 3 the Mertens terms vanish: the textbook JK-Memmel variance by hand."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((100_000, 2))
    a, b = 0.01 * z[:, 0] + 0.001, 0.01 * (0.3 * z[:, 0] + math.sqrt(1 - 0.09) * z[:, 1])
    sa, sb = a.mean() / a.std(), b.mean() / b.std()
    rho = np.corrcoef(a, b)[0, 1]
    jk = (2 - 2 * rho + 0.5 * (sa**2 + sb**2 - 2 * sa * sb * rho**2)) / len(a)
    assert closed_form_se(a, b, 252) == pytest.approx(math.sqrt(jk * 252), rel=0.01)


def test_equivalence_bound_is_the_90_percent_interval_edge(one_pair):
    _, _, test, res = one_pair
    assert res.ruled_out_above == pytest.approx(abs(test.diff) + test.equivalence_critical_value * test.se)
    assert test.equivalence_critical_value < test.critical_value  # 90 % quantile below the 95 % one
    assert res.ruled_out_above > abs(test.diff)


def test_undefined_test_gives_a_reason():
    a = np.full(N_DAYS, 0.0)
    b = np.random.default_rng(0).normal(0, 0.01, N_DAYS)
    test = sharpe_diff_bootstrap(a, b, reps=99)
    res = sharpe_diff_power(a, b, test)
    assert math.isnan(res.mde) and "constant" in res.reason


def test_wilcoxon_power_is_calibrated_and_finds_a_planted_shift():
    rng = np.random.default_rng(5)
    d = rng.normal(0.0, 0.8, 22)
    res = wilcoxon_power(d, gap=1.0, simulations=400, seed=1)
    assert wilcoxon_power(d, gap=0.0, simulations=400, seed=1).power_at_gap <= 0.08
    # direct check of the planted shift at the MDE
    centred = d - d.mean()
    draws = centred[np.random.default_rng(9).integers(22, size=(2000, 22))] + res.mde
    direct = float(np.mean(wilcoxon(draws, axis=1, method="approx").pvalue <= 0.05))
    assert direct == pytest.approx(0.8, abs=0.05)
    assert res.mde_closed_form == pytest.approx(res.mde, rel=0.2)  # t approximation, Wilcoxon efficiency 3/pi
    assert res.power_at_gap > 0.95  # 1.0 is well above this MDE (about 0.5)
    assert wilcoxon_power(d[:5]).reason is not None
