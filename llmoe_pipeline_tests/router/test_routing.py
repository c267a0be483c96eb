"""Router variants: each gives every window a score and a threshold rule; the LLM ablations have their own prompts
and prompt versions; the oracle (the future) beats every model on the real test split (a sanity check)."""

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline import build_features, daily_news
from llmoe_pipeline.catalog import DEFAULT_VARIANTS, VARIANT_NAMES, uses_future, variant
from llmoe_pipeline.config.protocol import PipelineConfig
from llmoe_pipeline.config.settings import ConfigError, load_settings
from llmoe_pipeline.core.hashing import sha256_text
from llmoe_pipeline.research.walkforward import fold_models
from llmoe_pipeline.router.prompt import PROMPT_VERSION, build_prompts, prompt_version
from llmoe_pipeline.router.variants import momentum_scores, oracle_scores, random_scores
from llmoe_pipeline.trading.evaluation import evaluate, predict_all
from llmoe_pipeline_tests.model_fixtures import small_training
from llmoe_pipeline_tests.router_support import reference_data


@pytest.fixture(scope="module")
def aapl_features(aapl_prices):
    return build_features(aapl_prices)


def test_momentum_is_the_close_against_its_5_day_average(aapl_features, aapl_prices):
    scores = momentum_scores(aapl_features)
    adj = aapl_prices.set_index("date")["adj_close"]
    by_hand = (adj / adj.rolling(5).mean() - 1).reindex(aapl_features["date"]).to_numpy()
    np.testing.assert_allclose(scores["p_optimistic"], by_hand, rtol=1e-9)


def test_random_coins_are_per_window_whatever_the_rows_around_them(aapl_features):
    coins = random_scores(aapl_features, seed=0)
    subset = random_scores(aapl_features.iloc[::-7], seed=0)
    pd.testing.assert_series_equal(
        coins.set_index("date")["p_optimistic"].loc[subset["date"]], subset.set_index("date")["p_optimistic"]
    )
    assert 0.47 < coins["p_optimistic"].mean() < 0.53 and coins["p_optimistic"].between(0, 1).all()
    assert not np.allclose(coins["p_optimistic"], random_scores(aapl_features, seed=1)["p_optimistic"])


def test_oracle_reads_the_target_and_is_marked(aapl_features):
    assert (oracle_scores(aapl_features)["p_optimistic"] == aapl_features["target"]).all()
    assert variant("oracle").uses_future and uses_future("LLMoE[oracle]") and not uses_future("LLMoE")
    assert [variant(n).display_name for n in DEFAULT_VARIANTS] == [
        "LLMoE",
        "LLMoE[momentum]",
        "LLMoE[random]",
        "LLMoE[single]",
        "LLMoE[oracle]",
        "LLMoE[llm_probe]",
        "LLMoE[features_probe]",
    ]


def test_llm_ablations_leave_out_one_part_of_the_prompt_under_their_own_version():
    prices, headlines = reference_data(("AAPL",))
    prices = prices[prices["date"] <= "2012-06-30"]
    features = build_features(prices).tail(3)
    news = daily_news(headlines, prices)
    full = build_prompts(features, news)
    assert sha256_text(full["prompt"].iloc[0]) == full["prompt_sha256"].iloc[0]
    prices_only = build_prompts(features, news, parts=("prices",))["prompt"]
    news_only = build_prompts(features, news, parts=("news",))["prompt"]
    for whole, p, n in zip(full["prompt"], prices_only, news_only):
        assert "<headlines>" in whole and "<headlines>" not in p and "Last 5 trading days" in p
        assert "Last 5 trading days" not in n and ("<headlines>" in n or "No news" in n)
        assert p.endswith(whole.rsplit("\n\n", 1)[1]) and n.endswith(whole.rsplit("\n\n", 1)[1])
    assert (prompt_version(), prompt_version(("prices",)), prompt_version(("news",))) == (
        PROMPT_VERSION,
        "v2-prices-only",
        "v2-news-only",
    )
    assert variant("llm_prices_only").routing_asset == "router_labels_prices_only"


def test_variant_settings_are_checked():
    assert load_settings().protocol.router.variants == list(DEFAULT_VARIANTS)
    with pytest.raises(ValueError, match="include 'llm'"):
        PipelineConfig.model_validate({"router": {"variants": ["momentum"]}})
    with pytest.raises(ValueError, match="unknown router variants"):
        PipelineConfig.model_validate({"router": {"variants": ["llm", "astrology"]}})
    assert set(VARIANT_NAMES) == {
        "llm",
        "momentum",
        "random",
        "single",
        "oracle",
        "llm_prices_only",
        "llm_news_only",
        "llm_probe",
        "features_probe",
    }
    assert isinstance(ConfigError("x"), ValueError)


@pytest.mark.parametrize("ticker", ["AAPL", "MSFT"])
def test_the_oracle_beats_every_model_on_the_real_test_split(ticker, aapl_msft_prices):
    """The sanity check of the ablations: routing by tomorrow's direction must win on the paper's test days."""
    cfg = PipelineConfig.model_validate(small_training([16, 8, 4], epochs=8, patience=3, thresholds=[0.5]))
    features = build_features(aapl_msft_prices[aapl_msft_prices["ticker"] == ticker], cfg.split)
    windows = features[features["split"] != "none"]
    routing = {
        "llm": random_scores(windows, seed=7),
        "momentum": momentum_scores(windows),
        "random": random_scores(windows),
        "oracle": oracle_scores(windows),
    }
    # Every default variant but llm_probe (its hidden states need the language model); features_probe is refitted
    # on the fold's training windows.
    variants = [variant(n) for n in DEFAULT_VARIANTS if n != "llm_probe"]
    routed, plain = fold_models(features, routing, variants, cfg, lambda fp, kind, train: (train(), False), ticker)
    metrics, _ = evaluate(predict_all(features, routed, plain), [0.0])
    sharpe = metrics[metrics["split"] == "test"].groupby("model")["sharpe_ratio"].mean()
    others = sharpe.drop("LLMoE[oracle]")
    assert sharpe["LLMoE[oracle]"] > others.max() + 1.0, sharpe.sort_values()
