"""Seeded return generators with known Sharpe ratios, for the calibration and power tests."""

from __future__ import annotations

import numpy as np

PERIODS = 252


def garch_pairs(
    sims: int,
    n: int,
    rng: np.random.Generator,
    sharpe: tuple[float, float] = (0.5, 0.5),
    rho: float = 0.5,
    phi: float = 0.1,
    df: float = 8.0,
    vol: tuple[float, float] = (0.01, 0.02),
    burn: int = 200,
) -> np.ndarray:
    """(sims, n, 2) daily returns: per simulation a shared GARCH(1, 1) volatility, unit-variance Student-t
    innovations correlated rho, AR(1) coefficient phi; each column's annualised Sharpe ratio is exactly
    `sharpe` in population."""
    omega, alpha, beta = 0.05, 0.08, 0.87  # unconditional variance omega / (1 - alpha - beta) = 1
    steps = n + burn
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=(sims, steps))
    e = z / np.sqrt(rng.chisquare(df, size=(sims, steps, 1)) / df) * np.sqrt((df - 2) / df)
    x = np.zeros((sims, steps, 2))
    h = np.ones(sims)
    for t in range(1, steps):
        u = np.sqrt(h)[:, None] * e[:, t]
        x[:, t] = phi * x[:, t - 1] + u
        h = omega + alpha * (u**2).mean(axis=1) + beta * h
    x = x[:, burn:] * np.sqrt(1 - phi**2)  # unit stationary variance
    return np.asarray(vol) * (x + np.asarray(sharpe) / np.sqrt(PERIODS))


def strategy_pairs(sims: int, n: int, rng: np.random.Generator, stay: float = 0.9, p_in: float = 0.6) -> np.ndarray:
    """(sims, n, 2) returns of two long/cash strategies on one asset (GARCH, Sharpe 0.5) whose positions are
    independent persistent 0/1 Markov chains with the same long share: equal Sharpe ratios in population."""
    asset = garch_pairs(sims, n, rng, rho=1.0, vol=(0.015, 0.015))[:, :, :1]
    pos = np.zeros((sims, n, 2))
    pos[:, 0] = rng.random((sims, 2)) < p_in
    for t in range(1, n):
        redraw = rng.random((sims, 2)) > stay
        pos[:, t] = np.where(redraw, rng.random((sims, 2)) < p_in, pos[:, t - 1])
    return pos * asset
