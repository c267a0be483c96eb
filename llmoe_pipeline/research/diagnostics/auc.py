"""AUC of a routing score for the next day's direction, and the label's hit rate, with block-bootstrap intervals.

The AUC is the Mann-Whitney statistic: the probability that the score of a random up day exceeds that of a random
down day, ties counting one half (0.5: the score says nothing about the direction; 1: it separates them).

Router windows overlap (a 5-day window shares 4 days with the next) and scores persist from day to day, so the
days are not independent draws: the interval resamples whole blocks of consecutive days (arch's
`CircularBlockBootstrap`), of at least `MIN_BLOCK` days or the Politis & White (2004) length of the score if that
is longer. The interval is the percentile interval of the resampled statistics, seeded.

A resample is held as how many times it draws each day (a reps × n count matrix), so the AUC of every resample
comes from one sort of the scores and cumulative sums over tie groups: no loop over pairs or resamples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from arch.bootstrap import CircularBlockBootstrap, optimal_block_length

DEFAULT_REPS = 1000
MIN_BLOCK = 20  # trading days: about a month, four times the windows' overlap
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    n: int
    block_length: int
    reps: int


def weighted_auc(score, target, weights) -> np.ndarray:
    """AUC of `score` for `target` (1 = up) for each row of `weights` (how often each observation is counted).

    NaN for a row that counts no up or no down observation. One row of ones gives the plain AUC.
    """
    s = np.asarray(score, dtype=float)
    up = np.asarray(target).astype(bool)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    if s.ndim != 1 or up.shape != s.shape or w.shape[1] != len(s):
        raise ValueError(f"score {s.shape}, target {up.shape} and weights {w.shape} do not match")
    if np.isnan(s).any():
        raise ValueError("score has NaN values: drop those windows first")
    if len(s) == 0:
        return np.full(len(w), np.nan)
    order = np.argsort(s, kind="stable")
    s, up, w = s[order], up[order], w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # tie groups are contiguous once sorted
    down_w = np.add.reduceat(np.where(up, 0.0, w), starts, axis=1)
    up_w = np.add.reduceat(np.where(up, w, 0.0), starts, axis=1)
    beaten = np.cumsum(down_w, axis=1) - 0.5 * down_w  # down days strictly below, plus half the tied ones
    n_up, n_down = up_w.sum(axis=1), down_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_up > 0) & (n_down > 0), (up_w * beaten).sum(axis=1) / (n_up * n_down), np.nan)


def auc_score(score, target) -> float:
    """The AUC of `score` for `target` (NaN when every day went the same way)."""
    return float(weighted_auc(score, target, np.ones((1, len(np.asarray(score)))))[0])


def block_length_for(score, minimum: int = MIN_BLOCK) -> int:
    """max(minimum, Politis & White circular block length of the score), at most a third of the sample."""
    x = np.asarray(score, dtype=float)
    n = len(x)
    length = minimum
    if n >= 10 and np.ptp(x) > 0:
        try:
            optimal = float(optimal_block_length(x)["circular"].iloc[0])
        except (ValueError, np.linalg.LinAlgError):
            optimal = float("nan")
        if math.isfinite(optimal):
            length = max(length, math.ceil(optimal))
    return int(max(1, min(length, n // 3 if n >= 3 else 1)))


def block_bootstrap_counts(n: int, block_length: int, reps: int, seed: int | np.random.Generator) -> np.ndarray:
    """(reps, n): how often each of n consecutive days is drawn by each circular block bootstrap resample."""
    if n == 0:
        return np.zeros((reps, 0))
    boot = CircularBlockBootstrap(block_length, np.arange(n), seed=seed)
    counts = np.empty((reps, n))
    for r, _ in enumerate(boot.bootstrap(reps)):
        counts[r] = np.bincount(np.asarray(boot.index, dtype=np.int64), minlength=n)
    return counts


def _interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = stats[np.isfinite(stats)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def auc_difference(
    score_a,
    score_b,
    target,
    block_length: int | None = None,
    reps: int = DEFAULT_REPS,
    seed: int | np.random.Generator = 0,
    confidence: float = CONFIDENCE,
) -> Estimate:
    """AUC(score_a) - AUC(score_b) on the same days, with a percentile interval from block-bootstrap resamples
    shared by both scores (paired: the days' common noise cancels). The days must be in time order."""
    a, b = np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"the two scores cover {len(a)} and {len(b)} days: compare them on the same days")
    block = block_length if block_length is not None else max(block_length_for(a), block_length_for(b))
    counts = block_bootstrap_counts(len(a), block, reps, seed)
    boot = weighted_auc(a, target, counts) - weighted_auc(b, target, counts)
    return Estimate(auc_score(a, target) - auc_score(b, target), *_interval(boot, confidence), len(a), block, reps)


def auc_and_hit_rate(
    score,
    target,
    hit,
    block_length: int | None = None,
    reps: int = DEFAULT_REPS,
    seed: int | np.random.Generator = 0,
    confidence: float = CONFIDENCE,
) -> tuple[Estimate, Estimate]:
    """AUC of `score` and the mean of `hit` (1 where the label got the direction right), each with a percentile
    interval from the same block-bootstrap resamples. The days must be in time order."""
    s, h = np.asarray(score, dtype=float), np.asarray(hit, dtype=float)
    n = len(s)
    block = block_length if block_length is not None else block_length_for(s)
    counts = block_bootstrap_counts(n, block, reps, seed)
    auc_boot = weighted_auc(s, target, counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        hit_boot = counts @ h / counts.sum(axis=1)
    auc = Estimate(auc_score(s, target), *_interval(auc_boot, confidence), n, block, reps)
    hit_rate = Estimate(float(h.mean()) if n else float("nan"), *_interval(hit_boot, confidence), n, block, reps)
    return auc, hit_rate
