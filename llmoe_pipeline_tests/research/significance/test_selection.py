"""Deflated Sharpe ratio, minimum track record and probability of backtest overfitting: the papers' numbers, hand
computations, and PBO near 0.5 for noise and near 0 when one configuration truly dominates."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kurtosis, norm, skew

from llmoe_pipeline.research.significance.selection import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probability_of_backtest_overfitting,
)
from llmoe_pipeline.research.significance.sharpe import (
    minimum_track_record,
    probabilistic_sharpe_ratio,
    psr_from_moments,
)
from llmoe_pipeline.research.significance.track_record import configuration_returns, selection, track_record


def test_deflated_sharpe_ratio_reproduces_the_papers_example():
    """Bailey & Lopez de Prado (2014), section 4: SR 2.5 a year over 1,250 days, 100 trials whose Sharpe ratios
    vary 0.5 a year, skewness -3, kurtosis 10: SR0 = 0.1132 a day and DSR = 0.9004."""
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=1e-4)
    assert psr_from_moments(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0) == pytest.approx(0.9004, abs=1e-4)


def test_kurtosis_is_not_excess():
    """The PSR's denominator takes the raw kurtosis (3 for the normal); passing an excess one (0) is a different,
    wrong, number: the mistake the issue warns some libraries make."""
    right = psr_from_moments(0.1, 0.0, 250, 0.0, 3.0)
    assert right == pytest.approx(norm.cdf(0.1 * math.sqrt(249) / math.sqrt(1 + 0.5 * 0.01)))
    assert psr_from_moments(0.1, 0.0, 250, 0.0, 0.0) != pytest.approx(right, abs=1e-4)


def test_deflated_sharpe_ratio_of_returns_by_hand():
    rng = np.random.default_rng(1)
    x = 0.0008 + 0.01 * rng.standard_t(5, 750)
    trials = [0.3, -0.2, 0.9, 0.1, 1.4, 0.5, -0.6, 0.0]  # annualised
    res = deflated_sharpe_ratio(x, trials)
    v = np.var(trials, ddof=1)
    sr0 = math.sqrt(v) * ((1 - 0.5772156649) * norm.ppf(1 - 1 / 8) + 0.5772156649 * norm.ppf(1 - 1 / (8 * math.e)))
    sr = x.mean() / x.std(ddof=1)
    g3, g4 = skew(x), kurtosis(x, fisher=False)
    expected = norm.cdf((sr - sr0 / math.sqrt(252)) * math.sqrt(749) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert res.sr0 == pytest.approx(sr0) and res.dsr == pytest.approx(expected, rel=1e-9)
    assert res.n_trials == 8 and res.dsr < probabilistic_sharpe_ratio(x).psr  # deflating lowers it
    assert deflated_sharpe_ratio(x, [0.5]).reason is not None


def test_minimum_track_record_by_hand_and_at_that_length_the_psr_is_the_confidence():
    rng = np.random.default_rng(2)
    x = 0.001 + 0.01 * rng.standard_t(6, 1000)
    psr = probabilistic_sharpe_ratio(x, benchmark_sharpe=0.5)
    sr, sr_star = x.mean() / x.std(ddof=1), 0.5 / math.sqrt(252)
    g3, g4 = skew(x), kurtosis(x, fisher=False)
    expected = 1 + (1 - g3 * sr + (g4 - 1) / 4 * sr**2) * (norm.ppf(0.95) / (sr - sr_star)) ** 2
    days = minimum_track_record(psr)
    assert days == pytest.approx(expected, rel=1e-9)
    assert psr_from_moments(sr, sr_star, days, g3, g4) == pytest.approx(0.95, abs=1e-9)
    assert minimum_track_record(probabilistic_sharpe_ratio(x, benchmark_sharpe=10.0)) == math.inf


def test_pbo_by_hand():
    """Two blocks of two days (the first day dropped to make them equal): each half's in-sample winner is the
    other half's worst, so PBO = 1 and both logits are log(1/3)."""
    returns = np.array(
        [
            [9.00, -9.00, 9.00],  # dropped: 5 days, 2 blocks of 2
            [0.01, 0.00, -0.01],
            [0.03, 0.02, 0.01],
            [-0.01, 0.00, 0.02],
            [0.00, 0.02, 0.05],
        ]
    )
    res = probability_of_backtest_overfitting(returns, blocks=2)
    assert res.pbo == 1.0 and res.combinations == 2 and res.n_days == 5
    assert res.logit_median == pytest.approx(math.log(1 / 3))


def test_pbo_is_near_one_half_for_noise_and_near_zero_for_a_dominant_configuration():
    rng = np.random.default_rng(3)
    noise = [probability_of_backtest_overfitting(rng.normal(0, 0.01, (502, 40))).pbo for _ in range(30)]
    assert 0.4 <= float(np.mean(noise)) <= 0.6, f"mean PBO of 30 noise matrices {np.mean(noise):.3f}"
    m = rng.normal(0, 0.01, (502, 40))
    m[:, 17] += 0.003  # Sharpe about 4.8 a year against 0
    assert probability_of_backtest_overfitting(m).pbo < 0.05


def test_pbo_refuses_bad_input():
    with pytest.raises(ValueError, match="even"):
        probability_of_backtest_overfitting(np.zeros((100, 3)), blocks=5)
    assert probability_of_backtest_overfitting(np.zeros((10, 3)), blocks=16).reason is not None


def _returns(rng, n=300):
    dates = pd.bdate_range("2015-01-01", periods=n)
    asset = pd.Series(rng.normal(0.0005, 0.01, n), index=dates)
    pos = (rng.random(n) > 0.4).astype(float)
    frame = pd.DataFrame({"LLMoE": pos * asset, "MLP": asset * (rng.random(n) > 0.5), "Buy&Hold": asset})
    return frame, asset


def test_configuration_returns_trade_all_in_all_out_with_costs():
    rng = np.random.default_rng(4)
    _, asset = _returns(rng, 5)
    positions = pd.DataFrame({"date": asset.index, "a": [1, 1, 0, 0, 1], "b": [0, 0, 0, 0, 0]})
    out = configuration_returns(positions, asset, cost_bps=10)
    expected = asset.to_numpy() * [1, 1, 0, 0, 1] - 0.001 * np.array([1, 0, 1, 0, 1])
    np.testing.assert_allclose(out["a"].to_numpy(), expected)
    assert (out["b"] == 0).all()
    # A test day added after the search has no positions: the statistics use the days the grid covers.
    assert list(configuration_returns(positions.iloc[:4], asset, 0.0).index) == list(asset.index[:4])
    with pytest.raises(ValueError, match="none of the test days"):
        configuration_returns(positions.assign(date=positions["date"] - pd.Timedelta(days=400)), asset, 0.0)


def test_selection_counts_every_configuration_and_deflates_the_reported_model():
    rng = np.random.default_rng(5)
    frame, asset = _returns(rng)
    grid = {
        "LLMoE": pd.DataFrame({"date": asset.index, **{f"c{i}": rng.random(len(asset)) > 0.5 for i in range(12)}}),
        "LLMoE[momentum]": pd.DataFrame(
            {"date": asset.index, **{f"m{i}": rng.random(len(asset)) > 0.5 for i in range(6)}}
        ),
    }
    out = selection(frame, grid, reported="LLMoE", blocks=8)
    assert out["configurations_per_variant"] == {"LLMoE": 12, "LLMoE[momentum]": 6}
    assert out["days"] == {"n": 300, "first": "2015-01-01", "last": "2016-02-24"}
    shorter = selection(frame, {k: v.iloc[:-10] for k, v in grid.items()}, reported="LLMoE", blocks=8)
    assert shorter["days"]["n"] == 290 and shorter["deflated"]["n_days"] == 290
    assert out["deflated"]["n_trials"] == 18 and out["deflated_own_grid"]["n_trials"] == 12
    assert out["pbo"]["combinations"] == math.comb(8, 4) and 0 <= out["pbo"]["pbo"] <= 1
    assert selection(frame, {}, reported="LLMoE")["reason"].startswith("no grid configurations")


def test_track_record_against_zero_and_buy_and_hold():
    frame, _ = _returns(np.random.default_rng(6))
    rows = track_record(frame)
    assert [(r["model"], r["against"]) for r in rows] == [("LLMoE", "zero"), ("LLMoE", "Buy&Hold")]
    zero, bench = rows
    assert zero["psr"] == pytest.approx(probabilistic_sharpe_ratio(frame["LLMoE"]).psr)
    assert bench["benchmark_sharpe"] == pytest.approx(probabilistic_sharpe_ratio(frame["Buy&Hold"]).sharpe)
    for r in rows:
        if r["min_track_record_days"] is not None:
            assert r["reached"] == (r["min_track_record_days"] <= r["n_days"])
        else:
            assert r["reason"] and not r["reached"]
