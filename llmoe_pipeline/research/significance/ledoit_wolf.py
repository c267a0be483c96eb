"""Ledoit & Wolf (2008), "Robust performance hypothesis testing with the Sharpe ratio": H0 SR_a = SR_b.

Two return series on the same days. Two tests of the same statistic, the difference of Sharpe ratios:
- `sharpe_diff_hac`: delta method with a kernel HAC standard error (their Section 3.1; R
  `PeerPerformance::sharpeTesting` type 1);
- `sharpe_diff_bootstrap`: the studentized circular block bootstrap (their Algorithm 3.1, Remark 3.2;
  type 2): the observed statistic is studentized by the prewhitened-Parzen HAC error, each bootstrap
  statistic by the block-bootstrap variance of Goetze & Kuensch (1996), centred at the sample difference.
Each series is first divided by its own standard deviation: Sharpe ratios are scale-free, and so then is
the automatic bandwidth. Reported Sharpe ratios are annualised like `metrics.sharpe_ratio` (ddof=1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from arch.bootstrap import optimal_block_length
from scipy.stats import norm

from llmoe_pipeline.catalog import TRADING_DAYS_PER_YEAR
from llmoe_pipeline.research.significance.hac import Kernel, long_run_covariance
from llmoe_pipeline.trading.metrics import validate_returns

MIN_OBS = 20
_CHUNK_ELEMENTS = 2_000_000  # replications run in chunks of reps * T <= this (memory)


@dataclass(frozen=True)
class SharpeDiffTest:
    """Result of a test of equal Sharpe ratios; p_value is NaN (with a reason) when the test is undefined."""

    method: str  # "bootstrap" or "hac"
    n: int
    sharpe_a: float  # annualised, ddof=1
    sharpe_b: float
    diff: float  # sharpe_a - sharpe_b
    se: float  # standard error of diff, same units
    statistic: float  # diff / se
    p_value: float  # two-sided
    block_length: int | None = None
    reps: int | None = None
    reason: str | None = None
    # bootstrap only: the 95 % and 90 % quantiles of |diff* - diff| / se*: the test rejects at 5 % when
    # |statistic| exceeds the first; diff ± the second × se is the 90 % interval of two one-sided tests (TOST)
    critical_value: float | None = None
    equivalence_critical_value: float | None = None


def sharpe_difference(mu: np.ndarray, gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From (..., 2) means and mean squares: the per-period Sharpe difference (ddof=0) and its gradient
    (..., 4) with respect to (mu_a, mu_b, gamma_a, gamma_b). NaN where a variance is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(gamma - mu**2)
        sr = mu / sd
        sign = np.array([1.0, -1.0])
        grad = np.concatenate([sign * gamma / sd**3, -sign * mu / (2 * sd**3)], axis=-1)
    return sr[..., 0] - sr[..., 1], grad


def _influence(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Sharpe difference, gradient and the centred moment series y_t = (x_t - mu, x_t^2 - gamma), (T, 4)."""
    mu = x.mean(axis=0)
    gamma = mu**2 + ((x - mu) ** 2).mean(axis=0)
    delta, grad = sharpe_difference(mu, gamma)
    return float(delta), grad, np.column_stack([x - mu, x**2 - gamma])


def _prepare(a, b, method: str, periods: int) -> tuple[np.ndarray | None, SharpeDiffTest | None, float]:
    """Validated (T, 2) data, each column divided by its standard deviation, or the result of an undefined or
    trivial case (p NaN with a reason; identical series: p = 1); plus the annualiser of a ddof=0 Sharpe ratio
    to the ddof=1 annualised one, sqrt(periods * (T - 1) / T)."""
    if periods <= 0:
        raise ValueError(f"periods must be positive, got {periods}")
    xa, xb = validate_returns(a, "a"), validate_returns(b, "b")
    if xa.shape != xb.shape:
        raise ValueError(f"a and b must cover the same days: lengths {xa.size} and {xb.size}")
    n = xa.size
    ann = math.sqrt(periods * (n - 1) / n)
    sa, sb = (float(x.mean() / x.std()) * ann if n > 1 and np.ptp(x) > 0 else math.nan for x in (xa, xb))
    nan = math.nan
    constant = " and ".join(name for name, x in (("a", xa), ("b", xb)) if np.ptp(x) == 0)
    if n < MIN_OBS:
        return (
            None,
            SharpeDiffTest(method, n, sa, sb, nan, nan, nan, nan, reason=f"too few days ({n} < {MIN_OBS})"),
            ann,
        )
    if constant:
        why = f"series {constant} constant (e.g. all cash): its Sharpe ratio is undefined"
        return None, SharpeDiffTest(method, n, sa, sb, nan, nan, nan, nan, reason=why), ann
    if np.array_equal(xa, xb):
        return None, SharpeDiffTest(method, n, sa, sb, 0.0, 0.0, 0.0, 1.0, reason="identical series"), ann
    return np.column_stack([xa / xa.std(), xb / xb.std()]), None, ann


def _hac_se(x: np.ndarray, kernel: Kernel, prewhiten: bool, bandwidth: float | None) -> tuple[float, np.ndarray]:
    """Per-period HAC standard error of the Sharpe difference, and the influence series grad' y_t."""
    _, grad, y = _influence(x)
    psi, _ = long_run_covariance(y, kernel=kernel, bandwidth=bandwidth, prewhiten=prewhiten)
    return math.sqrt(max(float(grad @ psi @ grad), 0.0) / len(x)), y @ grad


def sharpe_diff_hac(
    a,
    b,
    *,
    periods: int = TRADING_DAYS_PER_YEAR,
    kernel: Kernel = "parzen",
    prewhiten: bool = True,
    bandwidth: float | None = None,
) -> SharpeDiffTest:
    """HAC test of SR_a = SR_b (Ledoit & Wolf 2008, Section 3.1): z = diff / se, two-sided normal p-value.

    Default: Parzen kernel, VAR(1) prewhitening, Andrews' automatic bandwidth, as in their reference code;
    kernel "bartlett" with prewhiten=False is Newey-West.
    """
    x, trivial, ann = _prepare(a, b, "hac", periods)
    if trivial is not None:
        return trivial
    assert x is not None
    delta = _influence(x)[0]
    se, _ = _hac_se(x, kernel, prewhiten, bandwidth)
    sr = x.mean(axis=0) / x.std(axis=0) * ann
    if not se > 0:
        return SharpeDiffTest("hac", len(x), float(sr[0]), float(sr[1]), delta * ann, math.nan, math.nan, math.nan,
                              reason="zero standard error")  # fmt: skip
    z = delta / se
    return SharpeDiffTest(
        "hac", len(x), float(sr[0]), float(sr[1]), delta * ann, se * ann, z, float(2 * norm.sf(abs(z)))
    )


def block_length_for(influence: np.ndarray) -> int:
    """Politis & White (2004) circular-bootstrap block length of the influence series (at least 1, at most T/3)."""
    n = len(influence)
    try:
        b = float(optimal_block_length(influence)["circular"].iloc[0])
    except (FloatingPointError, ZeroDivisionError, ValueError):
        b = math.nan
    if not math.isfinite(b):
        return 1
    return int(min(max(math.ceil(b), 1), max(n // 3, 1)))


def circular_block_starts(n: int, block_length: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, n // b) uniform start points of whole circular blocks of length b.

    The same draws as `arch.bootstrap.CircularBlockBootstrap` (ceil(n / b) starts per replication, in
    order), vectorised; like Ledoit & Wolf's code, a resample is the l = n // b whole blocks.
    """
    starts = rng.integers(n, size=(reps, -(-n // block_length)), dtype=np.int64)
    return starts[:, : n // block_length]


def block_means(x: np.ndarray, block_length: int, starts: np.ndarray) -> np.ndarray:
    """(reps, l, 4) means of (x_a, x_b, x_a^2, x_b^2) over each resample's l circular blocks of length b."""
    b = block_length
    w = np.column_stack([x, x**2])
    csum = np.vstack([np.zeros((1, 4)), np.cumsum(np.vstack([w, w[:b]]), axis=0)])
    return (csum[starts + b] - csum[starts]) / b


def resampled_diff_and_se(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per resample: the per-period Sharpe difference and its Goetze-Kuensch (1996) block standard error.

    se*^2 = grad*' Psi* grad* / (l b) with Psi* = (1 / l) sum_j b zeta_j zeta_j', zeta_j the block-j means of y*.
    """
    moments = means.mean(axis=1)  # (reps, 4): mu*, gamma*
    delta_s, grad_s = sharpe_difference(moments[:, :2], moments[:, 2:])
    zeta = np.einsum("rlk,rk->rl", means - moments[:, None, :], grad_s)  # block means of grad*' y*_t
    return delta_s, np.sqrt((zeta**2).sum(axis=1)) / means.shape[1]


def studentized(num: np.ndarray, se: np.ndarray) -> np.ndarray:
    """num / se, inf where se is 0 (or undefined) and num is not."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(se > 0, num / se, np.where(num > 0, np.inf, 0.0))
    return np.where(np.isnan(d), np.inf, d)


def _bootstrap_statistics(x: np.ndarray, delta: float, block_length: int, starts: np.ndarray) -> np.ndarray:
    """|diff* - diff| / se* for each row of block starts (inf where a resampled Sharpe is undefined)."""
    delta_s, se_s = resampled_diff_and_se(block_means(x, block_length, starts))
    return studentized(np.abs(delta_s - delta), se_s)


def sharpe_diff_bootstrap(
    a,
    b,
    *,
    periods: int = TRADING_DAYS_PER_YEAR,
    block_length: int | None = None,
    reps: int = 4999,
    seed: int | np.random.Generator = 0,
) -> SharpeDiffTest:
    """Studentized circular block bootstrap test of SR_a = SR_b (Ledoit & Wolf 2008, Algorithm 3.1).

    p = (1 + #{d* >= d}) / (reps + 1) with d = |diff| / se_HAC and d* = |diff* - diff| / se*. block_length
    None: Politis & White's circular choice for the influence series grad' y_t (whose long-run variance is
    the squared standard error). seed: int or Generator.
    """
    if reps < 1:
        raise ValueError(f"reps must be positive, got {reps}")
    x, trivial, ann = _prepare(a, b, "bootstrap", periods)
    if trivial is not None:
        return trivial
    assert x is not None
    n = len(x)
    delta = _influence(x)[0]
    se, influence = _hac_se(x, "parzen", True, None)
    b_len = block_length_for(influence) if block_length is None else int(block_length)
    if not 1 <= b_len <= n // 2:
        raise ValueError(f"block_length must lie in [1, {n // 2}], got {b_len}")
    sr = x.mean(axis=0) / x.std(axis=0) * ann
    if not se > 0:
        return SharpeDiffTest("bootstrap", n, float(sr[0]), float(sr[1]), delta * ann, math.nan, math.nan,
                              math.nan, b_len, reps, reason="zero standard error")  # fmt: skip
    d = abs(delta) / se
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    d_star = np.concatenate(
        [
            _bootstrap_statistics(x, delta, b_len, circular_block_starts(n, b_len, min(chunk, reps - start), rng))
            for start in range(0, reps, chunk)
        ]
    )
    p = (1 + int((d_star >= d).sum())) / (reps + 1)
    c95, c90 = (float(np.quantile(d_star, q, method="higher")) for q in (0.95, 0.90))
    return SharpeDiffTest(
        "bootstrap", n, float(sr[0]), float(sr[1]), delta * ann, se * ann, delta / se, p, b_len, reps, None, c95, c90
    )
