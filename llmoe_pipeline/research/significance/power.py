"""What a test of equal Sharpe ratios could have detected (issue #25): power, the minimum detectable effect (MDE)
and the gaps the data rule out, for two return series on the same days.

By simulation with the test's own studentized circular block bootstrap (`ledoit_wolf.sharpe_diff_bootstrap`):
1. the null world: each series divided by its standard deviation and a's mean moved so that the two Sharpe ratios
   are equal; correlation, skewness, kurtosis and autocorrelation are those measured;
2. a gap g (annualised Sharpe, a minus b) is planted by adding g / sqrt(periods) to a;
3. `simulations` circular block resamples of that pair (the test's block length) stand for the samples the test
   could have seen; each is rejected when its Sharpe difference exceeds the test's threshold: the bootstrap critical
   value (the 95 % quantile of |diff* - diff| / se* on the observed data) times the test's HAC standard error;
4. power(g) is the share rejected; the MDE is the smallest g > 0 whose power reaches the target (bisection).

Closed forms beside it, for iid returns: Jobson & Korkie (1981) with Memmel's (2003) correction for the covariance
of the two estimates, and Mertens (2002) for each one's variance under skewness and kurtosis:
Var(SR_a - SR_b) = V_a + V_b - 2 (rho + SR_a SR_b rho^2 / 2) / T, V_i = (1 + SR_i^2 / 2 - g3_i SR_i
+ (g4_i - 3) / 4 SR_i^2) / T (per-period Sharpe ratios, g4 non-excess kurtosis); MDE = (z_{1-alpha/2} + z_power) se.

Equivalence (two one-sided tests at alpha): a true gap of |g| >= |diff| + c90 se is ruled out, c90 the bootstrap's
90 % quantile (the 90 % interval's half-width in standard errors).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy.stats import kurtosis, norm, skew, wilcoxon
from scipy.stats import t as t_dist

from llmoe_pipeline.catalog import TRADING_DAYS_PER_YEAR
from llmoe_pipeline.research.significance.ledoit_wolf import (
    SharpeDiffTest,
    block_means,
    circular_block_starts,
    sharpe_difference,
)
from llmoe_pipeline.trading.metrics import validate_returns

MAX_GAP = 20.0  # annualised Sharpe: past this the MDE is reported as not reached
CURVE_GAPS = tuple(round(0.25 * i, 2) for i in range(13))  # 0 … 3 annualised Sharpe: the report's power curve


@dataclass(frozen=True)
class PowerResult:
    """What the test of one pair could detect; gaps in annualised Sharpe (a minus b), NaN with a reason."""

    n_days: int
    correlation: float
    skewness_a: float
    skewness_b: float
    kurtosis_a: float  # non-excess (3 for the normal)
    kurtosis_b: float
    autocorrelation_a: float  # lag 1
    autocorrelation_b: float
    block_length: int | None
    simulations: int
    alpha: float
    target_power: float
    mde: float  # smallest gap detected with target_power (bootstrap simulation)
    mde_closed_form: float  # Jobson-Korkie-Memmel with Mertens' variances, iid
    gap: float  # the configured gap
    power_at_gap: float
    power_at_gap_closed_form: float
    ruled_out_above: float  # two one-sided tests at alpha: |true gap| >= this is ruled out
    power_curve: tuple[tuple[float, float], ...] = ()  # (gap, power) at CURVE_GAPS
    reason: str | None = None

    def as_record(self) -> dict:
        record = asdict(self)
        record["power_curve"] = [list(point) for point in self.power_curve]
        return record


def _lag1(x: np.ndarray) -> float:
    return float(np.corrcoef(x[:-1], x[1:])[0, 1])


class PlantedGap:
    """Power of the block-bootstrap test against planted gaps, for one observed pair (see the module doc)."""

    def __init__(self, a: np.ndarray, b: np.ndarray, test: SharpeDiffTest, simulations: int, seed, periods: int):
        assert test.block_length is not None and test.critical_value is not None
        x = np.column_stack([a / a.std(), b / b.std()])
        x[:, 0] += x[:, 1].mean() - x[:, 0].mean()  # equal Sharpe ratios (both standard deviations are 1)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        starts = circular_block_starts(len(x), test.block_length, simulations, rng)
        # Each resample's means of (x_a, x_b, x_a^2, x_b^2): all a Sharpe difference needs, and cheap to shift.
        self._moments = block_means(x, test.block_length, starts).mean(axis=1)
        n = len(x)
        # The test's threshold on the per-period difference: its critical value times its HAC standard error.
        self._threshold = test.critical_value * test.se / math.sqrt(periods * (n - 1) / n)
        self._root_periods = math.sqrt(periods)

    def power(self, gap: float) -> float:
        """Share of the simulated samples with `gap` planted that the test rejects at its level."""
        k = gap / self._root_periods
        m = self._moments.copy()
        m[:, 2] += 2 * k * m[:, 0] + k * k  # mean of (x_a + k)^2, before the mean of x_a moves
        m[:, 0] += k
        delta, _ = sharpe_difference(m[:, :2], m[:, 2:])
        return float(np.mean(np.abs(delta) > self._threshold))

    def minimum_detectable_gap(self, target: float, tol: float = 1e-3) -> float:
        """Smallest gap > 0 whose power reaches `target` (power rises with the gap); NaN past MAX_GAP."""
        low, high = 0.0, 0.5
        while self.power(high) < target:
            low, high = high, 2 * high
            if high > MAX_GAP:
                return math.nan
        while high - low > tol:
            mid = (low + high) / 2
            low, high = (mid, high) if self.power(mid) < target else (low, mid)
        return high


def closed_form_se(a: np.ndarray, b: np.ndarray, periods: int) -> float:
    """Annualised standard error of SR_a - SR_b: Jobson-Korkie-Memmel covariance, Mertens variances (iid)."""
    n = len(a)
    sr = [float(x.mean() / x.std()) for x in (a, b)]
    rho = float(np.corrcoef(a, b)[0, 1])

    def mertens(x: np.ndarray, s: float) -> float:
        return 1 + s * s / 2 - float(skew(x)) * s + (float(kurtosis(x, fisher=False)) - 3) / 4 * s * s

    var = mertens(a, sr[0]) + mertens(b, sr[1]) - 2 * (rho + sr[0] * sr[1] * rho**2 / 2)
    return math.sqrt(max(var, 0.0) / n * periods)


def closed_form_power(gap: float, se: float, alpha: float) -> float:
    """Power of a two-sided z test at `alpha` against a true difference `gap` with standard error `se`."""
    z = norm.ppf(1 - alpha / 2)
    return float(norm.cdf(gap / se - z) + norm.cdf(-gap / se - z)) if se > 0 else math.nan


def sharpe_diff_power(
    a,
    b,
    test: SharpeDiffTest,
    *,
    gap: float = 1.0,
    alpha: float = 0.05,
    target_power: float = 0.8,
    simulations: int = 1000,
    periods: int = TRADING_DAYS_PER_YEAR,
    seed: int | np.random.Generator = 0,
) -> PowerResult:
    """Power, MDE and equivalence bound of `test` (the bootstrap test of a against b on these days)."""
    if alpha != 0.05:
        raise ValueError("the bootstrap test's critical value is its 5 % one; alpha must be 0.05")
    xa, xb = validate_returns(a, "a"), validate_returns(b, "b")
    nan = math.nan
    n = len(xa)
    defined = n > 2 and np.ptp(xa) > 0 and np.ptp(xb) > 0
    skew_a, skew_b, kurt_a, kurt_b = (f(x) if defined else nan for f in (_skew, _kurt) for x in (xa, xb))
    undefined = PowerResult(
        n_days=n,
        correlation=float(np.corrcoef(xa, xb)[0, 1]) if defined else nan,
        skewness_a=skew_a,
        skewness_b=skew_b,
        kurtosis_a=kurt_a,
        kurtosis_b=kurt_b,
        autocorrelation_a=_lag1(xa) if defined else nan,
        autocorrelation_b=_lag1(xb) if defined else nan,
        block_length=test.block_length,
        simulations=simulations,
        alpha=alpha,
        target_power=target_power,
        mde=nan,
        mde_closed_form=nan,
        gap=gap,
        power_at_gap=nan,
        power_at_gap_closed_form=nan,
        ruled_out_above=nan,
    )
    if test.reason is not None or test.critical_value is None or not math.isfinite(test.se):
        return replace(undefined, reason=test.reason or "the test has no bootstrap critical value")
    sim = PlantedGap(xa, xb, test, simulations, seed, periods)
    se_cf = closed_form_se(xa, xb, periods)
    z = norm.ppf(1 - alpha / 2) + norm.ppf(target_power)
    assert test.equivalence_critical_value is not None
    return replace(
        undefined,
        mde=sim.minimum_detectable_gap(target_power),
        mde_closed_form=float(z * se_cf),
        power_at_gap=sim.power(gap),
        power_at_gap_closed_form=closed_form_power(gap, se_cf, alpha),
        ruled_out_above=abs(test.diff) + test.equivalence_critical_value * test.se,
        power_curve=tuple((g, sim.power(g)) for g in CURVE_GAPS),
    )


def _skew(x: np.ndarray) -> float:
    return float(skew(x))


def _kurt(x: np.ndarray) -> float:
    return float(kurtosis(x, fisher=False))


@dataclass(frozen=True)
class PairedPower:
    """Power of the Wilcoxon signed-rank test of per-ticker Sharpe differences (the cross-ticker verdict)."""

    n_tickers: int
    sd_difference: float
    simulations: int
    target_power: float
    mde: float
    mde_closed_form: float  # paired t approximation, scaled by the Wilcoxon's efficiency 3 / pi
    gap: float
    power_at_gap: float
    ruled_out_above: float  # two one-sided t tests at 5 %: a mean difference beyond this is ruled out
    reason: str | None = None

    def as_record(self) -> dict:
        return asdict(self)


def wilcoxon_power(
    differences,
    *,
    gap: float = 1.0,
    alpha: float = 0.05,
    target_power: float = 0.8,
    simulations: int = 400,
    seed: int | np.random.Generator = 0,
) -> PairedPower:
    """Simulated power of the two-sided Wilcoxon signed-rank test at alpha: tickers drawn with replacement from the
    observed differences centred at 0, the gap added; the MDE from a grid of gaps (0.05 apart), interpolated.
    The simulated tests use the normal approximation with the tie correction (resamples repeat values, and scipy's
    exact test with ties is a permutation test: minutes per gap)."""
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    n, nan = len(d), math.nan
    sd = float(d.std(ddof=1)) if n > 1 else nan
    if n < 6 or not sd > 0:
        why = f"{n} tickers with a difference: too few for the Wilcoxon test" if n < 6 else "no spread"
        return PairedPower(n, sd, simulations, target_power, nan, nan, gap, nan, nan, reason=why)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    centred = d - d.mean()
    draws = centred[rng.integers(n, size=(simulations, n))]

    def power(g: float) -> float:
        return float(np.mean(wilcoxon(draws + g, axis=1, method="approx").pvalue <= alpha))

    gaps = np.arange(0.0, 6 * sd + 0.05, 0.05)
    curve = np.array([power(float(g)) for g in gaps])
    reached = np.nonzero(curve >= target_power)[0]
    if len(reached):
        i = int(reached[0])
        lo, hi = (gaps[i - 1], curve[i - 1]) if i else (0.0, 0.0)
        mde = float(lo + (target_power - hi) * (gaps[i] - lo) / max(curve[i] - hi, 1e-12))
    else:
        mde = nan
    z = norm.ppf(1 - alpha / 2) + norm.ppf(target_power)
    half = float(t_dist.ppf(1 - alpha, n - 1)) * sd / math.sqrt(n)
    return PairedPower(
        n_tickers=n,
        sd_difference=sd,
        simulations=simulations,
        target_power=target_power,
        mde=mde,
        mde_closed_form=float(z * sd / math.sqrt(n) / math.sqrt(3 / math.pi)),
        gap=gap,
        power_at_gap=power(gap),
        ruled_out_above=abs(float(d.mean())) + half,
    )
