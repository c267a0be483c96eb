"""Selection bias of a reported configuration (issue #25): the deflated Sharpe ratio and the probability of backtest
overfitting. Pure numpy; no library implements both with the paper's conventions, so they are written here and
tested against hand-computed values.

- Deflated Sharpe ratio (Bailey & Lopez de Prado 2014): PSR against SR0, the expected maximum Sharpe ratio of N
  skill-less trials with the trials' measured variance:
  SR0 = sqrt(V[SR_n]) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))), gamma Euler-Mascheroni.
- Probability of backtest overfitting by combinatorially symmetric cross-validation (Bailey, Borwein, Lopez de
  Prado & Zhu 2015): the days cut into S blocks; for each of the C(S, S/2) halves, the configuration with the best
  in-sample Sharpe ratio is ranked out of sample; PBO is the share of halves where it ranks at or below the median
  (logit of its relative rank <= 0).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm

from llmoe_pipeline.catalog import TRADING_DAYS_PER_YEAR
from llmoe_pipeline.research.significance.sharpe import probabilistic_sharpe_ratio

EULER_GAMMA = 0.5772156649015329


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """SR0: the expected maximum of n_trials skill-less Sharpe estimates of the given variance (same units)."""
    if n_trials < 2 or not variance > 0:
        return 0.0
    z1, z2 = norm.ppf(1 - 1 / n_trials), norm.ppf(1 - 1 / (n_trials * math.e))
    return math.sqrt(variance) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


@dataclass(frozen=True)
class DeflatedSharpe:
    dsr: float  # P(true Sharpe > SR0)
    sharpe: float  # annualised
    sr0: float  # annualised expected maximum Sharpe of the trials under no skill
    n_trials: int
    trials_sharpe_std: float  # annualised standard deviation of the trials' Sharpe ratios
    n_days: int
    skewness: float
    kurtosis: float  # non-excess
    reason: str | None = None

    def as_record(self) -> dict:
        return asdict(self)


def deflated_sharpe_ratio(returns, trial_sharpes, periods: int = TRADING_DAYS_PER_YEAR) -> DeflatedSharpe:
    """DSR of `returns` (the reported configuration) given the annualised Sharpe ratios of every trial tried."""
    trials = np.asarray(trial_sharpes, dtype=float)
    trials = trials[np.isfinite(trials)]
    n = len(trials)
    std = float(trials.std(ddof=1)) if n > 1 else math.nan
    sr0 = expected_max_sharpe(n, std**2) if n > 1 else math.nan
    psr = probabilistic_sharpe_ratio(returns, benchmark_sharpe=sr0, periods=periods)
    reason = psr.reason or (None if n > 1 else f"{n} trial(s) with a defined Sharpe ratio: nothing to deflate")
    return DeflatedSharpe(psr.psr if n > 1 else math.nan, psr.sharpe, sr0, n, std, psr.n, psr.skewness,
                          psr.kurtosis, reason)  # fmt: skip


@dataclass(frozen=True)
class PBOResult:
    pbo: float
    n_configurations: int
    n_days: int
    blocks: int
    combinations: int
    logit_median: float  # median logit of the in-sample winner's out-of-sample relative rank
    reason: str | None = None

    def as_record(self) -> dict:
        return asdict(self)


def _sharpe_from_sums(s1: np.ndarray, s2: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratios (ddof=0) from sums of returns and squares over n days; -inf where undefined."""
    mean = s1 / n
    var = s2 / n - mean**2
    with np.errstate(divide="ignore", invalid="ignore"):
        sr = mean / np.sqrt(var)
    return np.where(var > 1e-20 * np.maximum(s2 / n, 1e-300), sr, -np.inf)


def probability_of_backtest_overfitting(returns: np.ndarray, blocks: int = 16) -> PBOResult:
    """PBO of choosing the best-Sharpe column of `returns` (days × configurations), by CSCV over `blocks` blocks.

    Days are cut into `blocks` contiguous blocks of equal size (the first T mod S days are dropped, so every block
    has the same length, as in the paper). Ties in the out-of-sample ranks take their average rank.
    """
    m = np.asarray(returns, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"returns must be days × configurations, got shape {m.shape}")
    if blocks < 2 or blocks % 2:
        raise ValueError(f"blocks must be an even number >= 2, got {blocks}")
    t, n_cfg = m.shape
    nan = math.nan
    if n_cfg < 2:
        return PBOResult(nan, n_cfg, t, blocks, 0, nan, reason="fewer than 2 configurations")
    if t < 2 * blocks:
        return PBOResult(nan, n_cfg, t, blocks, 0, nan, reason=f"{t} days: too few for {blocks} blocks")
    if not np.isfinite(m).all():
        raise ValueError("returns hold a NaN or an infinite value")
    size = t // blocks
    cut = m[t - size * blocks :].reshape(blocks, size, n_cfg)
    s1, s2 = cut.sum(axis=1), (cut**2).sum(axis=1)  # (blocks, configurations)
    halves = np.array(list(itertools.combinations(range(blocks), blocks // 2)))
    chosen = np.zeros((len(halves), blocks))
    chosen[np.arange(len(halves))[:, None], halves] = 1.0
    days = size * blocks // 2
    in_sr = _sharpe_from_sums(chosen @ s1, chosen @ s2, np.full(1, days))
    out_sr = _sharpe_from_sums((1 - chosen) @ s1, (1 - chosen) @ s2, np.full(1, days))
    winner = out_sr[np.arange(len(halves)), in_sr.argmax(axis=1)][:, None]
    rank = (out_sr < winner).sum(axis=1) + ((out_sr == winner).sum(axis=1) + 1) / 2  # 1 = worst; ties averaged
    omega = rank / (n_cfg + 1)
    logits = np.log(omega / (1 - omega))
    return PBOResult(float(np.mean(logits <= 0)), n_cfg, t, blocks, len(halves), float(np.median(logits)))
