"""The verdict across tickers: one stock's two test years have little power, many stocks have more.

Per model compared with LLMoE: the share of tickers where LLMoE's test Sharpe (mean over seeds) is higher, and
paired tests across tickers of the per-ticker Sharpe differences (Wilcoxon signed-rank, and the sign test); then SPA
and the Model Confidence Set on the pooled series (each model's seed-averaged daily returns, averaged over the
tickers: an equal-weight book of the same strategy on every stock).
"""

from __future__ import annotations

import pandas as pd
from scipy.stats import binomtest, wilcoxon

from llmoe_pipeline.catalog import LLMOE, uses_future
from llmoe_pipeline.models.registry import model_rank
from llmoe_pipeline.research.significance import seed_averaged_returns
from llmoe_pipeline.research.significance.compare import returns_set_tests
from llmoe_pipeline.research.significance.power import wilcoxon_power

POOLED = "POOLED"


def per_ticker_sharpe(summary: pd.DataFrame) -> pd.DataFrame:
    """tickers × models of the mean test Sharpe over seeds (from `report.summarize` rows of one split and cost)."""
    return summary.pivot_table(index="ticker", columns="model", values="sharpe_ratio_mean", aggfunc="first")


def paired_tests(
    sharpe: pd.DataFrame, reference: str = LLMOE, power_gap: float = 1.0, target_power: float = 0.8
) -> pd.DataFrame:
    """One row per other model: tickers, LLMoE's win share, the median Sharpe difference, the Wilcoxon and
    sign-test p-values (two-sided) of the per-ticker differences, and what the Wilcoxon test could detect
    (power.wilcoxon_power: mde, mde_closed_form, power_at_gap, ruled_out_above)."""
    rows = []
    for model in sorted((m for m in sharpe.columns if m != reference), key=model_rank):
        diff = (sharpe[reference] - sharpe[model]).dropna()
        nonzero = diff[diff != 0]
        wins = int((nonzero > 0).sum())
        power = wilcoxon_power(diff, gap=power_gap, target_power=target_power)
        rows.append(
            {
                "model": model,
                "uses_future": uses_future(model),
                "tickers": len(diff),
                "llmoe_win_share": wins / len(nonzero) if len(nonzero) else float("nan"),
                "median_sharpe_diff": float(diff.median()) if len(diff) else float("nan"),
                "p_wilcoxon": float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 6 else float("nan"),
                "p_sign": float(binomtest(wins, len(nonzero)).pvalue) if len(nonzero) else float("nan"),
                **{f"{k}": v for k, v in power.as_record().items() if k != "n_tickers"},
            }
        )
    return pd.DataFrame(rows)


def pooled_returns(daily: pd.DataFrame, split: str = "test", cost_bps: float = 0.0) -> pd.DataFrame:
    """date × model: each model's seed-averaged daily return averaged over the tickers (an equal-weight book;
    a day a ticker lacks is left out of that day's average)."""
    per_ticker = seed_averaged_returns(daily, split=split, cost_bps=cost_bps)
    return pd.concat(per_ticker, names=["ticker"]).groupby(level=1).mean()


def across_tickers(
    summary: pd.DataFrame,
    daily: pd.DataFrame,
    split: str = "test",
    cost_bps: float = 0.0,
    power_gap: float = 1.0,
    target_power: float = 0.8,
) -> dict[str, pd.DataFrame]:
    """The cross-ticker tables: per-ticker Sharpe, the paired tests with their power, and SPA / MCS on the pooled
    series."""
    sel = summary[(summary["split"] == split) & (summary["cost_bps"] == cost_bps)]
    sharpe = per_ticker_sharpe(sel)
    sets = returns_set_tests({POOLED: pooled_returns(daily, split, cost_bps)})
    paired = paired_tests(sharpe, power_gap=power_gap, target_power=target_power)
    return {"sharpe": sharpe, "paired": paired, "spa": sets.spa, "mcs": sets.mcs}


def across_text(tables: dict[str, pd.DataFrame]) -> str:
    paired, mcs = tables["paired"], tables["mcs"].set_index("model")
    lines = [
        f"Across {len(tables['sharpe'])} tickers (test split; LLMoE's test Sharpe, mean over seeds, against each "
        "model; p: Wilcoxon signed-rank and sign test of the per-ticker differences; MCS on the pooled book):",
        f"  {'model':<18} {'LLMoE wins':>10} {'median ΔSharpe':>15} {'p Wilcoxon':>11} {'p sign':>8} {'in MCS':>7}",
    ]
    for _, r in paired.iterrows():
        name = r["model"] + (" *" if r["uses_future"] else "")
        in_mcs = mcs["in_mcs"].get(r["model"]) if r["model"] in mcs.index else None
        mark = "-" if in_mcs is None or pd.isna(in_mcs) else ("yes" if in_mcs else "no")
        lines.append(
            f"  {name:<18} {r['llmoe_win_share']:>10.0%} {r['median_sharpe_diff']:>15.2f} "
            f"{r['p_wilcoxon']:>11.3f} {r['p_sign']:>8.3f} {mark:>7}"
        )
    fair = paired[~paired["uses_future"] & paired["mde"].notna()]
    if len(fair):
        lines.append(
            f"  Power of the Wilcoxon test: a Sharpe gap on every ticker of {fair['mde'].min():.2f} to "
            f"{fair['mde'].max():.2f} (by model) is detected with {fair['target_power'].iloc[0] * 100:.0f} % power; "
            "a gap of "
            f"{fair['gap'].iloc[0]:.1f} with probability {fair['power_at_gap'].min():.2f} to "
            f"{fair['power_at_gap'].max():.2f}; mean differences above {fair['ruled_out_above'].max():.2f} are "
            "ruled out at 5 %."
        )
    spa = tables["spa"].iloc[0] if len(tables["spa"]) else None
    if spa is not None:
        lines.append(
            f"  SPA, no model beats buy-and-hold on the pooled book: p = {spa['p_consistent']:.3f}"
            + (f" (superior: {spa['superior']})" if spa.get("superior") else "")
        )
    return "\n".join(lines)
