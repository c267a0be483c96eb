"""HAC long-run covariance: kernels, Newey-West against statsmodels, Andrews' bandwidth, prewhitening."""

import numpy as np
import pytest
from statsmodels.stats.sandwich_covariance import S_hac_simple

from llmoe_pipeline.research.significance.hac import andrews_bandwidth, kernel_weight, long_run_covariance


def test_kernel_weights_follow_their_formulas():
    x = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
    parzen = [1.0, 1 - 6 / 16 + 6 / 64, 1 - 6 / 4 + 6 / 8, 2 * 0.25**3, 0.0, 0.0]
    np.testing.assert_allclose(kernel_weight("parzen", x), parzen, atol=1e-15)
    np.testing.assert_allclose(kernel_weight("bartlett", x), [1, 0.75, 0.5, 0.25, 0, 0], atol=1e-15)
    z = 6 * np.pi / 5
    qs_at_1 = 25 / (12 * np.pi**2) * (np.sin(z) / z - np.cos(z))
    np.testing.assert_allclose(kernel_weight("qs", np.array([0.0, 1e-6, 1.0])), [1.0, 1.0, qs_at_1], atol=1e-9)
    with pytest.raises(ValueError, match="unknown kernel"):
        kernel_weight("triangle", x)  # type: ignore[arg-type]


def test_newey_west_matches_statsmodels():
    rng = np.random.default_rng(5)
    v = rng.standard_normal((300, 3))
    v[1:] += 0.4 * v[:-1]
    v -= v.mean(axis=0)
    for lags in (0, 3, 7):
        psi, s = long_run_covariance(v, kernel="bartlett", bandwidth=lags + 1, prewhiten=False)
        assert s == lags + 1
        np.testing.assert_allclose(psi, S_hac_simple(v, nlags=lags) / (len(v) - v.shape[1]), rtol=1e-12)


def test_andrews_bandwidth_of_one_ar1_column():
    rng = np.random.default_rng(6)
    e = rng.standard_normal(2000)
    x = np.zeros_like(e)
    for t in range(1, len(e)):
        x[t] = 0.5 * x[t - 1] + e[t]
    rho = np.polyfit(x[:-1], x[1:], 1)[0]
    alpha2 = 4 * rho**2 / (1 - rho) ** 4  # the innovation variance cancels for one column
    alpha1 = 4 * rho**2 / ((1 - rho) ** 2 * (1 + rho) ** 2)
    assert andrews_bandwidth(x[:, None], "parzen") == pytest.approx(2.6614 * (alpha2 * len(x)) ** 0.2, rel=1e-10)
    assert andrews_bandwidth(x[:, None], "qs") == pytest.approx(1.3221 * (alpha2 * len(x)) ** 0.2, rel=1e-10)
    assert andrews_bandwidth(x[:, None], "bartlett") == pytest.approx(1.1447 * (alpha1 * len(x)) ** (1 / 3), rel=1e-10)


@pytest.mark.parametrize("kernel", ["parzen", "qs", "bartlett"])
@pytest.mark.parametrize("prewhiten", [True, False])
def test_long_run_covariance_of_a_var1_is_close_to_the_truth(kernel, prewhiten):
    rng = np.random.default_rng(7)
    a = np.array([[0.5, 0.1], [0.0, 0.3]])
    e = rng.standard_normal((4000, 2))
    v = np.zeros_like(e)
    for t in range(1, len(e)):
        v[t] = a @ v[t - 1] + e[t]
    inv = np.linalg.inv(np.eye(2) - a)
    truth = inv @ inv.T  # (I - A)^-1 Sigma (I - A)^-T, Sigma = I
    psi, _ = long_run_covariance(v - v.mean(axis=0), kernel=kernel, prewhiten=prewhiten)
    np.testing.assert_allclose(psi, truth, rtol=0.2, atol=0.15)


def test_too_short_input_is_refused():
    with pytest.raises(ValueError, match="T > p"):
        long_run_covariance(np.zeros((5, 4)))
