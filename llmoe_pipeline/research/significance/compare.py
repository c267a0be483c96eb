"""Significance tables of one split (issue #10, section 3), from the `daily` frame of `evaluation.evaluate`.

Tests over days use each model's seed-averaged daily return series: the position averaged over seeds, times
the asset's return, less `cost_bps` per unit change of that averaged position (the backtest's convention).
Ten seeds measure training noise, not market noise, so the spread over seeds is reported beside the tests
(`seed_win_share`). LLMoE models are `catalog.is_llmoe`; a model whose variant reads the
future (`catalog.uses_future`) stays in the tables, flagged `uses_future`, and is left out of SPA and MCS unless
include_future=True (an upper bound, never a result).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmoe_pipeline.catalog import BUY_AND_HOLD, LLMOE, TRADING_DAYS_PER_YEAR, is_llmoe, uses_future
from llmoe_pipeline.research.significance.ledoit_wolf import sharpe_diff_bootstrap, sharpe_diff_hac
from llmoe_pipeline.research.significance.multiple import model_confidence_set, spa_test
from llmoe_pipeline.research.significance.power import sharpe_diff_power
from llmoe_pipeline.research.significance.sharpe import probabilistic_sharpe_ratio
from llmoe_pipeline.trading.metrics import sharpe_ratio


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator per (seed, names): adding a model leaves the other comparisons' draws unchanged."""
    return np.random.default_rng([seed, zlib.crc32("|".join(keys).encode())])


def _select(daily: pd.DataFrame, split: str, cost_bps: float) -> pd.DataFrame:
    sel = daily[(daily["split"] == split) & (daily["cost_bps"] == cost_bps)]
    if sel.empty:
        raise ValueError(f"no rows with split == {split!r} and cost_bps == {cost_bps}")
    return sel


def _ticker_returns(g: pd.DataFrame, ticker: str, cost_bps: float, benchmark: str) -> pd.DataFrame:
    bench = g[g["model"] == benchmark]
    if bench.empty:
        raise ValueError(f"{ticker}: no {benchmark!r} rows, which carry the asset's returns")
    asset = bench.groupby("date")["strategy_return"].first().sort_index()
    counts = g.groupby(["model", "date"], sort=False).size().unstack("date").reindex(columns=asset.index)
    incomplete = [m for m, row in counts.iterrows() if row.isna().any() or row.nunique() != 1]
    if incomplete or len(set(g["date"])) != len(asset):
        raise ValueError(f"{ticker}: models {incomplete} lack some seeds or dates of {benchmark!r}")
    models = list(dict.fromkeys(g["model"]))
    position = g.pivot_table(index="date", columns="model", values="position", aggfunc="mean").loc[asset.index]
    position = position[models]
    trade = position.diff().fillna(position).abs()  # the run starts from cash, as in the backtest
    returns = position.mul(asset, axis=0) - cost_bps / 1e4 * trade
    returns[benchmark] = asset  # buy-and-hold is never charged (evaluation.evaluate)
    return returns.rename_axis(columns=None)


def seed_averaged_returns(
    daily: pd.DataFrame, *, split: str = "test", cost_bps: float = 0.0, benchmark: str = BUY_AND_HOLD
) -> dict[str, pd.DataFrame]:
    """ticker -> DataFrame (index date, one column per model) of seed-averaged daily returns."""
    sel = _select(daily, split, cost_bps)
    return {str(t): _ticker_returns(g, str(t), cost_bps, benchmark) for t, g in sel.groupby("ticker", sort=False)}


def _seed_sharpes(g: pd.DataFrame, periods: int) -> dict[str, list[float]]:
    """model -> Sharpe ratio of each seed's own return series, seeds in increasing order."""
    out: dict[str, list[float]] = {}
    for (model, _), s in g.sort_values(["model", "seed", "date"]).groupby(["model", "seed"], sort=True):
        out.setdefault(str(model), []).append(sharpe_ratio(s["strategy_return"].to_numpy(), periods=periods))
    return out


def seed_win_share(sharpes_a: list[float], sharpes_b: list[float]) -> tuple[float, int]:
    """Share of seed pairs in which a's Sharpe beats b's (ties count one half), and the number of pairs.

    Seeds pair by index; a single-seed side (buy-and-hold) is compared with every seed of the other.
    Pairs with an undefined Sharpe ratio (a constant series) are left out.
    """
    if len(sharpes_b) == 1:
        pairs = [(x, sharpes_b[0]) for x in sharpes_a]
    elif len(sharpes_a) == 1:
        pairs = [(sharpes_a[0], y) for y in sharpes_b]
    else:
        pairs = list(zip(sharpes_a, sharpes_b))
    valid = [(x, y) for x, y in pairs if np.isfinite(x) and np.isfinite(y)]
    if not valid:
        return float("nan"), 0
    return float(np.mean([1.0 if x > y else 0.5 if x == y else 0.0 for x, y in valid])), len(valid)


def _pairs(models: list[str]) -> list[tuple[str, str]]:
    """(LLMoE variant, other model): plain "LLMoE" first; each pair of two variants once."""
    variants = sorted((m for m in models if is_llmoe(m)), key=lambda m: (m != LLMOE, models.index(m)))
    pairs = []
    for i, a in enumerate(variants):
        pairs += [(a, b) for b in models if b != a and b not in variants[:i]]
    return pairs


def pairwise_sharpe_tests(
    daily: pd.DataFrame,
    *,
    split: str = "test",
    cost_bps: float = 0.0,
    reps: int = 4999,
    block_length: int | None = None,
    seed: int = 0,
    periods: int = TRADING_DAYS_PER_YEAR,
    benchmark: str = BUY_AND_HOLD,
    power_gap: float = 1.0,
    target_power: float = 0.8,
    power_simulations: int = 1000,
) -> pd.DataFrame:
    """One row per (ticker, LLMoE variant, other model): Ledoit-Wolf tests of equal Sharpe ratios of the
    seed-averaged series (bootstrap p_value, HAC p_value_hac), the seed-level win share, and what the test could
    detect (power.sharpe_diff_power: mde, power_at_gap, ruled_out_above and their inputs)."""
    sel = _select(daily, split, cost_bps)
    rows = []
    for ticker, g in sel.groupby("ticker", sort=False):
        ticker = str(ticker)
        returns = _ticker_returns(g, ticker, cost_bps, benchmark)
        per_seed = _seed_sharpes(g, periods)
        for a, b in _pairs(list(returns.columns)):
            boot = sharpe_diff_bootstrap(
                returns[a],
                returns[b],
                periods=periods,
                block_length=block_length,
                reps=reps,
                seed=_rng(seed, ticker, a, b),
            )
            hac = sharpe_diff_hac(returns[a], returns[b], periods=periods)
            share, n_pairs = seed_win_share(per_seed[a], per_seed[b])
            power = sharpe_diff_power(
                returns[a],
                returns[b],
                boot,
                gap=power_gap,
                target_power=target_power,
                simulations=power_simulations,
                periods=periods,
                seed=_rng(seed, ticker, a, b, "power"),
            ).as_record()
            rows.append(
                {"ticker": ticker, "model_a": a, "model_b": b, "uses_future": uses_future(a) or uses_future(b),
                 "n_days": boot.n, "sharpe_a": boot.sharpe_a, "sharpe_b": boot.sharpe_b, "sharpe_diff": boot.diff,
                 "se": boot.se, "p_value": boot.p_value, "p_value_hac": hac.p_value, "block_length": boot.block_length,
                 "reps": boot.reps, "seed_win_share": share, "n_seed_pairs": n_pairs, "reason": boot.reason,
                 **{k: v for k, v in power.items() if k not in ("n_days", "block_length", "reason")}}
            )  # fmt: skip
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class SignificanceTables:
    """spa: one row per ticker; mcs and psr: one row per (ticker, model)."""

    spa: pd.DataFrame
    mcs: pd.DataFrame
    psr: pd.DataFrame


def model_set_tests(
    daily: pd.DataFrame,
    *,
    split: str = "test",
    cost_bps: float = 0.0,
    reps: int = 1000,
    seed: int = 0,
    mcs_size: float = 0.10,
    include_future: bool = False,
    periods: int = TRADING_DAYS_PER_YEAR,
    benchmark: str = BUY_AND_HOLD,
) -> SignificanceTables:
    """SPA of every model against the benchmark, the MCS over all models, and each model's PSR (vs 0),
    on the seed-averaged series. Models that use the future enter SPA and MCS only if include_future."""
    by_ticker = seed_averaged_returns(daily, split=split, cost_bps=cost_bps, benchmark=benchmark)
    return returns_set_tests(
        by_ticker,
        reps=reps,
        seed=seed,
        mcs_size=mcs_size,
        include_future=include_future,
        periods=periods,
        benchmark=benchmark,
    )


def returns_set_tests(
    by_ticker: dict[str, pd.DataFrame],
    *,
    reps: int = 1000,
    seed: int = 0,
    mcs_size: float = 0.10,
    include_future: bool = False,
    periods: int = TRADING_DAYS_PER_YEAR,
    benchmark: str = BUY_AND_HOLD,
) -> SignificanceTables:
    """`model_set_tests` on daily return series given directly: ticker (or any label) -> date × model."""
    spa_rows, mcs_rows, psr_rows = [], [], []
    for ticker, returns in by_ticker.items():
        eligible = [m for m in returns.columns if include_future or not uses_future(m)]
        excluded = [m for m in returns.columns if m not in eligible]
        others = [m for m in eligible if m != benchmark]
        row: dict[str, object] = {"ticker": ticker, "benchmark": benchmark, "excluded": ", ".join(excluded)}
        if others:
            spa = spa_test(returns[benchmark], returns[others], reps=reps, seed=_rng(seed, ticker, "spa"))
            row |= {"p_consistent": spa.consistent, "p_lower": spa.lower, "p_upper": spa.upper,
                    "models": ", ".join(spa.models), "superior": ", ".join(spa.superior),
                    "dropped": ", ".join(spa.dropped), "block_size": spa.block_size, "reps": reps,
                    "reason": spa.reason}  # fmt: skip
        else:
            row |= {"p_consistent": np.nan, "p_lower": np.nan, "p_upper": np.nan, "reason": "no model to compare"}
        spa_rows.append(row)
        mcs = model_confidence_set(returns[eligible], size=mcs_size, reps=reps, seed=_rng(seed, ticker, "mcs"))
        for model in returns.columns:
            psr = probabilistic_sharpe_ratio(returns[model], periods=periods)
            in_set = model in mcs.table.index
            mcs_rows.append(
                {"ticker": ticker, "model": model, "uses_future": uses_future(model),
                 "in_mcs": bool(mcs.table.at[model, "in_mcs"]) if in_set and mcs.reason is None else pd.NA,
                 "mcs_pvalue": float(mcs.table.at[model, "pvalue"]) if in_set else np.nan,
                 "sharpe": psr.sharpe, "mean_return": float(returns[model].mean())}
            )  # fmt: skip
            psr_rows.append(
                {"ticker": ticker, "model": model, "uses_future": uses_future(model), "n_days": psr.n,
                 "sharpe": psr.sharpe, "psr": psr.psr, "skewness": psr.skewness, "kurtosis": psr.kurtosis,
                 "reason": psr.reason}
            )  # fmt: skip
    mcs_frame = pd.DataFrame(mcs_rows).astype({"in_mcs": "boolean"})
    return SignificanceTables(pd.DataFrame(spa_rows), mcs_frame, pd.DataFrame(psr_rows))
