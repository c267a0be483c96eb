"""The verdict across tickers: win shares and paired tests of the per-ticker Sharpe differences, and SPA/MCS on
the pooled (equal-weight) book; a planted edge is found, no edge gives no significance."""

import numpy as np
import pandas as pd

from llmoe_pipeline.reporting.tables import summarize
from llmoe_pipeline.research.across import across_text, across_tickers, paired_tests, pooled_returns
from llmoe_pipeline.trading.metrics import compute_metrics


def _daily(edge: float, tickers: int = 10, days: int = 400, seed: int = 0) -> pd.DataFrame:
    """LLMoE is long on a day with probability 0.5 + edge when the day goes up (0.5 - edge when it goes down);
    MLP is a fair coin; Buy&Hold is always long."""
    rng = np.random.default_rng(seed)
    rows = []
    dates = pd.bdate_range("2015-01-01", periods=days)
    for t in range(tickers):
        asset = rng.normal(0.0003, 0.015, days)
        rows.append(
            pd.DataFrame(
                {
                    "ticker": f"T{t}",
                    "model": "Buy&Hold",
                    "seed": 0,
                    "date": dates,
                    "position": 1.0,
                    "strategy_return": asset,
                }
            )
        )
        for model, e in (("LLMoE", edge), ("MLP", 0.0)):
            for s in (0, 1):
                p_long = np.where(asset > 0, 0.5 + e, 0.5 - e)
                position = (rng.random(days) < p_long).astype(float)
                rows.append(
                    pd.DataFrame(
                        {
                            "ticker": f"T{t}",
                            "model": model,
                            "seed": s,
                            "date": dates,
                            "position": position,
                            "strategy_return": position * asset,
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True).assign(split="test", cost_bps=0.0)


def _summary(daily: pd.DataFrame) -> pd.DataFrame:
    metrics = [
        {
            "ticker": t,
            "model": m,
            "seed": s,
            "split": "test",
            "cost_bps": 0.0,
            **compute_metrics(g.sort_values("date")["strategy_return"]),
        }
        for (t, m, s), g in daily.groupby(["ticker", "model", "seed"])
    ]
    return summarize(pd.DataFrame(metrics))


def test_a_planted_edge_wins_on_most_tickers_and_is_significant():
    daily = _daily(edge=0.15)
    tables = across_tickers(_summary(daily), daily)
    paired = tables["paired"].set_index("model")
    assert paired.loc["MLP", "llmoe_win_share"] >= 0.9 and paired.loc["MLP", "tickers"] == 10
    assert paired.loc["MLP", "p_wilcoxon"] < 0.01 and paired.loc["MLP", "p_sign"] < 0.05
    mcs = tables["mcs"].set_index("model")
    assert bool(mcs.loc["LLMoE", "in_mcs"]) and not bool(mcs.loc["MLP", "in_mcs"])
    assert "Across 10 tickers" in across_text(tables)


def test_no_edge_gives_no_significant_difference():
    daily = _daily(edge=0.0, seed=3)
    paired = paired_tests(
        _summary(daily).pivot_table(index="ticker", columns="model", values="sharpe_ratio_mean")
    ).set_index("model")
    assert paired.loc["MLP", "p_wilcoxon"] > 0.05 and 0.2 <= paired.loc["MLP", "llmoe_win_share"] <= 0.8


def test_the_pooled_book_is_the_average_over_tickers_of_the_seed_averaged_returns():
    daily = _daily(edge=0.1, tickers=3, days=50)
    pooled = pooled_returns(daily)
    llmoe = daily[daily["model"] == "LLMoE"].groupby(["date", "ticker"])["strategy_return"].mean()
    np.testing.assert_allclose(pooled["LLMoE"].to_numpy(), llmoe.groupby("date").mean().to_numpy(), atol=1e-15)
