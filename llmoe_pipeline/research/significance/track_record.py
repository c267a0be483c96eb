"""Track record and selection-bias tables of one ticker's LLMoE variants (issue #25), as JSON-able records.

- `track_record`: each LLMoE variant's PSR and minimum track record length against a Sharpe ratio of 0 and against
  buy-and-hold's (Bailey & Lopez de Prado 2012), on its seed-averaged daily returns.
- `selection`: the deflated Sharpe ratio of the reported LLMoE given every configuration the grid searches scored
  (threshold × one network per regime, for every variant that does not use the future), and the probability of
  backtest overfitting (CSCV) of choosing among the reported variant's configurations by Sharpe ratio.
Configurations trade all-in/all-out like the models, with the same cost per unit change of position.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmoe_pipeline.catalog import BUY_AND_HOLD, TRADING_DAYS_PER_YEAR, is_llmoe, uses_future
from llmoe_pipeline.research.significance.selection import deflated_sharpe_ratio, probability_of_backtest_overfitting
from llmoe_pipeline.research.significance.sharpe import minimum_track_record, probabilistic_sharpe_ratio
from llmoe_pipeline.trading.metrics import sharpe_ratio


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def track_record(
    returns: pd.DataFrame, *, periods: int = TRADING_DAYS_PER_YEAR, confidence: float = 0.95
) -> list[dict]:
    """One record per (LLMoE variant, benchmark): PSR and the minimum track record (days, years) at `confidence`.

    `returns`: date × model of seed-averaged daily returns, with the benchmark's column (buy-and-hold)."""
    bench_sharpe = sharpe_ratio(returns[BUY_AND_HOLD].to_numpy(), periods=periods)
    rows = []
    for model in (m for m in returns.columns if is_llmoe(m)):
        for against, target in (("zero", 0.0), (BUY_AND_HOLD, bench_sharpe)):
            psr = probabilistic_sharpe_ratio(returns[model], benchmark_sharpe=target, periods=periods)
            days = minimum_track_record(psr, confidence, periods)
            rows.append(
                {"model": model, "uses_future": uses_future(model), "against": against, "benchmark_sharpe": target,
                 "sharpe": psr.sharpe, "psr": psr.psr, "n_days": psr.n, "skewness": psr.skewness,
                 "kurtosis": psr.kurtosis, "confidence": confidence, "min_track_record_days": _finite(days),
                 "min_track_record_years": _finite(days / periods), "reached": bool(days <= psr.n),
                 "reason": psr.reason if psr.reason else (None if math.isfinite(days) else
                                                          "Sharpe ratio not above the benchmark's: never")}
            )  # fmt: skip
    return rows


def configuration_returns(positions: pd.DataFrame, asset: pd.Series, cost_bps: float) -> pd.DataFrame:
    """date × configuration daily returns of all-in/all-out positions (`positions`: a date column and one 0/1
    column per configuration) on the asset's returns, starting from cash, on the days both cover (test days added
    after the search have no positions: the grid is not refitted for them)."""
    pos = positions.assign(date=pd.to_datetime(positions["date"])).set_index("date").astype(float)
    days = asset.index.intersection(pos.index)
    if days.empty:
        raise ValueError("the grid's configurations cover none of the test days")
    pos = pos.loc[days]
    trade = pos.diff().fillna(pos).abs()
    return pos.mul(asset.loc[days], axis=0) - cost_bps / 1e4 * trade


def selection(
    returns: pd.DataFrame,
    configurations: dict[str, pd.DataFrame],
    *,
    reported: str,
    cost_bps: float = 0.0,
    periods: int = TRADING_DAYS_PER_YEAR,
    blocks: int = 16,
) -> dict:
    """DSR of the `reported` model (its seed-averaged returns) and PBO of its grid.

    `configurations`: display name of each variant that does not use the future -> its grid's positions
    (`LLMoESearch.configurations`); `reported` must be one of them."""
    if reported not in configurations or configurations[reported].empty:
        return {"model": reported, "reason": f"no grid configurations stored for {reported}"}
    asset = returns[BUY_AND_HOLD]
    by_variant = {name: configuration_returns(p, asset, cost_bps) for name, p in configurations.items() if len(p)}
    days = by_variant[reported].index
    for r in by_variant.values():
        days = days.intersection(r.index)
    by_variant = {name: r.loc[days] for name, r in by_variant.items()}
    returns = returns.loc[days]  # the reported model on the same days as its trials
    sharpes = {
        name: [sharpe_ratio(r[c].to_numpy(), periods=periods) for c in r.columns] for name, r in by_variant.items()
    }
    trial_sharpes = [s for values in sharpes.values() for s in values]
    dsr = deflated_sharpe_ratio(returns[reported], trial_sharpes, periods=periods)
    own = deflated_sharpe_ratio(returns[reported], sharpes[reported], periods=periods)
    pbo = probability_of_backtest_overfitting(by_variant[reported].to_numpy(), blocks=blocks)
    return {
        "model": reported,
        "days": {"n": len(days), "first": f"{days[0]:%Y-%m-%d}", "last": f"{days[-1]:%Y-%m-%d}"},
        "configurations_per_variant": {name: len(values) for name, values in sharpes.items()},
        "deflated": dsr.as_record(),
        "deflated_own_grid": own.as_record(),
        "pbo": pbo.as_record(),
        "best_configuration_sharpe": float(np.nanmax(trial_sharpes)),
        "median_configuration_sharpe": float(np.nanmedian(trial_sharpes)),
    }
