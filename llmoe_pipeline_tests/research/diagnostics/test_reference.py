"""Sanity requirements of issue #10 on the reference data (AAPL, MSFT): a coin's AUC interval contains 0.5,
momentum is a function of ma_5 alone, the oracle is perfect."""

import pandas as pd
import pytest

from llmoe_pipeline.features.windows import build_features
from llmoe_pipeline.research.diagnostics import VariantRouting, router_diagnostics
from llmoe_pipeline.router.regimes import fit_threshold
from llmoe_pipeline.router.variants import RULE_SCORES


@pytest.fixture(scope="module", params=["AAPL", "MSFT"])
def summary(request, aapl_msft_prices) -> pd.DataFrame:
    prices = aapl_msft_prices[aapl_msft_prices["ticker"] == request.param]
    features = build_features(prices)
    windows = features[features["split"] != "none"]
    variants = []
    for name in ("random", "momentum", "oracle"):
        table = RULE_SCORES[name](windows)
        threshold = 0.5 if name == "oracle" else fit_threshold(table, 0.5)
        variants.append(VariantRouting(name, table, threshold, uses_future=name == "oracle"))
    gains = [("oracle", "random"), ("momentum", "random")]
    return router_diagnostics(features, variants, gains=gains).summary.set_index(["variant", "split", "metric"])


def test_random_router_test_auc_interval_contains_one_half(summary):
    auc = summary.loc[("random", "test", "auc")]
    assert auc["ci_low"] < 0.5 < auc["ci_high"]
    assert auc["n"] == 502  # the paper's test period
    assert 0.02 < auc["ci_high"] - auc["ci_low"] < 0.2  # an interval, not a point or everything


def test_momentum_is_ma5_of_day_t(summary):
    assert summary.loc[("momentum", "test", "spearman:ma_5_lag0"), "value"] == pytest.approx(-1.0)
    top = summary.loc[("momentum", "train", "top_input")]
    assert top["detail"] == "ma_5_lag0" and top["value"] == pytest.approx(-1.0)


def test_oracle_is_perfect_and_flagged(summary):
    for metric in ("auc", "hit_rate"):
        row = summary.loc[("oracle", "test", metric)]
        assert (row["value"], row["ci_low"], row["ci_high"]) == (1.0, 1.0, 1.0)
        assert row["uses_future"]
    assert not summary.loc[("random", "test", "auc"), "uses_future"]


def test_auc_gain_is_the_paired_difference_of_the_two_aucs(summary):
    for router in ("oracle", "momentum"):
        gain = summary.loc[(router, "test", "auc_gain:random")]
        aucs = summary.loc[(router, "test", "auc"), "value"] - summary.loc[("random", "test", "auc"), "value"]
        assert gain["value"] == pytest.approx(aucs) and gain["n"] == 502
    assert summary.loc[("oracle", "test", "auc_gain:random"), "ci_low"] > 0.3  # a perfect router gains, surely
    momentum = summary.loc[("momentum", "test", "auc_gain:random")]
    assert momentum["ci_low"] < 0 < momentum["ci_high"]  # two uninformative routers: no detectable gain
