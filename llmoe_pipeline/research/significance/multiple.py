"""Tests over many models at once, wrapping `arch.bootstrap`: Hansen's (2005) SPA test of "no model beats the
benchmark", Romano & Wolf's (2005) StepM for which ones do, and the Model Confidence Set of Hansen, Lunde &
Nason (2011). Inputs are daily returns (higher is better); arch takes losses, so they are negated here.

arch's SPA and StepM accept `studentize` but do not divide by the standard errors (arch 8.0), so the loss
differentials are studentized here: each is divided by Hansen's stationary-bootstrap estimate of its
long-run standard deviation (the one arch computes) before arch sees it, which is Hansen's statistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from arch.bootstrap import MCS, SPA, StepM, optimal_block_length


def stationary_block_size(x) -> int:
    """Politis & White (2004) stationary-bootstrap block size: the largest over columns, in [1, T/3]."""
    values = np.asarray(x, dtype=float).reshape(len(x), -1)
    sizes = [float(optimal_block_length(col)["stationary"].iloc[0]) for col in values.T if np.ptp(col) > 0]
    finite = [s for s in sizes if math.isfinite(s)]
    return int(min(max(math.ceil(max(finite, default=1.0)), 1), max(len(values) // 3, 1)))


def stationary_bootstrap_variance(d, block_size: int) -> np.ndarray:
    """Long-run variance of each column implied by the stationary bootstrap (Hansen 2005, as in arch's SPA)."""
    d = np.asarray(d, dtype=float).reshape(len(d), -1)
    t, q = len(d), 1.0 - 1.0 / block_size
    e = d - d.mean(axis=0)
    var = (e**2).sum(axis=0) / t
    for i in range(1, t):
        kappa = (1 - i / t) * q**i + (i / t) * q ** (t - i)
        var += 2 * kappa * (e[: t - i] * e[i:]).sum(axis=0) / t
    return var


MIN_DAYS = 20  # as the Sharpe tests: fewer days give no usable bootstrap


@dataclass(frozen=True)
class SPAResult:
    """SPA p-values of H0 "no model beats the benchmark" (consistent is Hansen's recommended one)."""

    consistent: float
    lower: float
    upper: float
    models: tuple[str, ...]  # the models tested
    superior: tuple[str, ...]  # StepM: models that beat the benchmark, family-wise error <= stepm_size
    dropped: tuple[str, ...]  # models whose difference to the benchmark never varies (e.g. identical)
    block_size: int
    reps: int
    reason: str | None = None


def spa_test(
    benchmark: pd.Series,
    models: pd.DataFrame,
    *,
    reps: int = 1000,
    block_size: int | None = None,
    seed: int | np.random.Generator = 0,
    stepm_size: float = 0.05,
) -> SPAResult:
    """Hansen's SPA test (studentized, stationary bootstrap) of the models' returns against the benchmark's."""
    bench = np.asarray(benchmark, dtype=float)
    if len(models) != len(bench):
        raise ValueError(f"models ({len(models)} rows) and benchmark ({len(bench)}) must cover the same days")
    if len(bench) < MIN_DAYS:
        nan = float("nan")
        return SPAResult(
            nan,
            nan,
            nan,
            tuple(str(c) for c in models.columns),
            (),
            (),
            0,
            reps,
            reason=f"too few days ({len(bench)} < {MIN_DAYS})",
        )
    diff = models.to_numpy(dtype=float) - bench[:, None]  # = benchmark loss - model loss
    varies = np.ptp(diff, axis=0) > 0
    names = [str(c) for c in models.columns]
    tested = tuple(n for n, v in zip(names, varies) if v)
    dropped = tuple(n for n, v in zip(names, varies) if not v)
    size = stationary_block_size(diff[:, varies]) if block_size is None else int(block_size)
    if not tested:
        return SPAResult(1.0, 1.0, 1.0, tested, (), dropped, size, reps, reason="no model differs from the benchmark")
    scaled = diff[:, varies] / np.sqrt(stationary_bootstrap_variance(diff[:, varies], size))
    losses = pd.DataFrame(-scaled, columns=list(tested))  # SPA differences zero - (-scaled) = scaled
    zero = np.zeros(len(bench))
    spa = SPA(zero, losses, block_size=size, reps=reps, bootstrap="stationary", seed=seed)
    spa.compute()
    stepm = StepM(zero, losses, size=stepm_size, block_size=size, reps=reps, bootstrap="stationary", seed=seed)
    stepm.compute()
    p = spa.pvalues
    superior = tuple(str(m) for m in stepm.superior_models)
    return SPAResult(
        float(p["consistent"]), float(p["lower"]), float(p["upper"]), tested, superior, dropped, size, reps
    )


@dataclass(frozen=True)
class MCSResult:
    """Model Confidence Set: `table` is indexed by model with columns in_mcs, pvalue, mean_return."""

    table: pd.DataFrame
    size: float
    block_size: int
    reps: int
    method: str
    reason: str | None = None  # why the set is undefined (too few days, a degenerate bootstrap): in_mcs is NA

    @property
    def included(self) -> tuple[str, ...]:
        return tuple(self.table.index[self.table["in_mcs"].fillna(False).astype(bool)])


def _undefined(names: list[str], values: np.ndarray, size: float, reps: int, method: str, reason: str) -> MCSResult:
    table = pd.DataFrame(
        {
            "in_mcs": pd.array([pd.NA] * len(names), dtype="boolean"),
            "pvalue": np.nan,
            "mean_return": values.mean(axis=0),
        },
        index=pd.Index(names, name="model"),
    )
    return MCSResult(table, size, 0, reps, method, reason)


def model_confidence_set(
    returns: pd.DataFrame,
    *,
    size: float = 0.10,
    reps: int = 1000,
    block_size: int | None = None,
    method: Literal["R", "max"] = "R",
    seed: int | np.random.Generator = 0,
) -> MCSResult:
    """Hansen, Lunde & Nason's MCS of the models (columns) with losses = -returns (stationary bootstrap).

    Identical columns enter once and share the p-value (arch divides by their zero variance otherwise).
    """
    if returns.shape[1] < 1:
        raise ValueError("returns needs at least one model (column)")
    values = returns.to_numpy(dtype=float)
    names = [str(c) for c in returns.columns]
    if len(returns) < MIN_DAYS:
        return _undefined(names, values, size, reps, method, f"too few days ({len(returns)} < {MIN_DAYS})")
    first: dict[bytes, str] = {}
    representative = [first.setdefault(values[:, j].tobytes(), name) for j, name in enumerate(names)]
    unique = list(dict.fromkeys(representative))
    losses = -returns.set_axis(names, axis=1)[unique]
    b = stationary_block_size(losses.sub(losses.mean(axis=1), axis=0)) if block_size is None else int(block_size)
    if len(unique) == 1:
        pvalues = pd.Series(1.0, index=unique)
    else:
        try:
            mcs = MCS(losses, size=size, reps=reps, block_size=b, method=method, bootstrap="stationary", seed=seed)
            mcs.compute()
        except (ValueError, IndexError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
            return _undefined(names, values, size, reps, method, f"MCS undefined here ({type(exc).__name__}: {exc})")
        pvalues = mcs.pvalues["Pvalue"]
    pvalue = [float(pvalues[r]) for r in representative]
    table = pd.DataFrame(
        {"in_mcs": [p > size for p in pvalue], "pvalue": pvalue, "mean_return": values.mean(axis=0)},
        index=pd.Index(names, name="model"),
    )
    return MCSResult(table, size, b, reps, method)
