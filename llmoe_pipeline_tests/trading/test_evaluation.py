"""Predictions of every model × seed, and their backtests, from small real models."""

import numpy as np
import pytest

from llmoe_pipeline.models import baseline, input_columns, train_expert
from llmoe_pipeline.trading.evaluation import RoutedExperts, equity_curves, evaluate, predict_all
from llmoe_pipeline.trading.metrics import compute_metrics
from llmoe_pipeline_tests.model_fixtures import rule_labels, small_features

NET = {
    "hidden_sizes": [8, 8, 8],
    "dropout": 0.1,
    "learning_rate": 3e-3,
    "max_epochs": 5,
    "patience": 2,
    "batch_size": 64,
}


@pytest.fixture(scope="module")
def setup(aapl_prices):
    feats = small_features(aapl_prices)
    labels = rule_labels(feats)
    experts = {r: {s: train_expert(feats, labels, r, NET, s) for s in (0, 1)} for r in ("Optimistic", "Pessimistic")}
    baselines = {"MLP": {s: baseline("mlp").fit(feats, NET, s) for s in (0, 1)}}
    return feats, {"LLMoE": RoutedExperts(experts, labels)}, experts, baselines


def test_llmoe_uses_the_routed_expert_and_buy_and_hold_is_the_asset(setup):
    feats, labels, experts, baselines = setup
    preds = predict_all(feats, labels, baselines)
    assert set(preds["model"]) == {"LLMoE", "MLP", "Buy&Hold"}
    assert set(preds["split"]) == {"validation", "test"}
    rows = feats[feats["split"].isin(["validation", "test"])].reset_index(drop=True)
    llmoe = preds[(preds["model"] == "LLMoE") & (preds["seed"] == 1)].reset_index(drop=True)
    routed = np.where(rows["n_adj_close_lag0"] > 0, "Optimistic", "Pessimistic")
    assert llmoe["regime"].tolist() == routed.tolist()  # each LLMoE row records the regime it was routed to
    assert preds.loc[preds["model"] != "LLMoE", "regime"].isna().all()
    x = rows[input_columns(rows)].to_numpy()
    for regime in ("Optimistic", "Pessimistic"):
        sel = routed == regime
        np.testing.assert_array_equal(llmoe.loc[sel, "p_up"].to_numpy(), experts[regime][1].predict_proba(x[sel]))

    metrics, daily = evaluate(preds, [0.0, 10.0])
    assert len(metrics) == (2 + 2 + 1) * 2 * 2  # (LLMoE, MLP seeds + Buy&Hold) × splits × costs
    bh = metrics[(metrics["model"] == "Buy&Hold") & (metrics["split"] == "test") & (metrics["cost_bps"] == 0)].iloc[0]
    expected = compute_metrics(rows.loc[rows["split"] == "test", "next_return"])
    for name, value in expected.items():
        assert bh[name] == pytest.approx(value, rel=1e-12, nan_ok=True)


def test_costs_reduce_returns_by_the_traded_amount(setup):
    feats, labels, experts, baselines = setup
    metrics, daily = evaluate(predict_all(feats, labels, baselines), [0.0, 10.0])
    key = (daily["model"] == "LLMoE") & (daily["seed"] == 0) & (daily["split"] == "test")
    free = daily[key & (daily["cost_bps"] == 0)].reset_index(drop=True)
    costly = daily[key & (daily["cost_bps"] == 10)].reset_index(drop=True)
    trades = np.abs(np.diff(free["position"].to_numpy(), prepend=0))
    np.testing.assert_allclose(free["strategy_return"] - costly["strategy_return"], trades * 10 / 1e4, atol=1e-15)
    curves = equity_curves(daily, "test", 0.0)
    assert list(curves["LLMoE"].columns) == [0, 1]
    assert curves["LLMoE"][0].iloc[-1] == pytest.approx(float(np.prod(1 + free["strategy_return"])))
