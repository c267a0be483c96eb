"""Heteroskedasticity- and autocorrelation-consistent (HAC) long-run covariance of a multivariate series.

Kernel estimators with Andrews' (1991) automatic bandwidth from AR(1) fits, optionally prewhitened by a
VAR(1) (Andrews & Monahan 1992), the way Ledoit & Wolf (2008) compute their HAC standard error.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Kernel = Literal["parzen", "qs", "bartlett"]
KERNELS: tuple[str, ...] = ("parzen", "qs", "bartlett")

# Andrews (1991), eq. (6.2): bandwidth = constant * (alpha * T) ** exponent; alpha(2) for Parzen and QS,
# alpha(1) for Bartlett (Newey-West).
_BANDWIDTH = {"parzen": (2.6614, 1 / 5, 2), "qs": (1.3221, 1 / 5, 2), "bartlett": (1.1447, 1 / 3, 1)}
_MAX_AR = 0.97  # AR(1) coefficients and prewhitening singular values are capped here (Andrews & Monahan)


def kernel_weight(kernel: Kernel, x: np.ndarray) -> np.ndarray:
    """The kernel k(x) at x = lag / bandwidth (x >= 0)."""
    x = np.abs(np.asarray(x, dtype=float))
    if kernel == "parzen":
        return np.where(x <= 0.5, 1 - 6 * x**2 + 6 * x**3, np.where(x <= 1.0, 2 * (1 - x) ** 3, 0.0))
    if kernel == "bartlett":
        return np.clip(1.0 - x, 0.0, None)
    if kernel == "qs":  # 25 / (12 pi^2 x^2) (sin z / z - cos z) = 3 (sin z / z - cos z) / z^2, z = 6 pi x / 5
        z = 6 * np.pi * x / 5
        safe = np.where(z < 1e-2, 1.0, z)
        series = 1 - z**2 / 10 + z**4 / 280  # Taylor expansion near 0, where the difference cancels
        return np.where(z < 1e-2, series, 3 * (np.sin(safe) / safe - np.cos(safe)) / safe**2)
    raise ValueError(f"unknown kernel {kernel!r}; one of {KERNELS}")


def _ar1(column: np.ndarray) -> tuple[float, float]:
    """OLS AR(1) with intercept: (rho, innovation variance), rho capped at +-0.97."""
    y, x = column[1:], column[:-1]
    xc = x - x.mean()
    sxx = xc @ xc
    rho = float(xc @ (y - y.mean()) / sxx) if sxx > 0 else 0.0
    rho = float(np.clip(rho, -_MAX_AR, _MAX_AR))
    resid = (y - y.mean()) - rho * xc
    return rho, float(resid @ resid / len(resid))


def andrews_bandwidth(v: np.ndarray, kernel: Kernel = "parzen") -> float:
    """Andrews' (1991) automatic bandwidth from univariate AR(1) fits of each column (equal weights)."""
    const, exponent, order = _BANDWIDTH[kernel]
    num = den = 0.0
    for column in np.asarray(v, dtype=float).T:
        rho, s2 = _ar1(column)
        den += s2**2 / (1 - rho) ** 4
        if order == 2:
            num += 4 * rho**2 * s2**2 / (1 - rho) ** 8
        else:
            num += 4 * rho**2 * s2**2 / ((1 - rho) ** 6 * (1 + rho) ** 2)
    alpha = num / den if den > 0 else 0.0
    return const * (alpha * len(v)) ** exponent


def _kernel_sum(v: np.ndarray, kernel: Kernel, bandwidth: float) -> np.ndarray:
    """sum_j k(j / S) Gamma(j) over all lags, Gamma(j) = sum_t v_t v_{t-j}' / T, times T / (T - p)."""
    t, p = v.shape
    psi = v.T @ v / t
    lags = np.arange(1, t)
    weights = kernel_weight(kernel, lags / bandwidth) if bandwidth > 0 else np.zeros(t - 1)
    for lag, w in zip(lags[weights != 0], weights[weights != 0]):
        gamma = v[lag:].T @ v[:-lag] / t
        psi += w * (gamma + gamma.T)
    return psi * t / (t - p)


def long_run_covariance(
    v: np.ndarray, kernel: Kernel = "parzen", bandwidth: float | None = None, prewhiten: bool = True
) -> tuple[np.ndarray, float]:
    """Kernel HAC estimate of the long-run covariance of the (mean-zero) rows of v; returns (Psi, bandwidth).

    bandwidth None: Andrews' automatic choice (on the prewhitened residuals when prewhitening). The
    small-sample factor T / (T - p) and the VAR(1) prewhitening with singular values capped at 0.97 follow
    Ledoit & Wolf's reference code.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; one of {KERNELS}")
    v = np.asarray(v, dtype=float)
    if v.ndim != 2 or v.shape[0] <= v.shape[1] + 2:
        raise ValueError(f"need a T x p array with T > p + 2, got shape {v.shape}")
    if not prewhiten:
        s = andrews_bandwidth(v, kernel) if bandwidth is None else float(bandwidth)
        return _kernel_sum(v, kernel, s), s
    p = v.shape[1]
    coef = np.linalg.lstsq(v[:-1], v[1:], rcond=None)[0]  # v[1:] ~ v[:-1] @ coef, i.e. A = coef.T
    u, d, vt = np.linalg.svd(coef.T)
    a = u @ np.diag(np.minimum(d, _MAX_AR)) @ vt
    resid = v[1:] - v[:-1] @ a.T
    s = andrews_bandwidth(resid, kernel) if bandwidth is None else float(bandwidth)
    recolour = np.linalg.inv(np.eye(p) - a)
    return recolour @ _kernel_sum(resid, kernel, s) @ recolour.T, s
