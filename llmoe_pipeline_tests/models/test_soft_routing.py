"""Soft routing (`LLMoE-soft`): both experts' P(up) weighted by the router's score, ranked among the training ones."""

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.catalog import soft_name
from llmoe_pipeline.models import input_columns, train_expert
from llmoe_pipeline.models.experts import llmoe_soft_predict
from llmoe_pipeline.models.registry import model_rank
from llmoe_pipeline.router.regimes import fit_threshold, soft_weights
from llmoe_pipeline.trading.evaluation import RoutedExperts, predict_all
from llmoe_pipeline_tests.model_fixtures import rule_labels, small_features

PARAMS = {
    "hidden_sizes": [8, 4],
    "dropout": 0.1,
    "learning_rate": 3e-3,
    "max_epochs": 3,
    "patience": 2,
    "batch_size": 64,
}


def scores(train: list[float], other: list[float]) -> pd.DataFrame:
    split = ["train"] * len(train) + ["test"] * len(other)
    return pd.DataFrame({"split": split, "p_optimistic": train + other})


@pytest.mark.parametrize("quantile", [0.3, 0.5, 0.8])
def test_the_threshold_quantile_weighs_one_half_and_the_extremes_zero_and_one(quantile):
    train = list(np.linspace(0.2, 0.4, 101))  # a biased model: every score below 0.5
    table = scores(train, [0.0, fit_threshold(scores(train, []), quantile), 0.9])
    w = soft_weights(table, quantile)[len(train) :]
    assert w[0] == 0.0 and w[2] == 1.0 and w[1] == pytest.approx(0.5, abs=0.01)
    assert np.all(np.diff(soft_weights(table.sort_values("p_optimistic"), quantile)) >= 0)  # monotone in the score


def test_weights_rank_against_training_windows_only():
    train = list(np.random.default_rng(0).uniform(size=200))
    first = soft_weights(scores(train, [0.1, 0.6]), 0.5)
    moved = soft_weights(scores(train, [0.99, 0.6]), 0.5)  # another test window changes nothing else
    assert first[:200].tolist() == moved[:200].tolist() and first[201] == moved[201]


@pytest.fixture(scope="module")
def experts(aapl_prices):
    features = small_features(aapl_prices)
    labels = rule_labels(features)
    fitted = {r: train_expert(features, labels, r, PARAMS, seed=0) for r in ("Optimistic", "Pessimistic")}
    return features, labels, fitted


def test_soft_prediction_is_the_weighted_mean_of_both_experts(experts):
    features, _, fitted = experts
    rows = features[features["split"] == "test"]
    x = rows[input_columns(rows)].to_numpy()
    optimistic, pessimistic = fitted["Optimistic"].predict_proba(x), fitted["Pessimistic"].predict_proba(x)
    assert not np.allclose(optimistic, pessimistic)
    w = np.linspace(0, 1, len(rows))
    np.testing.assert_allclose(llmoe_soft_predict(fitted, rows, w), w * optimistic + (1 - w) * pessimistic)
    np.testing.assert_array_equal(llmoe_soft_predict(fitted, rows, np.ones(len(rows))), optimistic)
    with pytest.raises(ValueError, match="one weight per row"):
        llmoe_soft_predict(fitted, rows, w[:-1])


def test_predict_all_adds_the_soft_model_beside_its_top_1(experts):
    features, labels, fitted = experts
    routed = labels.assign(split=features["split"], p_optimistic=np.where(labels["label"] == "Optimistic", 0.9, 0.1))
    weighted = routed.assign(weight=soft_weights(routed, 0.5))
    by_regime = {r: {0: m} for r, m in fitted.items()}
    table = predict_all(
        features,
        {"LLMoE": RoutedExperts(by_regime, routed), soft_name("LLMoE"): RoutedExperts(by_regime, weighted, soft=True)},
        {},
    )
    top_1 = table[table["model"] == "LLMoE"].set_index("date")["p_up"]
    soft = table[table["model"] == "LLMoE-soft"].set_index("date")["p_up"]
    assert len(soft) == len(top_1) > 0 and not np.allclose(soft, top_1)
    # The top score ranks above every training window (weight 1): there soft routing is top-1 routing.
    sure = table[(table["model"] == "LLMoE") & (table["regime"] == "Optimistic")]["date"]
    np.testing.assert_allclose(soft.loc[sure], top_1.loc[sure], atol=1e-6)  # (float32 rows in other batches)
    assert sorted(["MLP", "LLMoE-soft", "LLMoE"], key=model_rank) == ["LLMoE", "LLMoE-soft", "MLP"]
