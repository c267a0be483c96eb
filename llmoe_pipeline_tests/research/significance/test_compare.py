"""The pipeline's significance tables, end to end on a synthetic `daily` frame with planted effects."""

import math

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.catalog import BUY_AND_HOLD, VARIANTS, is_llmoe, uses_future
from llmoe_pipeline.models.registry import BASELINES
from llmoe_pipeline.research.significance.compare import (
    model_set_tests,
    pairwise_sharpe_tests,
    seed_averaged_returns,
    seed_win_share,
)
from llmoe_pipeline.trading.backtest import backtest, buy_and_hold
from llmoe_pipeline.trading.metrics import sharpe_ratio

N_DAYS, SEEDS, COSTS = 500, range(10), (0.0, 10.0)


def _daily(ticker: str, seed: int) -> pd.DataFrame:
    """evaluate()'s daily frame for one ticker: Buy&Hold; LLMoE (each seed knows the next day's direction on
    a random 20 % of days, else is long); LLMoE[same] (always long = Buy&Hold); LLMoE[cash] (never in);
    LLMoE[oracle] (the true direction: uses the future); MLP (random positions)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2022-01-03", periods=N_DAYS + 50)
    asset = pd.Series(0.0003 + 0.012 * rng.standard_t(5, len(dates)) / np.sqrt(5 / 3), index=dates)
    up = (asset > 0).astype(int)
    preds = {"LLMoE[oracle]": {0: up}, "LLMoE[same]": dict.fromkeys(SEEDS, up * 0 + 1),
             "LLMoE[cash]": dict.fromkeys(SEEDS, up * 0), "MLP": {s: (rng.random(len(dates)) < 0.6) * 1 for s in SEEDS},
             "LLMoE": {s: up.where(rng.random(len(dates)) < 0.2, 1) for s in SEEDS}}  # fmt: skip
    frames = []
    for split, days in (("validation", dates[:50]), ("test", dates[50:])):
        for cost in COSTS:
            keys = {"ticker": ticker, "split": split, "cost_bps": cost}
            bt = buy_and_hold(asset[days])
            frames.append(bt.rename_axis("date").reset_index().assign(model=BUY_AND_HOLD, seed=0, **keys))
            for model, by_seed in preds.items():
                for s, p in by_seed.items():
                    bt = backtest(pd.Series(p, index=dates)[days], asset[days], cost_bps=cost)
                    frames.append(bt.rename_axis("date").reset_index().assign(model=model, seed=s, **keys))
    cols = ["ticker", "model", "seed", "split", "cost_bps", "date", "position", "strategy_return", "equity"]
    return pd.concat(frames, ignore_index=True)[cols]


@pytest.fixture(scope="module")
def daily():
    return pd.concat([_daily("AAA", 1), _daily("BBB", 2)], ignore_index=True)


@pytest.fixture(scope="module")
def pairs(daily):
    return pairwise_sharpe_tests(daily, reps=499)


def test_name_rules_agree_with_the_registry():
    assert all(is_llmoe(v.display_name) for v in VARIANTS)
    assert not any(is_llmoe(b.display_name) or uses_future(b.display_name) for b in BASELINES)
    flagged = [v.display_name for v in VARIANTS if uses_future(v.display_name)]
    assert flagged == [v.display_name for v in VARIANTS if v.uses_future] != []


def test_seed_averaged_returns_average_the_position(daily):
    free = seed_averaged_returns(daily)
    test = daily[(daily["split"] == "test") & (daily["cost_bps"] == 0)]
    assert set(free) == {"AAA", "BBB"} and len(free["AAA"]) == N_DAYS
    mean_return = test[test["ticker"] == "AAA"].pivot_table("strategy_return", "date", "model", aggfunc="mean")
    pd.testing.assert_frame_equal(free["AAA"], mean_return[free["AAA"].columns], check_names=False, atol=1e-15)
    costly = seed_averaged_returns(daily, cost_bps=10.0)["AAA"]
    position = test[test["ticker"] == "AAA"].pivot_table("position", "date", "model", aggfunc="mean")["LLMoE"]
    trade = position.diff().fillna(position).abs()
    np.testing.assert_allclose(costly["LLMoE"], free["AAA"]["LLMoE"] - 10 / 1e4 * trade, atol=1e-15)
    pd.testing.assert_series_equal(costly[BUY_AND_HOLD], free["AAA"][BUY_AND_HOLD])  # buy-and-hold pays no costs


def test_pairwise_table_has_the_planted_effects(daily, pairs):
    assert len(pairs) == 2 * (4 * 2 + 6)  # 4 variants x (MLP, Buy&Hold) + the 6 pairs of variants, per ticker
    assert (
        not pairs.duplicated(["ticker", "model_a", "model_b"]).any() and pairs["model_a"].str.startswith("LLMoE").all()
    )
    row = pairs.set_index(["ticker", "model_a", "model_b"])
    free = seed_averaged_returns(daily)
    for ticker in ("AAA", "BBB"):
        better = row.loc[(ticker, "LLMoE", BUY_AND_HOLD)]
        assert better["sharpe_diff"] > 0 and better["p_value"] < 0.01 and better["p_value_hac"] < 0.01
        assert better["sharpe_a"] == pytest.approx(sharpe_ratio(free[ticker]["LLMoE"]), rel=1e-10)
        assert (better["seed_win_share"], better["n_seed_pairs"], better["reps"]) == (1.0, 10, 499)
        same = row.loc[(ticker, "LLMoE[same]", BUY_AND_HOLD)]
        assert (same["p_value"], same["sharpe_diff"], same["reason"]) == (1.0, 0.0, "identical series")
        assert same["seed_win_share"] == 0.5  # ties count one half
        cash = row.loc[(ticker, "LLMoE[cash]", BUY_AND_HOLD)]
        assert math.isnan(cash["p_value"]) and "constant" in cash["reason"] and cash["n_seed_pairs"] == 0
    assert row.xs("LLMoE[oracle]", level="model_b")["uses_future"].all()
    assert not row.loc[("AAA", "LLMoE", "MLP"), "uses_future"]
    assert row.loc[("AAA", "LLMoE", "LLMoE[oracle]"), "p_value"] < 0.01  # the plain LLMoE comes first
    assert ("AAA", "LLMoE[oracle]", "LLMoE") not in row.index
    pd.testing.assert_frame_equal(pairwise_sharpe_tests(daily, reps=499), pairs)  # seeded: reproducible


def test_model_set_tables(daily):
    tables = model_set_tests(daily, reps=500)
    spa = tables.spa.set_index("ticker")
    assert (spa["p_consistent"] < 0.05).all() and (spa["excluded"] == "LLMoE[oracle]").all()
    assert all("LLMoE" in s.split(", ") for s in spa["superior"]) and (spa["dropped"] == "LLMoE[same]").all()
    mcs = tables.mcs.set_index(["ticker", "model"])
    assert mcs.loc[("AAA", "LLMoE"), "in_mcs"] and not mcs.loc[("AAA", BUY_AND_HOLD), "in_mcs"]
    assert not mcs.loc[("AAA", "LLMoE[cash]"), "in_mcs"] and pd.isna(mcs.loc[("AAA", "LLMoE[oracle]"), "in_mcs"])
    psr = tables.psr.set_index(["ticker", "model"])
    assert psr.loc[("AAA", "LLMoE"), "psr"] > 0.99 and "constant" in psr.loc[("AAA", "LLMoE[cash]"), "reason"]
    assert len(psr) == len(mcs) == 2 * 6 and psr["uses_future"].sum() == 2
    with_oracle = model_set_tests(daily, reps=500, include_future=True).mcs.set_index(["ticker", "model"])
    assert with_oracle.loc[("AAA", "LLMoE[oracle]"), "in_mcs"] and not with_oracle.loc[("AAA", "LLMoE"), "in_mcs"]


def test_seed_win_share_pairs_seeds():
    assert seed_win_share([1.0, 2.0, 3.0], [2.5]) == (1 / 3, 3)
    assert seed_win_share([1.0, 2.0], [0.5, 2.0, 9.0]) == (0.75, 2)
    assert seed_win_share([1.0, float("nan")], [0.0, 0.0]) == (1.0, 1)
    assert math.isnan(seed_win_share([float("nan")], [1.0])[0])


def test_incomplete_frames_are_refused(daily):
    with pytest.raises(ValueError, match="no rows"):
        seed_averaged_returns(daily, split="train")
    with pytest.raises(ValueError, match="Buy&Hold"):
        seed_averaged_returns(daily[daily["model"] != BUY_AND_HOLD])
    gap = daily.drop(daily[(daily["model"] == "MLP") & (daily["seed"] == 3)].index[:1])
    with pytest.raises(ValueError, match="MLP"):
        seed_averaged_returns(gap, split="validation")
